"""KPI figures for the portal's pages: the service page, run charts, benchmarks and the annual
report, each cached once per change of the data (portal.kpi_pages.caching); the export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

from sqlalchemy import select

from kpis import charts, counting, engine, runchart
from kpis.csv_output import csv_text
from kpis.definitions import AMBER, KPI, KPIS, RED
from kpis.engine import Figure, Report, Row
from kpis.periods import Period
from kpis.recommendations import recommendations_for
from portal import pdf
from portal.extensions import db
from portal.kpi_pages import outcome_figures
from portal.kpi_pages.caching import cached, counts_by_service, data_versions, service_infos
from portal.kpi_pages.choices import NATIONAL, ExportRequest
from portal.models import Service


def export_csv(request: ExportRequest) -> str:
    """The export CSV of kpis.md for a checked request."""
    from kpis.export import export_csv as to_csv

    with db.engine.connect() as conn:
        report = engine.report(
            conn,
            request.period,
            request.as_of,
            service_ids=None if request.service is None else [request.service.id],
            include_empty=True,
            national=request.service is None,
        )
    return to_csv(report, include_national=request.service is None)


def _report(
    counts: dict[int, Any],
    infos: dict[int, counting.ServiceInfo],
    period: Period,
    as_of: date,
    service: Service | None = None,
) -> Report:
    """The report from kept counts: every service's row, or only `service`'s (a service page
    needs its own row and the national one)."""
    present = {sid: c for sid, c in counts.items() if c is not None}
    wanted = None if service is None else [service.id]
    return engine.report_from_counts(
        infos, present, period, as_of, wanted, include_empty=service is not None
    )


def full_report(period: Period, as_of: date) -> Report:
    """Every service with episodes and the national row (benchmarks, service pages), cached."""
    versions = data_versions()

    def compute() -> Report:
        (counts,) = counts_by_service([period], as_of, versions=versions)
        return _report(counts, service_infos(), period, as_of)

    what = {"page": "report", "period": str(period), "as_of": as_of}
    return cached(what, compute, versions)


def empty_row(service: Service, period: Period) -> Row:
    """A service's row without an episode in the period."""
    info = counting.ServiceInfo(
        service.id, service.code, service.name, service.expected_caseload, service.data_version
    )
    figures = engine.service_figures(engine.EMPTY_COUNTS, service.expected_caseload, period.months)
    return Row(info, figures, 0)


def _service_row(report: Report, service: Service) -> Row:
    row = report.row_for(service.id)
    if row is not None:
        return row
    info = counting.ServiceInfo(
        service.id, service.code, service.name, service.expected_caseload, service.data_version
    )
    figures = engine.service_figures(
        engine.EMPTY_COUNTS, service.expected_caseload, report.period.months
    )
    return Row(info, figures, 0)


# --- the service KPI page -----------------------------------------------------------------------


def _change(figure: Figure, previous: Figure) -> Fraction | None:
    """Change from the previous period, in percentage points (None when either has no value)."""
    if figure.value is None or previous.value is None:
        return None
    return figure.value - previous.value


@dataclass(frozen=True)
class KpiLine:
    """One KPI on a service's page: this period, the national value, the previous period."""

    kpi: KPI
    figure: Figure
    national: Figure
    previous: Figure

    @property
    def change(self) -> Fraction | None:
        return _change(self.figure, self.previous)


@dataclass
class ServicePage:
    service_code: str
    service_name: str
    period: Period
    previous_period: Period
    as_of: date
    lines: list[KpiLine]
    episodes: int


def service_page(service: Service, period: Period, as_of: date) -> ServicePage:
    """The 11 KPIs of a service for a period: value, numerator and denominator, band, the national
    value for the same period and the change from the previous period."""
    previous = period.previous()
    versions = data_versions()

    def compute() -> ServicePage:
        # This service's two periods in one pass over its episodes, then the national column
        # (every service's counts of this period, this one's now kept); the previous period is
        # shown for this service only.
        _, before_counts = counts_by_service(
            [period, previous], as_of, versions=versions, only=service.id
        )
        (now_counts,) = counts_by_service([period], as_of, versions=versions)
        infos = service_infos()
        now, before = (
            _report(now_counts, infos, period, as_of, service),
            _report(before_counts, infos, previous, as_of, service),
        )
        row, earlier = _service_row(now, service), _service_row(before, service)
        lines = [
            KpiLine(kpi, row.figures[i], now.national.figures[i], earlier.figures[i])
            for i, kpi in enumerate(KPIS)
        ]
        return ServicePage(service.code, service.name, period, previous, as_of, lines, row.episodes)

    what = {"page": "service", "service": service.id, "period": str(period), "as_of": as_of}
    return cached(what, compute, versions)


# --- run charts ---------------------------------------------------------------------------------


def monthly_groups(period: Period, as_of: date) -> tuple[engine.MonthlyGroups, dict[int, int]]:
    """Every service's counts by fracture month, and the caseloads: shared (cached) by the run
    charts of every KPI and service for the same months."""
    groups: engine.MonthlyGroups = {}
    (by_service,) = counts_by_service([period], as_of, by_month=True)
    for sid, months in by_service.items():
        for month, counts in (months or {}).items():  # type: ignore[attr-defined]
            groups[(sid, month)] = counts
    caseloads = {sid: info.expected_caseload for sid, info in service_infos().items()}
    return groups, caseloads


