"""Fill a database with a national-audit-sized synthetic dataset for benchmarks.

    python bench/make_dataset.py [PATH.db] [--episodes 500000] [--years 9] [--services 80]

The database is PATH (an SQLite file) or else DATABASE_URL. Its schema is first brought to the
newest migration (as `flask db upgrade`); it must hold no data yet. On PostgreSQL the rows go in
with COPY (psycopg's `cursor.copy`), and the tables are vacuumed and analysed at the end, as
after a real load, so the planner knows them. Ten years of a nation (issue 21):

    createdb -h 127.0.0.1 fls_nation
    DATABASE_URL=postgresql+psycopg://127.0.0.1/fls_nation \
        python bench/make_dataset.py --episodes 3500000 --years 10 --services 80
 Rows come from the same
generator as `flask demo` (portal/operations/synthetic/), so they have its realistic spread and
keep every rule of spec/dataset.md; every patient and episode gets its `create` audit event.
Prints the time taken; a progress bar shows on a terminal.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# English, Welsh and Northern Irish hospital towns, for service names that read like real ones.
TOWNS = {
    "England": (
        "Leeds",
        "Sheffield",
        "Bristol",
        "Nottingham",
        "Leicester",
        "Norwich",
        "Exeter",
        "Plymouth",
        "Newcastle",
        "Sunderland",
        "Hull",
        "York",
        "Bradford",
        "Manchester",
        "Salford",
        "Stockport",
        "Liverpool",
        "Wirral",
        "Preston",
        "Blackpool",
        "Lancaster",
        "Carlisle",
        "Durham",
        "Middlesbrough",
        "Derby",
        "Stoke",
        "Wolverhampton",
        "Birmingham",
        "Coventry",
        "Worcester",
        "Hereford",
        "Gloucester",
        "Swindon",
        "Bath",
        "Oxford",
        "Reading",
        "Southampton",
        "Portsmouth",
        "Brighton",
        "Canterbury",
        "Maidstone",
        "Chelmsford",
        "Colchester",
        "Ipswich",
        "Cambridge",
        "Peterborough",
        "Lincoln",
        "Northampton",
        "Bedford",
        "Luton",
        "Watford",
        "Guildford",
        "Croydon",
        "Kingston",
        "Whittington",
        "Homerton",
        "Barts",
        "Lewisham",
        "Truro",
        "Taunton",
        "Dorchester",
        "Poole",
        "Salisbury",
        "Winchester",
        "Basingstoke",
        "Milton Keynes",
        "Harrogate",
        "Scarborough",
        "Doncaster",
        "Barnsley",
        "Rotherham",
        "Wigan",
        "Bolton",
    ),
    "Wales": ("Cardiff", "Swansea", "Newport", "Bangor", "Wrexham", "Carmarthen", "Aberystwyth"),
    "Northern Ireland": ("Belfast", "Derry", "Craigavon", "Antrim", "Enniskillen"),
}


def service_rows(rng: random.Random, count: int) -> list[dict]:
    """`count` services across the three nations, in about the audit's shares."""
    wales = round(count * 0.08) if count >= 3 else 0
    northern_ireland = round(count * 0.05) if count >= 3 else 0
    nations = (
        ["England"] * (count - wales - northern_ireland)
        + ["Wales"] * wales
        + ["Northern Ireland"] * northern_ireland
    )
    rows, used = [], {nation: 0 for nation in TOWNS}
    for number, nation in enumerate(nations, start=1):
        towns = TOWNS[nation]
        index = used[nation]
        used[nation] += 1
        town = towns[index % len(towns)]
        if index >= len(towns):
            town = f"{town} {index // len(towns) + 1}"
        caseload = int(min(4200, max(400, rng.lognormvariate(7.3, 0.5))))
        rows.append(
            {
                "code": f"{nation[0]}{number:02d}" if number < 100 else f"{number:03d}",
                "name": f"{town} Fracture Liaison Service",
                "nation": nation,
                "expected_caseload": caseload,
            }
        )
    return rows


def made_elsewhere(rng: random.Random, services: list[dict], start, today, count: int):
    """The generator's rows, made in a process of its own (forked, so with `rng` as it stands:
    the same rows as made here) and handed over in batches, so that making and writing them use
    both cores."""
    context = multiprocessing.get_context("fork")
    batches = context.Queue(maxsize=8)
    maker = context.Process(
        target=_make, args=(batches, rng, services, start, today, count), daemon=True
    )
    maker.start()
    try:
        while (batch := batches.get()) is not None:
            if isinstance(batch, str):
                raise RuntimeError(f"making the rows failed: {batch}")
            yield from batch
    finally:
        maker.kill()
        maker.join()


