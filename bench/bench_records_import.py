"""Bulk CSV import and export of episodes on SQLite: rows per second, the length of the write
transaction, and peak memory (prints its figures; see docs/bench-import.md).

Run from the repository root:
    PYTHONPATH=. python bench/bench_records_import.py [rows] [--memory]

Without --memory it times an import of `rows` new episodes into an empty database (check, then
the one write transaction), the same file again (every row unchanged), and an export. With
--memory it measures the peak of Python allocations (tracemalloc) during the import of files of
rows/4, rows/2 and rows rows, to show how memory grows with the file.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

from kpis.dataset import CSV_COLUMNS
from tests.records_csv import nhs_number

SITES = ["Hip", "Spine", "Wrist", "Humerus", "Pelvis", "Other", "Wrist;Humerus"]
DRUGS = ["Alendronate", "Risedronate", "Zoledronate", "Denosumab", "Not appropriate", ""]


def make_file(path: Path, rows: int, seed: int = 7) -> None:
    """A realistic canonical file: about one patient in ten has a second fracture."""
    rng = random.Random(seed)
    start = date(2019, 1, 1)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(CSV_COLUMNS) + "\n")
        patient = 0
        written = 0
        while written < rows:
            patient += 1
            nhs = nhs_number(patient)
            born = date(1925, 1, 1) + timedelta(days=rng.randrange(0, 365 * 40))
            sex = rng.choice(["Female", "Female", "Female", "Male"])
            fractures = 2 if rng.random() < 0.1 else 1
            first = start + timedelta(days=rng.randrange(0, 365 * 6))
            for n in range(min(fractures, rows - written)):
                fracture = first + timedelta(days=400 * n)
                seen = fracture + timedelta(days=rng.randrange(1, 30))
                assessed = fracture + timedelta(days=rng.randrange(10, 120))
                dxa = assessed + timedelta(days=rng.randrange(0, 60))
                cells = {
                    "service_code": "BEN",
                    "nhs_number": nhs,
                    "date_of_birth": born.strftime("%d/%m/%Y"),
                    "sex": sex,
                    "postcode": "SW1A 2AA",
                    "care_home_resident": rng.choice(["No", "No", "Yes", "Don't know"]),
                    "fracture_date": fracture.isoformat(),
                    "identification_date": seen.isoformat(),
                    "admitted": rng.choice(["Yes", "No"]),
                    "fracture_sites": rng.choice(SITES),
                    "assessment_date": assessed.isoformat(),
                    "height_cm": str(rng.randrange(140, 190)),
                    "weight_kg": f"{rng.randrange(450, 950) / 10:.1f}",
                    "previous_fracture": rng.choice(["Yes", "No"]),
                    "smoker": rng.choice(["Current", "Ex", "Never"]),
                    "on_bone_therapy_at_fracture": "No",
                    "dxa_status": "Recommended",
                    "dxa_date": dxa.isoformat(),
                    "t_score": f"{rng.randrange(-40, 10) / 10:.1f}",
                    "falls_assessed": rng.choice(["Yes", "No"]),
                    "bone_therapy": rng.choice(DRUGS),
                    "calcium_vitd": "Yes",
                }
                out.write(",".join(cells.get(c, "") for c in CSV_COLUMNS) + "\n")
                written += 1


def make_app(folder: Path):
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db
    from portal.models import Service

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.db'}", "SECRET_KEY": "bench"}
    )
    with app.app_context():
        upgrade()
        db.session.add(Service(code="BEN", name="Bench", nation="England", expected_caseload=900))
        db.session.commit()
    return app


def timed_import(path: Path) -> tuple[dict, float, float]:
    """Import a file; returns the report, seconds checking, seconds in the write transaction.

    Also prints the CPU seconds of this process, which a busy shared machine disturbs less.
    """
    from portal.audit.actor import Actor
    from portal.extensions import db
    from portal.records import importing as record_import

    cpu = time.process_time()
    started = time.perf_counter()
    plan = record_import.check_file(path, service=None)
    checked = time.perf_counter()
    check_cpu = time.process_time() - cpu
    try:
        if plan.report.refused:
            raise SystemExit(f"benchmark file refused: {plan.report.refusals[:3]}")
        record_import.apply_plan(plan, Actor.command_line())
        db.session.commit()
    finally:
        plan.close()
    written = time.perf_counter()
    cpu = time.process_time() - cpu
    rows = plan.report.rows
    print(
        f"  (CPU time of this process: {cpu:.1f} s, {rows / cpu:,.0f} rows per CPU second; "
        f"check {check_cpu:.1f} s, write {cpu - check_cpu:.1f} s)"
    )
    return plan.report, checked - started, written - checked


def speed(rows: int) -> None:
    from portal.extensions import db
    from portal.models import Service
    from portal.records import export as record_export

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "episodes.csv"
        make_file(path, rows)
        size = path.stat().st_size / (1024 * 1024)
        app = make_app(folder)
        with app.app_context():
            report, check_s, write_s = timed_import(path)
            total = check_s + write_s
            print(f"file: {rows} rows, {size:.1f} MB")
            print(
                f"import into an empty database: {total:.1f} s, {rows / total:,.0f} rows/s "
                f"(check {check_s:.1f} s, write transaction {write_s:.2f} s); "
                f"added {report.added}"
            )
            report, check_s, write_s = timed_import(path)
            total = check_s + write_s
            print(
                f"same file again: {total:.1f} s, {rows / total:,.0f} rows/s; "
                f"unchanged {report.unchanged}, write transaction {write_s:.2f} s"
            )
            service = db.session.query(Service).filter_by(code="BEN").one()
            started, cpu = time.perf_counter(), time.process_time()
            size = sum(len(chunk) for chunk in record_export.export_csv(service))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            print(
                f"export: {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s "
                f"({rows / cpu:,.0f} rows per CPU second), {size / (1024 * 1024):.1f} MB of CSV"
            )


def memory(rows: int) -> None:
    for n in (rows // 4, rows // 2, rows):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = folder / "episodes.csv"
            make_file(path, n)
            app = make_app(folder)
            with app.app_context():
                tracemalloc.start()
                timed_import(path)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            # ru_maxrss (KB on Linux) also counts C allocations; it is the process's peak so far.
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"import of {n} rows: peak Python allocations {peak / (1024 * 1024):.1f} MB "
                f"(process peak resident size so far {rss:.0f} MB)"
            )


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(arguments[0]) if arguments else 100_000
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, SQLite"
    )
    if "--memory" in sys.argv:
        memory(count)
    else:
        speed(count)
