"""Who is left behind (issue 20): a service's and the national KPIs and outcomes split by sex,
age band, care-home residence and fracture site, from counts kept per service data version."""

from __future__ import annotations

from datetime import date

from kpis import charts, plots, split_table
from kpis.periods import Period
from kpis.split_table import SplitTable
from kpis.splits import SPLIT_BY_NAME, SplitCounts, split_counts
from portal.extensions import db
from portal.kpi_pages.caching import cached, data_versions, per_service, service_infos
from portal.kpi_pages.choices import NATIONAL
from portal.models import Service


def counts(split: str, period: Period, as_of: date) -> dict[int, SplitCounts | None]:
    """Every service's counts by part of the split, each kept under its own data version."""

    def compute(scope: set[int] | None) -> dict[int, SplitCounts]:
        with db.engine.connect() as conn:
            return split_counts(conn, split, period, as_of, scope)

    what = {"page": "split_counts", "split": split, "period": str(period), "as_of": as_of}
    return per_service(what, compute)


def table(
    split: str, service: Service | None, period: Period, as_of: date, public: bool
) -> SplitTable:
    """The split of one service, or nationally (None): every service with data pooled."""
    versions = data_versions()

    def compute() -> SplitTable:
        infos = service_infos()
        groups = counts(split, period, as_of)
        if service is not None:
            own = groups.get(service.id) or SplitCounts({}, {})
            entries = [(own.kpis, own.outcomes, service.expected_caseload)]
            return split_table.build(
                SPLIT_BY_NAME[split], service.name, period, entries, national=False, public=public
            )
        entries = [
            (group.kpis, group.outcomes, infos[sid].expected_caseload)
            for sid, group in groups.items()
            if group is not None and sid in infos
        ]
        return split_table.build(
            SPLIT_BY_NAME[split], "National", period, entries, national=True, public=public
        )

    what = {
        "page": "split_table",
        "split": split,
        "service": service.code if service else NATIONAL,
        "period": str(period),
        "as_of": as_of,
        "public": public,
    }
    return cached(what, compute, versions)


def chart_image(
    split: str,
    service: Service | None,
    period: Period,
    as_of: date,
    public: bool,
    fmt: str,
    size: str = charts.WIDE,
) -> bytes:
    """The split drawn as a dot plot (KPIs 3-11 and the outcomes), once per change of the data."""

    def draw() -> bytes:
        shown = table(split, service, period, as_of, public)
        rows = shown.chart_rows()

        def value(cell: split_table.Cell) -> float | None:
            return None if cell.suppressed or cell.value is None else float(cell.value)

        parts = [
            (label, [value(row.parts[i]) for row in rows])
            for i, label in enumerate(shown.part_labels)
        ]
        figure = plots.draw_split(
            shown.title,
            [row.label for row in rows],
            parts,
            [value(row.whole) for row in rows],
            size,
        )
        return plots.to_bytes(figure, fmt)

    what = {
        "page": "split_image",
        "split": split,
        "service": service.code if service else NATIONAL,
        "period": str(period),
        "as_of": as_of,
        "public": public,
        "format": fmt,
        "size": size,
    }
    return cached(what, draw)
