"""KPI figures on a national-sized database: cold and warm, beside the raw SQL GROUP BY.

    python bench/kpis_bench.py [PATH.db] [--year 2025] [--as-of 2026-11-27] [--plans]

PATH is an SQLite file (else DATABASE_URL), filled by bench/make_dataset.py. Prints, for the
national benchmarks table of a year, the largest service's KPI page and one run chart (service
and national): the time cold (a fresh app, so an empty figure cache) and warm (the same request
again), each beside the raw GROUP BY (service x month over the whole table) measured in the same
run, and the largest service's own raw aggregate. `--plans` prints the query plans.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_EMAIL = "kpi-bench-lead@bench.fls.test"
BENCH_PASSWORD = "kpi-bench-Passw0rd-long"
CHANGES = 7  # changes of the largest service's data, each followed by the page


def timed(action, repeat: int = 1) -> tuple[float, object]:
    """Median wall time in milliseconds over `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?")
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--as-of", dest="as_of", default="2026-11-27")
    parser.add_argument("--plans", action="store_true")
    args = parser.parse_args(argv)
    url = f"sqlite:///{Path(args.path).resolve()}" if args.path else os.environ.get("DATABASE_URL")
    if not url:
        parser.error("give an SQLite PATH or set DATABASE_URL")

    from datetime import date

    from sqlalchemy import func, select, text

    from kpis import engine
    from kpis.periods import Month, Period
    from kpis.schema import episodes
    from kpis.sql import month_key
    from portal import create_app
    from portal.accounts import users as accounts
    from portal.audit.actor import Actor
    from portal.extensions import db
    from portal.models import Service, User

    as_of = date.fromisoformat(args.as_of)
    year = Period.year(args.year)
    config = {"SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False, "REDIS_URL": None}

    def fresh_app():
        app = create_app(config)
        return app

    app = fresh_app()
    with app.app_context():
        dialect = db.engine.dialect.name
        total = db.session.scalar(select(func.count()).select_from(episodes))
        services = db.session.scalar(select(func.count(Service.id)))
        largest_id, largest_count = db.session.execute(
            select(episodes.c.service_id, func.count())
            .group_by(episodes.c.service_id)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
        largest = db.session.get(Service, largest_id)
        if db.session.scalar(select(User).where(User.email == BENCH_EMAIL)) is None:
            # The service's lead reads its KPI page (an admin would first need a second factor).
            accounts.create_user(
                Actor.command_line(),
                BENCH_EMAIL,
                "KPI bench",
                "lead",
                [largest],
                password=BENCH_PASSWORD,
            )
            db.session.commit()
        print(f"database: {dialect}, {total:,} episodes, {services} services")
        print(f"largest service: {largest.code} with {largest_count:,} episodes")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )

        month = month_key(episodes.c.fracture_date)
        raw_all = select(episodes.c.service_id, month, func.count()).group_by(
            episodes.c.service_id, month
        )
        raw_service = (
            select(month, func.count()).where(episodes.c.service_id == largest.id).group_by(month)
        )
        with db.engine.connect() as conn:
            conn.execute(raw_all).all()  # read the table once, so every figure starts warm on disk
            raw_all_ms, _ = timed(lambda: conn.execute(raw_all).all(), 5)
            raw_service_ms, _ = timed(lambda: conn.execute(raw_service).all(), 5)
            if args.plans:
                print_plans(conn, dialect, year, as_of, largest.id, raw_all, text)
        print(f"raw GROUP BY service x month, whole table: {raw_all_ms:8.1f} ms")
        print(f"raw GROUP BY month, largest service:       {raw_service_ms:8.1f} ms")

    run = Period(Month(args.year - 1, 1), Month(args.year, 12))
    pages = {
        "national benchmarks table (public page)": f"/benchmarks/?year={args.year}",
        "benchmarks figures only (engine.report)": None,
        f"largest service's KPI page ({largest.code}, year)": (
            f"/kpis/?service={largest.code}&kind=year&year={args.year}&as_of={as_of}"
        ),
        f"run chart page, KPI 4, {largest.code}, 24 months": (
            f"/kpis/4?service={largest.code}&kind=months&from={run.first}&to={run.last}"
            f"&as_of={as_of}"
        ),
        f"run chart image (SVG), KPI 4, {largest.code}, 24 months": (
            f"/kpis/4/chart.svg?service={largest.code}&kind=months&from={run.first}"
            f"&to={run.last}&as_of={as_of}"
        ),
        "public national run chart image (PNG), KPI 9, year": (
            f"/benchmarks/ALL/9/chart.png?year={args.year}"
        ),
    }
    print(f"\n{'what':58} {'cold ms':>9} {'warm ms':>9}  {'cold / raw':>10}")
    for label, url_path in pages.items():
        app = fresh_app()
        with app.app_context():
            if url_path is None:

                def figures():
                    with db.engine.connect() as conn:
                        return engine.report(conn, year, as_of)

                cold, _ = timed(figures)
                warm = float("nan")
            else:
                client = app.test_client()
                if url_path.startswith("/kpis"):
                    sign_in(client)
                cold, response = timed(lambda u=url_path, c=client: c.get(u))
                assert response.status_code == 200, (url_path, response.status_code)
                warm, _ = timed(lambda u=url_path, c=client: c.get(u), 20)
            print(f"{label:58} {cold:9.1f} {warm:9.2f}  {cold / raw_all_ms:10.2f}")

    # What a change of data costs: the service's own data version advances (a save in it), so
    # its figures are computed again while every other service's counts are kept. Each page is
    # measured after 7 changes (the median), so one slow moment does not decide the figure.
    print(
        f"\nafter a change in {largest.code} (other services' counts kept; median of "
        f"{CHANGES} changes), beside its own raw aggregate ({raw_service_ms:.1f} ms):"
    )
    print(f"{'what':58} {'cold ms':>9} {'warm ms':>9}  {'cold / own':>10}")
    for label, url_path in list(pages.items())[2:5]:
        app = fresh_app()
        with app.app_context():
            client = app.test_client()
            sign_in(client)
            client.get(url_path)
            client.get(pages["national benchmarks table (public page)"])
            after_change = []
            for _ in range(CHANGES):
                service = db.session.get(Service, largest.id)
                service.data_version += 1
                db.session.commit()
                cold, response = timed(lambda u=url_path, c=client: c.get(u))
                assert response.status_code == 200
                after_change.append(cold)
            cold = statistics.median(after_change)
            warm, _ = timed(lambda u=url_path, c=client: c.get(u), 20)
            print(f"{label:58} {cold:9.1f} {warm:9.2f}  {cold / raw_service_ms:10.2f}")
    return 0


def sign_in(client) -> None:
    page = client.get("/auth/sign-in")
    import re

    token = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post(
        "/auth/sign-in",
        data={"email": BENCH_EMAIL, "password": BENCH_PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 302, response.status_code


def print_plans(conn, dialect, year, as_of, service_id, raw_all, text) -> None:
    from kpis import counting

    statements = {
        "raw GROUP BY": raw_all,
        "national year": counting.counts_query([year], as_of),
        "one service, two years": counting.counts_query(
            [year.previous(), year], as_of, [service_id]
        ),
    }
    for label, statement in statements.items():
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        print(f"\nplan: {label}")
        for row in conn.execute(text(prefix + str(compiled))):
            print("   ", " | ".join(str(c) for c in row))


if __name__ == "__main__":
    sys.exit(main())
