"""KPI figures computed in the database (spec/kpis.md).

One aggregate query counts, per service (and per fracture month for run charts), every numerator
and denominator the 11 KPIs need, plus the missing counts of the 17 audited fields. Python then
turns those few rows of counts into exact values and bands: no loop ever runs over episodes.
The same SQLAlchemy Core statement runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from sqlalchemy import Date, and_, case, func, literal, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from kpis import dataset
from kpis.definitions import GREEN, KPI, KPIS, NONE, RED, SUPPRESS_BELOW
from kpis.numbers import format_denominator, format_value, percent
from kpis.periods import DueCutoffs, Month, Period
from kpis.schema import episodes, patients, services
from kpis.sql import month_key, plus_days

# Which episodes each audited field is counted in (KPI 1): the cohort, or those due at 16/52 weeks.
FIELD_COUNTED_IN = {name: "cohort" for name in dataset.AUDITED_FIELDS} | {
    "followup16_done": "due16",
    "strength_balance16": "due16",
    "followup52_done": "due52",
}
# A service meets KPI 1 when fewer than this many counted fields are more than 20% missing.
KPI1_MAX_FAILING = 5


@dataclass(frozen=True)
class ServiceInfo:
    """What the engine needs to know of a service."""

    id: int
    code: str
    name: str
    expected_caseload: int
    data_version: int
    active: bool = True


# --- the aggregate query ------------------------------------------------------------------------


def _flag(condition: ColumnElement) -> ColumnElement:
    """How many rows meet the condition: `count(*) FILTER (WHERE ...)` (SQLite 3.30+ and
    PostgreSQL), which skips the rows that do not, where SUM(CASE ...) adds a 0 for each."""
    return func.count().filter(condition)


def _has_site(site: str) -> ColumnElement:
    """fracture_sites (`;`-joined) holds exactly this site."""
    sites = literal(";") + func.coalesce(episodes.c.fracture_sites, "") + literal(";")
    return sites.like(f"%;{site};%")


def _holds_drug(value: ColumnElement, outcomes: Sequence[str]) -> ColumnElement:
    """A therapy field holds a drug: answered, and not one of the non-drug outcomes."""
    return and_(value.is_not(None), value != "", value.not_in(outcomes))


def _missing(name: str) -> ColumnElement:
    source = patients if name in ("sex", "postcode", "care_home_resident") else episodes
    value = source.c[name]
    if isinstance(value.type, Date):
        return value.is_(None)
    return or_(value.is_(None), value == "")


def _within(day: ColumnElement, days: int) -> ColumnElement:
    """0 <= d(day) <= days."""
    fracture_date = episodes.c.fracture_date
    return and_(day.is_not(None), day >= fracture_date, day <= plus_days(fracture_date, days))


def _alive_at(days: int) -> ColumnElement:
    """Not died before fracture_date + days."""
    death = patients.c.date_of_death
    return or_(death.is_(None), death >= plus_days(episodes.c.fracture_date, days))


@functools.lru_cache(maxsize=64)
def count_columns(as_of: date) -> tuple[ColumnElement, ...]:
    """Every count the KPIs need, as labelled filtered counts (built once per as-of
    date: SQL expressions are immutable, and building them costs more than running a small query)."""
    due = DueCutoffs(as_of)
    e = episodes.c
    due90 = e.fracture_date <= due.due90
    due16 = e.fracture_date <= due.due16
    due52 = e.fracture_date <= due.due52
    aom = _holds_drug(e.bone_therapy, dataset.THERAPY_OUTCOMES)
    alive16 = _alive_at(112)
    alive52 = _alive_at(392)
    k5_den = and_(due90, e.dxa_status == "Recommended")
    k8_den = and_(not_(_has_site("Hip")), due16, alive16)
    k9_den = and_(aom, due16, alive16)
    k11_den = and_(aom, due52, alive52)
    columns = [
        func.count().label("cohort"),
        _flag(due16).label("due16"),
        _flag(due52).label("due52"),
        _flag(_has_site("Spine")).label("k3_num"),
        _flag(due90).label("k4_den"),
        _flag(and_(due90, _within(e.assessment_date, 90))).label("k4_num"),
        _flag(k5_den).label("k5_den"),
        _flag(and_(k5_den, _within(e.dxa_date, 90))).label("k5_num"),
        _flag(or_(e.falls_assessed == "Yes", e.falls_referred == "Yes")).label("k6_num"),
        _flag(aom).label("k7_num"),
        _flag(k8_den).label("k8_den"),
        _flag(and_(k8_den, e.strength_balance16 == "Yes")).label("k8_num"),
        _flag(k9_den).label("k9_den"),
        _flag(and_(k9_den, e.followup16_done == "Yes", _within(e.followup16_date, 112))).label(
            "k9_num"
        ),
        _flag(and_(k9_den, e.therapy16.in_(dataset.DRUGS))).label("k10_num"),
        _flag(k11_den).label("k11_den"),
        _flag(and_(k11_den, e.therapy52.in_(dataset.DRUGS))).label("k11_num"),
    ]
    for name in dataset.AUDITED_FIELDS:
        counted_in = FIELD_COUNTED_IN[name]
        missing = _missing(name)
        if counted_in == "due16":
            missing = and_(due16, missing)
        elif counted_in == "due52":
            missing = and_(due52, missing)
        columns.append(_flag(missing).label(f"missing_{name}"))
    return tuple(columns)


COUNT_NAMES = (
    "cohort due16 due52 k3_num k4_den k4_num k5_den k5_num k6_num k7_num k8_den k8_num "
    "k9_den k9_num k10_num k11_den k11_num"
).split() + [f"missing_{name}" for name in dataset.AUDITED_FIELDS]


Counts = dict[str, int]


def counts_query(
    periods: Sequence[Period],
    as_of: date,
    service_ids: Iterable[int] | None = None,
    by_month: bool = False,
):
    """The one aggregate statement: the counts of live episodes whose fracture_date lies in one
    of the periods (which must not overlap), grouped by service, by period when there are several
    (a CASE bucket: one pass for a period and the one before it), and by fracture month."""
    ordered = sorted(range(len(periods)), key=lambda i: periods[i].start)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if periods[after].start <= periods[before].end:
            raise ValueError("periods overlap: count them one at a time")
    fracture_date = episodes.c.fracture_date
    keys: list[ColumnElement] = [episodes.c.service_id.label("service_id")]
    if len(periods) > 1:
        bucket = case(
            *[(fracture_date <= periods[i].end, i) for i in ordered[:-1]], else_=ordered[-1]
        )
        keys.append(bucket.label("bucket"))
    if by_month:
        keys.append(month_key(fracture_date).label("month"))
    conditions: list[ColumnElement] = [
        episodes.c.deleted_at.is_(None),
        # The overall range first, so that an index on (service_id, fracture_date) is searched
        # for it (an OR of ranges is not), then each period.
        fracture_date >= min(p.start for p in periods),
        fracture_date <= max(p.end for p in periods),
        or_(*[and_(fracture_date >= p.start, fracture_date <= p.end) for p in periods]),
    ]
    if service_ids is not None:
        conditions.append(episodes.c.service_id.in_(sorted(set(service_ids))))
    return (
        select(*keys, *count_columns(as_of))
        .select_from(episodes.join(patients, patients.c.id == episodes.c.patient_id))
        .where(*conditions)
        .group_by(*keys)
    )


def aggregate_periods(
    conn: Connection,
    periods: Sequence[Period],
    as_of: date,
    service_ids: Iterable[int] | None = None,
    by_month: bool = False,
) -> dict[tuple[int, int, str | None], Counts]:
    """Counts for periods that do not overlap, in one pass over the episodes:
    {(service_id, index of the period, "YYYY-MM" or None): {count name: value}}."""
    result: dict[tuple[int, int, str | None], Counts] = {}
    query = counts_query(periods, as_of, service_ids, by_month)
    for row in conn.execute(query).mappings():
        month = row["month"] if by_month else None
        bucket = int(row["bucket"]) if len(periods) > 1 else 0
        result[(row["service_id"], bucket, month)] = {
            name: int(row[name] or 0) for name in COUNT_NAMES
        }
    return result


def aggregate(
    conn: Connection,
    period: Period,
    as_of: date,
    service_ids: Iterable[int] | None = None,
    by_month: bool = False,
) -> dict[tuple[int, str | None], Counts]:
    """The counts of one period: {(service_id, "YYYY-MM" or None): {count name: value}}."""
    groups = aggregate_periods(conn, [period], as_of, service_ids, by_month)
    return {(sid, month): counts for (sid, _, month), counts in groups.items()}


def load_services(
    conn: Connection, service_ids: Iterable[int] | None = None
) -> dict[int, ServiceInfo]:
    """The services, by id."""
    s = services.c
    query = select(s.id, s.code, s.name, s.expected_caseload, s.data_version, s.active)
    if service_ids is not None:
        query = query.where(s.id.in_(sorted(set(service_ids))))
    return {
        row.id: ServiceInfo(
            row.id,
            row.code,
            row.name,
            row.expected_caseload,
            row.data_version or 0,
            bool(row.active),
        )
        for row in conn.execute(query)
    }


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


# KPIs 3-11: the counts of each one's numerator and denominator.
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
    for month in period.each_month():
        members = by_month.get(month.key, [])
        if service_id is None:
            figure = national_figures(members, 1, only=kpi_number)[kpi_number - 1]
        else:
            # A month without episodes still has KPI 2's expected caseload (value 0).
            counts = members[0][0] if members else EMPTY_COUNTS
            figure = service_figures(counts, caseloads.get(service_id, 0), 1)[kpi_number - 1]
        if figure.denominator == 0:
            continue
        points.append(MonthPoint(month, figure.numerator, figure.denominator, figure.value))
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