def run_chart(
    kpi_number: int, service: Service | None, period: Period, as_of: date, public: bool
) -> runchart.RunChart:
    """One KPI month by month for a service (with the national line) or nationally (None)."""
    kpi = KPIS[kpi_number - 1]
    what = {
        "page": "run_chart",
        "kpi": kpi_number,
        "service": service.code if service else NATIONAL,
        "period": str(period),
        "as_of": as_of,
        "public": public,
    }

    def compute() -> runchart.RunChart:
        groups, caseloads = monthly_groups(period, as_of)
        national = engine.series_from_groups(groups, kpi_number, period, caseloads)
        if service is None:
            return runchart.build(kpi, "National", period, national, public=public)
        points = engine.series_from_groups(groups, kpi_number, period, caseloads, service.id)
        return runchart.build(kpi, service.name, period, points, national, public=public)

    return cached(what, compute)


def chart_image(
    kpi_number: int,
    service: Service | None,
    period: Period,
    as_of: date,
    public: bool,
    fmt: str,
    size: str = charts.WIDE,
) -> bytes:
    """The run chart drawn as SVG or PNG, wide or narrow; drawn once per change of the data."""
    what = {
        "page": "chart_image",
        "kpi": kpi_number,
        "service": service.code if service else NATIONAL,
        "period": str(period),
        "as_of": as_of,
        "public": public,
        "format": fmt,
        "size": size,
    }
    return cached(
        what,
        lambda: charts.render(run_chart(kpi_number, service, period, as_of, public), fmt, size),
    )


# --- public benchmarks --------------------------------------------------------------------------


SORT_KEYS = ("code", "name") + tuple(f"kpi{k.number}" for k in KPIS)


def benchmarks(year: int, as_of: date, sort: str = "code", descending: bool = False) -> Report:
    """The benchmarks table for a year: the national row, then a row per service with episodes,
    sorted by code, name or a KPI's value (suppressed and empty values last)."""
    report = full_report(Period.year(year), as_of)
    rows = list(report.rows)
    if sort in ("code", "name"):
        rows.sort(key=lambda r: getattr(r, sort).lower(), reverse=descending)
    elif sort in SORT_KEYS:
        index = int(sort[3:]) - 1

        def key(row: Row) -> tuple[bool, Fraction, str]:
            figure = row.figures[index]
            hidden = figure.value is None or figure.suppressed
            value = Fraction(0) if hidden or figure.value is None else figure.value
            return (hidden, -value if descending else value, row.code)

        rows.sort(key=key)
    return Report(report.period, report.as_of, rows, report.national, report.counts)


def benchmarks_csv(report: Report) -> str:
    """The public table as CSV: suppressed values say "fewer than 5" and show no numbers. Service
    names are text cells like any other: neutralised (kpis/csv_output.py)."""

    def rows() -> Iterator[list[object]]:
        for row in [report.national, *report.rows]:
            for figure in row.figures:
                if figure.suppressed:
                    cells = ["", "", "fewer than 5", "none"]
                else:
                    cells = [
                        str(figure.numerator),
                        figure.denominator_text,
                        figure.value_text,
                        figure.band,
                    ]
                yield [row.code, row.name, report.period.first.year, figure.kpi.number, *cells]

    header = ["service_code", "service_name", "year", "kpi", "numerator", "denominator"]
    return csv_text([*header, "value", "band"], rows())


# --- the annual report --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportLine:
    kpi: KPI
    figure: Figure
    previous: Figure
    national: Figure
    recommendations: tuple[str, ...]

    @property
    def change(self) -> Fraction | None:
        return _change(self.figure, self.previous)


@dataclass
class AnnualReport:
    service_code: str
    service_name: str
    year: int
    as_of: date
    lines: list[ReportLine]
    episodes: int

    @property
    def needing_attention(self) -> list[ReportLine]:
        return [line for line in self.lines if line.recommendations]


def annual_report(service: Service, year: int, as_of: date) -> AnnualReport:
    """Each KPI of a service for a year against the previous year and the national figure, with
    recommendations for every amber or red KPI."""
    page = service_page(service, Period.year(year), as_of)
    lines = [
        ReportLine(
            line.kpi,
            line.figure,
            line.previous,
            line.national,
            recommendations_for(line.kpi.number) if line.figure.band in (AMBER, RED) else (),
        )
        for line in page.lines
    ]
    return AnnualReport(service.code, service.name, year, as_of, lines, page.episodes)


def all_services() -> list:
    """Every service's id, code and name, in order of code (an admin's service picker)."""
    query = select(Service.id, Service.code, Service.name).order_by(Service.code)
    return list(db.session.execute(query).all())


def report_images(service: Service, year: int, as_of: date) -> dict[object, str]:
    """The annual report's charts as inline PNG images for its PDF: "curve" (another fracture)
    and each KPI's run chart by number, wide, as on a desktop."""
    period = Period.year(year)
    images: dict[object, str] = {
        "curve": pdf.inline_image(outcome_figures.curve_image(service, period, as_of, "png"))
    }
    for kpi in KPIS:
        png = chart_image(kpi.number, service, period, as_of, False, "png")
        images[kpi.number] = pdf.inline_image(png)
    return images
