"""KPI figures from counts (spec/kpis.md).

kpis.counting counts, in one aggregate query, every numerator and denominator; this module turns
those few rows of counts into exact values and bands, the national row and the month-by-month
series: no loop ever runs over episodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from sqlalchemy.engine import Connection

from kpis import dataset
from kpis.counting import (
    COUNT_NAMES,
    FIELD_COUNTED_IN,
    Counts,
    ServiceInfo,
    aggregate,
    load_services,
)
from kpis.definitions import GREEN, KPI, KPIS, NONE, RED, SUPPRESS_BELOW
from kpis.funnel import Funnel, Point, funnel
from kpis.numbers import format_denominator, format_value, percent
from kpis.periods import Month, Period

# A service meets KPI 1 when fewer than this many counted fields are more than 20% missing.
KPI1_MAX_FAILING = 5

# --- from counts to figures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One KPI's figure: numerator, denominator (KPI 2's may be fractional), exact value, band."""

    kpi: KPI
    numerator: int
    denominator: int | Fraction
    value: Fraction | None
    band: str

    @property
    def value_text(self) -> str:
        return format_value(self.value)

    @property
    def denominator_text(self) -> str:
        return format_denominator(self.denominator)

    @property
    def suppressed(self) -> bool:
        """Public pages hide a value whose denominator is below 5."""
        return self.denominator < SUPPRESS_BELOW


def _figure(
    kpi: KPI, numerator: int, denominator: int | Fraction, band: str | None = None
) -> Figure:
    value = percent(numerator, denominator)
    return Figure(kpi, numerator, denominator, value, band if band is not None else kpi.band(value))


def completeness(counts: Counts) -> tuple[int, int, list[str]]:
    """KPI 1 of one group: (fields at most 20% missing, fields counted, fields over 20% missing)."""
    ok = counted_fields = 0
    failing = []
    for name in dataset.AUDITED_FIELDS:
        counted = counts[FIELD_COUNTED_IN[name]]
        if counted == 0:
            continue
        counted_fields += 1
        # missing / counted <= 0.20, in whole numbers
        if counts[f"missing_{name}"] * 5 <= counted:
            ok += 1
        else:
            failing.append(name)
    return ok, counted_fields, failing


def meets_kpi1(counts: Counts) -> bool | None:
    """Whether a service meets KPI 1; None when it has no counted field (no value)."""
    ok, counted, _ = completeness(counts)
    if counted == 0:
        return None
    return counted - ok < KPI1_MAX_FAILING


def expected(caseload: int, months: int) -> Fraction:
    """KPI 2's denominator for one service: expected caseload x months / 12."""
    return Fraction(caseload * months, 12)


EMPTY_COUNTS: Counts = dict.fromkeys(COUNT_NAMES, 0)


def service_figures(counts: Counts, caseload: int, months: int) -> list[Figure]:
    """The 11 figures of one service from its counts."""
    ok, counted, _ = completeness(counts)
    meets = meets_kpi1(counts)
    kpi1_band = NONE if meets is None else (GREEN if meets else RED)
    figures = [
        _figure(KPIS[0], ok, counted, kpi1_band),
        _figure(KPIS[1], counts["cohort"], expected(caseload, months)),
    ]
    figures.extend(_proportion_figures(counts))
    return figures


# KPIs 3-11 (the proportions of patients that funnel plots compare): the counts of each one's
# numerator and denominator.
PROPORTIONS: dict[int, tuple[str, str]] = {
    3: ("k3_num", "cohort"),
    4: ("k4_num", "k4_den"),
    5: ("k5_num", "k5_den"),
    6: ("k6_num", "cohort"),
    7: ("k7_num", "cohort"),
    8: ("k8_num", "k8_den"),
    9: ("k9_num", "k9_den"),
    10: ("k10_num", "k9_den"),
    11: ("k11_num", "k11_den"),
}


def _proportion_figures(counts: Counts) -> list[Figure]:
    return [
        _figure(KPIS[number - 1], counts[numerator], counts[denominator])
        for number, (numerator, denominator) in PROPORTIONS.items()
    ]


def national_figures(
    groups: Sequence[tuple[Counts, int]], months: int, only: int | None = None
) -> list[Figure]:
    """The national row: pools the services with at least one episode in the cohort.

    `groups` holds (counts, expected caseload) per service. National KPI 1 is the share of those
    services that meet KPI 1, banded 80/50. With `only` set to a KPI other than 1, only the
    counts of that KPI are pooled (a run chart draws one KPI); the others are left at no value.
    """
    pooled = [(counts, caseload) for counts, caseload in groups if counts["cohort"] > 0]
    names = COUNT_NAMES if only is None or only == 1 else ("cohort", *PROPORTIONS.get(only, ()))
    total = dict(EMPTY_COUNTS)
    total.update({name: sum(counts[name] for counts, _ in pooled) for name in names})
    if only is None or only == 1:
        verdicts = [meets_kpi1(counts) for counts, _ in pooled]
        counted = [v for v in verdicts if v is not None]
        kpi1 = _figure(KPIS[0], sum(counted), len(counted))
    else:
        kpi1 = _figure(KPIS[0], 0, 0)
    figures = [
        kpi1,
        # The sum of every pooled service's expected caseload x months / 12, exactly.
        _figure(KPIS[1], total["cohort"], expected(sum(c for _, c in pooled), months)),
    ]
    figures.extend(_proportion_figures(total))
    return figures


# --- reports ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One service's (or the national) 11 figures; `service` None is the national row."""

    service: ServiceInfo | None
    figures: list[Figure]
    episodes: int

    @property
    def code(self) -> str:
        return self.service.code if self.service else "ALL"

    @property
    def name(self) -> str:
        return self.service.name if self.service else "National (all services)"