def _make(batches, rng, services, start, today, count) -> None:
    from portal.operations import synthetic

    try:
        batch = []
        for row in synthetic.generate(rng, services, start, today, count, today):
            batch.append(row)
            if len(batch) == 2_000:
                batches.put(batch)
                batch = []
        batches.put(batch)
        batches.put(None)
    except Exception as error:  # the writer stops with the reason instead of waiting forever
        batches.put(repr(error))


def copy_rows(session):
    """Write each chunk's rows of a table with PostgreSQL's COPY, in the session's transaction:
    several times faster than executemany inserts for millions of rows."""
    from sqlalchemy import JSON

    def bulk(table, rows: list[dict]) -> None:
        columns = list(rows[0])
        as_json = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
        connection = session.connection().connection.driver_connection
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                values = [row[c] for c in columns]
                for i in as_json:
                    if values[i] is not None:
                        values[i] = json.dumps(values[i])
                copy.write_row(values)

    return bulk


def tidy_up(engine) -> None:
    """VACUUM ANALYZE, as after a real bulk load: the planner's statistics, and the visibility map
    that lets the KPI queries read the indexes alone."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", help="SQLite file (default: DATABASE_URL)")
    parser.add_argument("--episodes", type=int, default=500_000)
    parser.add_argument("--years", type=int, default=9)
    parser.add_argument("--services", type=int, default=80)
    parser.add_argument("--today", help="pretend today is this date (YYYY-MM-DD)")
    parser.add_argument("--seed", default="fls-portal-bench")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.years < 1 or not 1 <= args.services <= 999:
        parser.error("--episodes and --years must be above 0, --services between 1 and 999")

    url = f"sqlite:///{Path(args.path).resolve()}" if args.path else os.environ.get("DATABASE_URL")
    if not url:
        parser.error("give an SQLite PATH or set DATABASE_URL")

    from datetime import date

    from flask_migrate import upgrade
    from sqlalchemy import text

    from portal import clock, create_app
    from portal.admin.service_directory import add_service
    from portal.audit import events as audit
    from portal.audit.actor import Actor
    from portal.command_line import progress_bar
    from portal.extensions import db
    from portal.operations import demo, synthetic

    today = date.fromisoformat(args.today) if args.today else clock.today()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        try:
            upgrade()
            if demo.database_has_data():
                print("The database already holds data: nothing added.", file=sys.stderr)
                return 1
            started = time.perf_counter()
            rng = random.Random(f"{args.seed}-{today.isoformat()}")
            services = []
            for row in service_rows(rng, args.services):
                service = add_service(Actor.command_line(), **row)
                service.data_version = 1
                services.append(row | {"id": service.id})
            db.session.commit()

            postgresql = db.engine.dialect.name == "postgresql"
            start = synthetic.years_before(today, args.years) + timedelta(days=1)
            if postgresql:  # the rows are made on the other core while this one writes them
                rows = made_elsewhere(rng, services, start, today, args.episodes)
                db.session.execute(text("SET synchronous_commit = off"))  # a load, not a clinic
            else:
                rows = synthetic.generate(rng, services, start, today, args.episodes, today)
            written = synthetic.write(
                Actor.command_line(),
                db.session,
                rows,
                total=args.episodes,
                progress=progress_bar,
                chunk=10_000,
                after_chunk=db.session.commit,
                bulk=copy_rows(db.session) if postgresql else None,
            )
            audit.record(
                Actor.command_line(),
                "benchmark_data_loaded",
                detail=f"{written.episodes} episodes, {len(services)} services, today {today}",
            )
            db.session.commit()
            written_at = time.perf_counter()
            if postgresql:
                tidy_up(db.engine)
            elapsed = time.perf_counter() - started
            if postgresql:
                print(f"(of which VACUUM ANALYZE {elapsed - (written_at - started):.1f} s)")
            print(
                f"{written.episodes} episodes of {written.patients} patients in {len(services)} "
                f"services, fracture dates {written.first_fracture} to {written.last_fracture}, "
                f"written in {elapsed:.1f} s ({written.episodes / elapsed:,.0f} episodes/s) to "
                f"{db.engine.url.render_as_string(hide_password=True)}"
            )
        finally:
            db.session.remove()
            db.engine.dispose()  # no connection outlives the script
    return 0


if __name__ == "__main__":
    sys.exit(main())
