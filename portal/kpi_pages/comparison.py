"""Fair comparison for the portal (spec/outcomes.md, "Funnel plots"): each KPI's funnel plot over
a period, from the same kept per-service counts as every KPI page; where a service sits; the
current alerts and alarms of the outlier policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kpis import charts, engine, export, plots
from kpis.definitions import KPI, KPI_BY_NUMBER
from kpis.funnel import (
    ABOVE_95,
    ABOVE_998,
    BELOW_95,
    BELOW_998,
    FLAG_WORDS,
    Funnel,
    FunnelPoint,
    funnel,
)
from kpis.funnel_chart import FunnelChart
from kpis.periods import Period
from portal.extensions import db
from portal.kpi_pages.caching import cached, counts_by_service, data_versions, service_infos
from portal.kpi_pages.choices import FUNNEL_KPIS, ExportRequest

ALARMS = (ABOVE_998, BELOW_998)
ALERTS = (ABOVE_95, BELOW_95)


def funnel_csv(kpi_number: int, request: ExportRequest) -> str:
    """`flask kpis funnel`: one KPI's points and limits as CSV (outcomes.md, "Export")."""
    with db.engine.connect() as conn:
        plot = engine.kpi_funnel(conn, kpi_number, request.period, request.as_of)
    return export.funnel_csv(plot)


def kpi_funnel(kpi_number: int, period: Period, as_of: date) -> Funnel:
    """One KPI's funnel plot, every service a point, kept once per change of any service's data."""
    versions = data_versions()

    def compute() -> Funnel:
        (counts,) = counts_by_service([period], as_of, versions=versions)
        present = {sid: c for sid, c in counts.items() if c is not None}
        return funnel(engine.funnel_points(kpi_number, present, service_infos()))

    what = {"page": "funnel", "kpi": kpi_number, "period": str(period), "as_of": as_of}
    return cached(what, compute, versions)


@dataclass(frozen=True)
class Position:
    """Where one service sits on one KPI's funnel plot (None: not a point, no denominator)."""

    kpi: KPI
    point: FunnelPoint | None
    plot: Funnel

    @property
    def words(self) -> str:
        if self.point is None:
            return "not on the funnel plot (no patient in the denominator)"
        return FLAG_WORDS[self.point.flag]

    @property
    def level(self) -> str:
        """alarm (beyond 99.8%), alert (beyond 95%) or none."""
        if self.point is None:
            return "none"
        if self.point.flag in ALARMS:
            return "alarm"
        if self.point.flag in ALERTS:
            return "alert"
        return "none"


def positions(service_code: str, period: Period, as_of: date) -> list[Position]:
    """Where a service sits on the funnel plot of each KPI 3-11."""
    result = []
    for number in FUNNEL_KPIS:
        plot = kpi_funnel(number, period, as_of)
        point = next((p for p in plot.points if p.point.code == service_code), None)
        result.append(Position(KPI_BY_NUMBER[number], point, plot))
    return result


def funnel_chart(
    kpi_number: int, period: Period, as_of: date, highlight: str | None, public: bool
) -> FunnelChart:
    """The funnel plot as a page shows it: signed-in users see every point with their service
    highlighted; the public page draws only services with a denominator of 5 or more."""
    plot = kpi_funnel(kpi_number, period, as_of)
    return FunnelChart(KPI_BY_NUMBER[kpi_number], period, plot, highlight, public)


def funnel_image(
    kpi_number: int,
    period: Period,
    as_of: date,
    highlight: str | None,
    public: bool,
    fmt: str,
    size: str = charts.WIDE,
) -> bytes:
    """The funnel plot drawn as SVG or PNG, once per change of the data."""
    what = {
        "page": "funnel_image",
        "kpi": kpi_number,
        "period": str(period),
        "as_of": as_of,
        "highlight": highlight,
        "public": public,
        "format": fmt,
        "size": size,
    }
    chart = funnel_chart(kpi_number, period, as_of, highlight, public)
    return cached(what, lambda: plots.to_bytes(plots.draw_funnel(chart, size), fmt))


@dataclass(frozen=True)
class Signal:
    """An alert or alarm of the outlier policy: a service beyond a limit on one KPI."""

    service_code: str
    service_name: str
    kpi: KPI
    point: FunnelPoint
    level: str  # alert or alarm

    @property
    def words(self) -> str:
        return FLAG_WORDS[self.point.flag]


def signals(services: list[tuple[str, str]], period: Period, as_of: date) -> list[Signal]:
    """The alerts (beyond 95%) and alarms (beyond 99.8%) of the given services, (code, name), on
    each KPI 3-11 over the period: alarms first, then by service and KPI."""
    found = []
    for number in FUNNEL_KPIS:
        plot = kpi_funnel(number, period, as_of)
        by_code = {p.point.code: p for p in plot.points}
        for code, name in services:
            point = by_code.get(code)
            if point is None:
                continue
            if point.flag in ALARMS:
                found.append(Signal(code, name, KPI_BY_NUMBER[number], point, "alarm"))
            elif point.flag in ALERTS:
                found.append(Signal(code, name, KPI_BY_NUMBER[number], point, "alert"))
    return sorted(found, key=lambda s: (s.level != "alarm", s.service_code, s.kpi.number))
