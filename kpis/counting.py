"""The one aggregate query behind every KPI figure (spec/kpis.md).

It counts, per service (and per fracture month for run charts, per period when there are
several), every numerator and denominator the 11 KPIs need, plus the missing counts of the 17
audited fields. The same SQLAlchemy Core statement runs on SQLite and PostgreSQL; kpis.engine
turns its few rows of counts into figures.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Date, Select, and_, case, func, literal, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from kpis import dataset
from kpis.dataset import DUE_AT_16_WEEKS_DAYS, DUE_AT_52_WEEKS_DAYS, DUE_AT_90_DAYS
from kpis.periods import DueCutoffs, Period
from kpis.schema import episodes, patients, services
from kpis.sql import month_key, plus_days

# Which episodes each audited field is counted in (KPI 1): the cohort, or those due at 16/52 weeks.
FIELD_COUNTED_IN = {name: "cohort" for name in dataset.AUDITED_FIELDS} | {
    "followup16_done": "due16",
    "strength_balance16": "due16",
    "followup52_done": "due52",
}


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


def _flag(condition: ColumnElement[Any]) -> ColumnElement[Any]:
    """How many rows meet the condition: `count(*) FILTER (WHERE ...)` (SQLite 3.30+ and
    PostgreSQL), which skips the rows that do not, where SUM(CASE ...) adds a 0 for each."""
    return func.count().filter(condition)


def has_site(site: str) -> ColumnElement[Any]:
    """fracture_sites (`;`-joined) holds exactly this site."""
    sites = literal(";") + func.coalesce(episodes.c.fracture_sites, "") + literal(";")
    return sites.like(f"%;{site};%")


def _holds_drug(value: ColumnElement[Any], outcomes: Sequence[str]) -> ColumnElement[Any]:
    """A therapy field holds a drug: answered, and not one of the non-drug outcomes."""
    return and_(value.is_not(None), value != "", value.not_in(outcomes))


def _missing(name: str) -> ColumnElement[Any]:
    source = patients if name in ("sex", "postcode", "care_home_resident") else episodes
    value = source.c[name]
    if isinstance(value.type, Date):
        return value.is_(None)
    return or_(value.is_(None), value == "")


def _within(day: ColumnElement[Any], days: int) -> ColumnElement[Any]:
    """0 <= d(day) <= days."""
    fracture_date = episodes.c.fracture_date
    return and_(day.is_not(None), day >= fracture_date, day <= plus_days(fracture_date, days))


def _alive_at(days: int) -> ColumnElement[Any]:
    """Not died before fracture_date + days."""
    death = patients.c.date_of_death
    return or_(death.is_(None), death >= plus_days(episodes.c.fracture_date, days))


@functools.lru_cache(maxsize=64)
def count_columns(as_of: date) -> tuple[ColumnElement[Any], ...]:
    """Every count the KPIs need, as labelled filtered counts (built once per as-of
    date: SQL expressions are immutable, and building them costs more than running a small query)."""
    due = DueCutoffs(as_of)
    e = episodes.c
    due90 = e.fracture_date <= due.due90
    due16 = e.fracture_date <= due.due16
    due52 = e.fracture_date <= due.due52
    aom = _holds_drug(e.bone_therapy, dataset.THERAPY_OUTCOMES)
    alive16 = _alive_at(DUE_AT_16_WEEKS_DAYS)
    alive52 = _alive_at(DUE_AT_52_WEEKS_DAYS)
    k5_den = and_(due90, e.dxa_status == "Recommended")
    k8_den = and_(not_(has_site("Hip")), due16, alive16)
    k9_den = and_(aom, due16, alive16)
    k11_den = and_(aom, due52, alive52)
    columns = [
        func.count().label("cohort"),
        _flag(due16).label("due16"),
        _flag(due52).label("due52"),
        _flag(has_site("Spine")).label("k3_num"),
        _flag(due90).label("k4_den"),
        _flag(and_(due90, _within(e.assessment_date, DUE_AT_90_DAYS))).label("k4_num"),
        _flag(k5_den).label("k5_den"),
        _flag(and_(k5_den, _within(e.dxa_date, DUE_AT_90_DAYS))).label("k5_num"),
        _flag(or_(e.falls_assessed == "Yes", e.falls_referred == "Yes")).label("k6_num"),
        _flag(aom).label("k7_num"),
        _flag(k8_den).label("k8_den"),
        _flag(and_(k8_den, e.strength_balance16 == "Yes")).label("k8_num"),
        _flag(k9_den).label("k9_den"),
        _flag(
            and_(
                k9_den, e.followup16_done == "Yes", _within(e.followup16_date, DUE_AT_16_WEEKS_DAYS)
            )
        ).label("k9_num"),
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
    part: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """The one aggregate statement: the counts of live episodes whose fracture_date lies in one
    of the periods (which must not overlap), grouped by service, by period when there are several
    (a CASE bucket: one pass for a period and the one before it), by fracture month, and by
    the part of a split (kpis.splits)."""
    ordered = sorted(range(len(periods)), key=lambda i: periods[i].start)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if periods[after].start <= periods[before].end:
            raise ValueError("periods overlap: count them one at a time")
    fracture_date = episodes.c.fracture_date
    keys: list[ColumnElement[Any]] = [episodes.c.service_id.label("service_id")]
    if len(periods) > 1:
        bucket = case(
            *[(fracture_date <= periods[i].end, i) for i in ordered[:-1]], else_=ordered[-1]
        )
        keys.append(bucket.label("bucket"))
    if by_month:
        keys.append(month_key(fracture_date).label("month"))
    if part is not None:
        keys.append(part.label("part"))  # a split: sex, age band, care home or fracture site
    conditions: list[ColumnElement[Any]] = [
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
