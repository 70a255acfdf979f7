"""Outcome measures (spec/outcomes.md): a subsequent fracture at 12 and 24 months, with death as a
competing risk (Aalen-Johansen cumulative incidence), and mortality at 30 days and 1 year.

Each patient's index episode is their earliest live episode. One query reads the index patients of
a period (with their first later fracture and their date of death); Python turns each into an
observed time and status and counts them by (time, status). Those counts are additive: a
service's, the national pool's (the union of every service's patients) and each split's are sums
of them, and every measure is computed from them exactly, in fractions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Connection

from kpis.definitions import SUPPRESS_BELOW
from kpis.numbers import format_value
from kpis.periods import Period
from kpis.schema import episodes, patients
from kpis.sql import plus_days

# Episodes 1-30 days after the index are the same event (further imaging, a second site found
# late): a refracture is a later live episode more than this many days after the index.
SAME_EVENT_DAYS = 30

REFRACTURE, DEATH, CENSORED = "refracture", "death", "censored"


@dataclass(frozen=True)
class Measure:
    """One outcome measure: its name in the export, its words, its horizon in days."""

    name: str
    label: str
    horizon: int
    kind: str  # "refracture" (cumulative incidence) or "mortality"


MEASURES: tuple[Measure, ...] = (
    Measure("refracture_12m", "Another fracture within 12 months", 365, "refracture"),
    Measure("refracture_24m", "Another fracture within 24 months", 730, "refracture"),
    Measure("mortality_30d", "Died within 30 days", 30, "mortality"),
    Measure("mortality_1y", "Died within 1 year", 365, "mortality"),
)
MEASURE_BY_NAME = {m.name: m for m in MEASURES}
MORTALITY_HORIZONS = tuple(m.horizon for m in MEASURES if m.kind == "mortality")


@dataclass(frozen=True, slots=True)
class IndexPatient:
    """A patient whose index episode is in the cohort: what the measures and the splits need."""

    service_id: int
    fracture_date: date
    refracture_date: date | None
    date_of_death: date | None
    sex: str | None = None
    date_of_birth: date | None = None
    care_home_resident: str | None = None
    fracture_sites: str | None = None


def observed(patient: IndexPatient, as_of: date) -> tuple[int, str]:
    """(T, status): T the smallest of refracture time, death time and C = as_of - fracture_date,
    in days; the status is refracture when the refracture time equals T (a refracture on the day
    of death counts as a refracture), else death when the death time equals T, else censored.
    Episodes and deaths after the as-of date are later than C, so never observed."""
    censor = (as_of - patient.fracture_date).days
    refracture = (
        None
        if patient.refracture_date is None
        else (patient.refracture_date - patient.fracture_date).days
    )
    death = (
        None
        if patient.date_of_death is None
        else (patient.date_of_death - patient.fracture_date).days
    )
    time = min(t for t in (refracture, death, censor) if t is not None)
    if refracture == time:
        return time, REFRACTURE
    if death == time:
        return time, DEATH
    return time, CENSORED


@dataclass
class FollowUp:
    """The index patients of a group, counted by (observed time, status), and the counts of the
    mortality measures ({horizon: (deaths within it, patients followed that long)}). Additive."""

    patients: int = 0
    times: Counter[tuple[int, str]] = field(default_factory=Counter)
    mortality: dict[int, tuple[int, int]] = field(
        default_factory=lambda: dict.fromkeys(MORTALITY_HORIZONS, (0, 0))
    )

    def add(self, patient: IndexPatient, as_of: date) -> None:
        """Count one index patient."""
        self.patients += 1
        self.times[observed(patient, as_of)] += 1
        followed = (as_of - patient.fracture_date).days
        for horizon in MORTALITY_HORIZONS:
            if followed < horizon:  # fracture_date + h <= as_of is followed >= h
                continue
            deaths, denominator = self.mortality[horizon]
            died = (
                patient.date_of_death is not None
                and (patient.date_of_death - patient.fracture_date).days <= horizon
            )
            self.mortality[horizon] = (deaths + int(died), denominator + 1)

    def __add__(self, other: FollowUp) -> FollowUp:
        return FollowUp(
            self.patients + other.patients,
            self.times + other.times,
            {
                h: (
                    self.mortality[h][0] + other.mortality[h][0],
                    self.mortality[h][1] + other.mortality[h][1],
                )
                for h in MORTALITY_HORIZONS
            },
        )


def pooled(groups: Iterable[FollowUp]) -> FollowUp:
    """The union of several groups of patients (the national pool, a split's whole)."""
    total = FollowUp()
    for group in groups:  # in place: adding Counters afresh each time copies the pool 80 times
        total.patients += group.patients
        total.times.update(group.times)
        for h in MORTALITY_HORIZONS:
            deaths, followed = total.mortality[h]
            total.mortality[h] = (deaths + group.mortality[h][0], followed + group.mortality[h][1])
    return total


@dataclass(frozen=True)
class Incidence:
    """The cumulative incidence of refracture at a horizon: CIF exactly (a probability, None when
    nobody is at risk at h), refractures with T <= h, patients with T >= h."""

    cif: Fraction | None
    events: int
    at_risk: int


def _event_times(times: Mapping[tuple[int, str], int]) -> list[tuple[int, int, int, int]]:
    """(t, refractures, deaths, patients with T >= t) for each distinct observed time, ascending."""
    by_time: dict[int, list[int]] = {}
    for (t, status), count in times.items():
        slot = by_time.setdefault(t, [0, 0, 0])
        slot[(REFRACTURE, DEATH, CENSORED).index(status)] += count
    remaining = sum(times.values())
    rows = []
    for t in sorted(by_time):
        refractures, deaths, censored = by_time[t]
        rows.append((t, refractures, deaths, remaining))
        remaining -= refractures + deaths + censored
    return rows


def cumulative_incidence(follow_up: FollowUp, horizon: int) -> Incidence:
    """Aalen-Johansen with death as a competing risk: S = 1 before the first event time,
    S(t_j) = S(t_j-1) x (1 - e_j / n_j); CIF(h) = sum over t_j <= h of S(t_j-1) x r_j / n_j."""
    survival = Fraction(1)
    cif = Fraction(0)
    events = 0
    for t, refractures, deaths, n in _event_times(follow_up.times):
        if t > horizon:
            break
        events += refractures
        if refractures + deaths:
            cif += survival * Fraction(refractures, n)
            survival *= 1 - Fraction(refractures + deaths, n)
    at_risk = at_risk_at(follow_up, horizon)
    return Incidence(cif if at_risk > 0 else None, events, at_risk)


def curve(follow_up: FollowUp, until: int) -> list[tuple[int, Fraction]]:
    """The cumulative incidence as a step function up to `until` days: (day, CIF) at day 0 and at
    each day a refracture was observed, for drawing."""
    survival = Fraction(1)
    cif = Fraction(0)
    steps = [(0, Fraction(0))]
    for t, refractures, deaths, n in _event_times(follow_up.times):
        if t > until:
            break
        if refractures:
            cif += survival * Fraction(refractures, n)
            steps.append((t, cif))
        if refractures + deaths:
            survival *= 1 - Fraction(refractures + deaths, n)
    return steps


def at_risk_at(follow_up: FollowUp, day: int) -> int:
    """Patients still followed, without an event, at `day` (T >= day)."""
    return sum(count for (t, _), count in follow_up.times.items() if t >= day)


@dataclass(frozen=True)
class OutcomeFigure:
    """One measure of one group. Refracture: patients = index patients, events = events(h),
    at_risk = at_risk(h). Mortality: patients = the denominator, events = the numerator,
    at_risk None. `value` in percent, exact; None when there is no value."""

    measure: Measure
    patients: int
    events: int
    at_risk: int | None
    value: Fraction | None

    @property
    def value_text(self) -> str:
        return format_value(self.value)

    @property
    def suppressed(self) -> bool:
        """Public pages show no figure over fewer than 5 patients."""
        return self.patients < SUPPRESS_BELOW


def figures(follow_up: FollowUp) -> list[OutcomeFigure]:
    """The four measures, in the export's order."""
    result = []
    for measure in MEASURES:
        if measure.kind == "refracture":
            incidence = cumulative_incidence(follow_up, measure.horizon)
            value = None if incidence.cif is None else 100 * incidence.cif
            result.append(
                OutcomeFigure(
                    measure, follow_up.patients, incidence.events, incidence.at_risk, value
                )
            )
        else:
            deaths, denominator = follow_up.mortality[measure.horizon]
            value = None if denominator == 0 else Fraction(100 * deaths, denominator)
            result.append(OutcomeFigure(measure, denominator, deaths, None, value))
    return result


# --- reading the index patients -----------------------------------------------------------------


def index_patients_query(
    period: Period, as_of: date, service_ids: Iterable[int] | None = None
) -> Any:
    """The index episodes whose fracture_date lies in the period and on or before the as-of
    date: live episodes with no earlier live episode of the same patient, each with its first
    later live episode more than 30 days after it, and the patient's details."""
    index = episodes.alias("index_episode")
    earlier = episodes.alias("earlier_episode")
    later = episodes.alias("later_episode")
    no_earlier = ~exists().where(
        earlier.c.patient_id == index.c.patient_id,
        earlier.c.deleted_at.is_(None),
        earlier.c.fracture_date < index.c.fracture_date,
    )
    refracture = (
        select(func.min(later.c.fracture_date))
        .where(
            later.c.patient_id == index.c.patient_id,
            later.c.deleted_at.is_(None),
            later.c.fracture_date > plus_days(index.c.fracture_date, SAME_EVENT_DAYS),
        )
        .scalar_subquery()
    )
    conditions = [
        index.c.deleted_at.is_(None),
        index.c.fracture_date >= period.start,
        index.c.fracture_date <= min(period.end, as_of),
        no_earlier,
    ]
    if service_ids is not None:
        conditions.append(index.c.service_id.in_(sorted(set(service_ids))))
    return (
        select(
            index.c.service_id,
            index.c.fracture_date,
            refracture.label("refracture_date"),
            patients.c.date_of_death,
            patients.c.sex,
            patients.c.date_of_birth,
            patients.c.care_home_resident,
            index.c.fracture_sites,
        )
        .select_from(index.join(patients, and_(patients.c.id == index.c.patient_id)))
        .where(*conditions)
    )


def index_patients(
    conn: Connection, period: Period, as_of: date, service_ids: Iterable[int] | None = None
) -> Iterator[IndexPatient]:
    """The index patients of the period (of every service, or of those asked for)."""
    if period.start > as_of:
        return
    # Each row unpacked in the query's column order (the fields' order): tens of thousands of
    # rows, read without looking up each column by name.
    for row in conn.execute(index_patients_query(period, as_of, service_ids)):
        yield IndexPatient(*row)


def follow_ups(
    conn: Connection, period: Period, as_of: date, service_ids: Iterable[int] | None = None
) -> dict[int, FollowUp]:
    """Each service's follow-up of its index patients in the period; services without an index
    patient are absent."""
    result: dict[int, FollowUp] = {}
    for patient in index_patients(conn, period, as_of, service_ids):
        result.setdefault(patient.service_id, FollowUp()).add(patient, as_of)
    return result
