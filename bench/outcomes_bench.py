"""Outcomes and funnel plots on a national-sized database, beside the raw aggregate query.

    python bench/outcomes_bench.py [PATH.db] [--year 2025] [--as-of 2026-11-27]

PATH is an SQLite file (else DATABASE_URL), filled by bench/make_dataset.py. Prints, in one run:
the raw GROUP BY (service x month over the whole table) and the KPI aggregate query of the year;
then, cold (a fresh app, so an empty figure cache) and warm, the national funnel plots of KPIs
3-11 for the year, their public pages and images, the national outcome figures (index patients,
refractures, deaths), the outcomes export, a service's outcomes page and the national split by
age. Each line shows its cold time as a multiple of the raw GROUP BY.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(action: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
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
    args = parser.parse_args(argv)
    url = f"sqlite:///{Path(args.path).resolve()}" if args.path else os.environ.get("DATABASE_URL")
    if not url:
        parser.error("give an SQLite PATH or set DATABASE_URL")

    from datetime import date

    from sqlalchemy import func, select

    from kpis import counting, outcomes
    from kpis.periods import Period
    from kpis.schema import episodes
    from kpis.sql import month_key
    from portal import create_app
    from portal.extensions import db
    from portal.kpi_pages import comparison, outcome_figures, split_figures
    from portal.kpi_pages.choices import ExportRequest
    from portal.models import Service

    as_of = date.fromisoformat(args.as_of)
    year = Period.year(args.year)
    config = {"SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False, "REDIS_URL": None}

    app = create_app(config)
    with app.app_context():
        dialect = db.engine.dialect.name
        total = db.session.scalar(select(func.count()).select_from(episodes))
        services = db.session.scalar(select(func.count(Service.id)))
        largest_id = db.session.execute(
            select(episodes.c.service_id)
            .group_by(episodes.c.service_id)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar_one()
        largest = db.session.get(Service, largest_id)
        db.session.expunge(largest)
        print(
            f"database: {dialect}, {total:,} episodes, {services} services, year {args.year}, as of {as_of}"
        )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        month = month_key(episodes.c.fracture_date)
        raw_all = select(episodes.c.service_id, month, func.count()).group_by(
            episodes.c.service_id, month
        )
        with db.engine.connect() as conn:
            conn.execute(raw_all).all()  # read the table once, so every figure starts warm on disk
            raw_ms, _ = timed(lambda: conn.execute(raw_all).all(), 5)
            aggregate_ms, _ = timed(lambda: counting.aggregate(conn, year, as_of), 3)
            patients_ms, patients = timed(
                lambda: list(outcomes.index_patients(conn, year, as_of)), 3
            )
        print(f"raw GROUP BY service x month, whole table:   {raw_ms:8.1f} ms")
        print(f"KPI aggregate query, every service, year:    {aggregate_ms:8.1f} ms")
        print(
            f"index patients of the year (one query):      {patients_ms:8.1f} ms ({len(patients):,} patients)"
        )

    def every_funnel() -> None:
        for number in range(3, 12):
            comparison.kpi_funnel(number, year, as_of)

    def funnel_images() -> None:
        for number in range(3, 12):
            comparison.funnel_image(number, year, as_of, None, True, "svg")

    def national_outcomes() -> list[outcomes.OutcomeFigure]:
        return outcomes.figures(outcome_figures.national_follow_up(year, as_of))

    def export() -> str:
        return outcome_figures.export_csv(ExportRequest(year, as_of, None))

    work: dict[str, Callable[[], Any]] = {
        "national funnel plots, KPIs 3-11 (figures)": every_funnel,
        "national funnel plots, KPIs 3-11 (public SVG images)": funnel_images,
        "national outcome figures (4 measures)": national_outcomes,
        "outcomes export, every service (flask outcomes export)": export,
        f"outcomes page of {largest.code} (figures and national)": lambda: (
            outcome_figures.service_outcomes(largest, year, as_of)
        ),
        "national split by age band (KPIs and outcomes)": lambda: split_figures.table(
            "age", None, year, as_of, True
        ),
    }
    print(f"\n{'what':58} {'cold ms':>9} {'warm ms':>9}  {'cold / raw':>10}")
    for label, action in work.items():
        fresh = create_app(config)
        with fresh.app_context():
            cold, _ = timed(action)
            warm, _ = timed(action, 5)
        print(f"{label:58} {cold:9.1f} {warm:9.2f}  {cold / raw_ms:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