@dataclass
class Report:
    """Figures for services x a run of months x an as-of date, with the national row."""

    period: Period
    as_of: date
    rows: list[Row]
    national: Row
    counts: dict[int, Counts] = field(default_factory=dict)

    def row_for(self, service_id: int) -> Row | None:
        return next((r for r in self.rows if r.service and r.service.id == service_id), None)


def report(
    conn: Connection,
    period: Period,
    as_of: date,
    service_ids: Iterable[int] | None = None,
    include_empty: bool = False,
    national: bool = True,
) -> Report:
    """Figures of each service with episodes in the cohort (or of every service asked for when
    `include_empty`), in order of code, and the national row over every service.

    With `national=False` only the services asked for are counted, and the national row is
    left empty (the export of one service writes no national rows)."""
    infos = load_services(conn)
    scope = None if national or service_ids is None else service_ids
    counts = {sid: c for (sid, _), c in aggregate(conn, period, as_of, scope).items()}
    return report_from_counts(
        infos, counts if national else {}, period, as_of, service_ids, include_empty, counts
    )


def report_from_counts(
    infos: dict[int, ServiceInfo],
    counts: dict[int, Counts],
    period: Period,
    as_of: date,
    service_ids: Iterable[int] | None = None,
    include_empty: bool = False,
    row_counts: dict[int, Counts] | None = None,
) -> Report:
    """A report from each service's counts (services without episodes absent from `counts`);
    `row_counts`, when given, feeds the service rows instead of `counts`."""
    wanted = None if service_ids is None else set(service_ids)
    row_counts = counts if row_counts is None else row_counts
    rows = []
    for info in sorted(infos.values(), key=lambda s: s.code):
        if wanted is not None and info.id not in wanted:
            continue
        service_counts = row_counts.get(info.id)
        if service_counts is None and not (include_empty and wanted is not None):
            continue
        service_counts = service_counts or EMPTY_COUNTS
        rows.append(
            Row(
                info,
                service_figures(service_counts, info.expected_caseload, period.months),
                service_counts["cohort"],
            )
        )
    pooled = [(c, infos[sid].expected_caseload) for sid, c in counts.items() if sid in infos]
    national = Row(
        None, national_figures(pooled, period.months), sum(c["cohort"] for c, _ in pooled)
    )
    return Report(period, as_of, rows, national, dict(counts))


@dataclass(frozen=True)
class MonthPoint:
    """One month of a run chart."""

    month: Month
    numerator: int
    denominator: int | Fraction
    value: Fraction | None

    @property
    def suppressed(self) -> bool:
        return self.denominator < SUPPRESS_BELOW


MonthlyGroups = dict[tuple[int, str | None], Counts]


def monthly_groups(
    conn: Connection, period: Period, as_of: date, service_id: int | None = None
) -> MonthlyGroups:
    """The counts of every service (or one) by fracture month: one query that serves the run
    charts of all 11 KPIs, for a service and nationally."""
    return aggregate(
        conn, period, as_of, None if service_id is None else [service_id], by_month=True
    )


def series_from_groups(
    groups: MonthlyGroups,
    kpi_number: int,
    period: Period,
    caseloads: dict[int, int],
    service_id: int | None = None,
) -> list[MonthPoint]:
    """One KPI month by month for a service, or nationally (None), from `monthly_groups`.
    Months whose denominator is 0 are left out."""
    by_month: dict[str, list[tuple[Counts, int]]] = {}
    for (sid, month), counts in groups.items():
        if service_id is None or sid == service_id:
            by_month.setdefault(month or "", []).append((counts, caseloads.get(sid, 0)))
    points = []
    for each in period.each_month():
        members = by_month.get(each.key, [])
        if service_id is None:
            figure = national_figures(members, 1, only=kpi_number)[kpi_number - 1]
        else:
            # A month without episodes still has KPI 2's expected caseload (value 0).
            counts = members[0][0] if members else EMPTY_COUNTS
            figure = service_figures(counts, caseloads.get(service_id, 0), 1)[kpi_number - 1]
        if figure.denominator == 0:
            continue
        points.append(MonthPoint(each, figure.numerator, figure.denominator, figure.value))
    return points


def monthly_series(
    conn: Connection,
    kpi_number: int,
    period: Period,
    as_of: date,
    service_id: int | None = None,
) -> list[MonthPoint]:
    """One KPI month by month (cohort = fracture month), for a service or nationally (None), from
    one query. Months whose denominator is 0 are left out."""
    caseloads = {
        sid: info.expected_caseload
        for sid, info in load_services(conn, None if service_id is None else [service_id]).items()
    }
    groups = monthly_groups(conn, period, as_of, service_id)
    return series_from_groups(groups, kpi_number, period, caseloads, service_id)


# --- funnel plots -------------------------------------------------------------------------------


def funnel_points(
    kpi_number: int, counts: dict[int, Counts], infos: dict[int, ServiceInfo]
) -> list[Point]:
    """Each service's numerator and denominator of one KPI 3-11, for those (active or not) with a
    denominator of at least 1, in ascending order of code."""
    numerator, denominator = PROPORTIONS[kpi_number]
    points = [
        Point(infos[sid].code, group[numerator], group[denominator])
        for sid, group in counts.items()
        if sid in infos and group[denominator] >= 1
    ]
    return sorted(points, key=lambda p: p.code)


def kpi_funnel(conn: Connection, kpi_number: int, period: Period, as_of: date) -> Funnel:
    """The funnel plot of one KPI 3-11 over a period, every service a point."""
    counts = {sid: c for (sid, _), c in aggregate(conn, period, as_of).items()}
    return funnel(funnel_points(kpi_number, counts, load_services(conn)))
