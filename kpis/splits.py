"""Who is left behind (issue 20): every KPI and outcome split by sex, age band, care-home
residence and fracture site, for a service and nationally.

Each split is a partition: every episode (for the KPIs) and every index patient (for the
outcomes) falls in exactly one part, so the parts' numerators and denominators add up to the
whole's. Age is at the fracture, in whole years. An episode with several sites is counted once,
in the first of hip, spine, other that it holds (a hip fracture is the one that decides the
patient's care). The audit takes patients aged 50 or over, so the youngest band starts at 50;
anyone recorded younger falls in it too, so that nothing drops out of the whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import case
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from kpis.counting import COUNT_NAMES, Counts, counts_query, has_site
from kpis.outcomes import FollowUp, IndexPatient, index_patients
from kpis.periods import Period
from kpis.schema import episodes, patients
from kpis.sql import age_at


@dataclass(frozen=True)
class Split:
    """One way of splitting: its name, its words, and its parts as (key, label)."""

    name: str
    label: str
    parts: tuple[tuple[str, str], ...]

    def part_label(self, key: str) -> str:
        return dict(self.parts)[key]


SPLITS: tuple[Split, ...] = (
    Split("sex", "Sex", (("female", "Women"), ("male", "Men"), ("other", "Other or not known"))),
    Split(
        "age",
        "Age at the fracture",
        (
            ("50-64", "50 to 64"),
            ("65-74", "65 to 74"),
            ("75-84", "75 to 84"),
            ("85+", "85 and over"),
        ),
    ),
    Split(
        "care_home",
        "Care-home residence",
        (("yes", "Lives in a care home"), ("no", "Does not"), ("not_known", "Not known")),
    ),
    Split(
        "site",
        "Fracture site",
        (("hip", "Hip"), ("spine", "Spine (not hip)"), ("other", "Other sites")),
    ),
)
SPLIT_BY_NAME = {split.name: split for split in SPLITS}
AGE_BANDS = ((65, "50-64"), (75, "65-74"), (85, "75-84"))


def _age_band_sql(age: ColumnElement[Any]) -> ColumnElement[Any]:
    return case(*[(age < top, key) for top, key in AGE_BANDS], else_="85+")


def part_sql(split: str) -> ColumnElement[Any]:
    """The part of an episode (joined with its patient), as an SQL expression."""
    if split == "sex":
        return case(
            (patients.c.sex == "Female", "female"),
            (patients.c.sex == "Male", "male"),
            else_="other",
        )
    if split == "age":
        return _age_band_sql(age_at(patients.c.date_of_birth, episodes.c.fracture_date))
    if split == "care_home":
        answer = patients.c.care_home_resident
        return case((answer == "Yes", "yes"), (answer == "No", "no"), else_="not_known")
    if split == "site":
        return case((has_site("Hip"), "hip"), (has_site("Spine"), "spine"), else_="other")
    raise ValueError(f"unknown split {split!r}")


def age_on(born: date, day: date) -> int:
    """Whole years from born to day, comparing month and day."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def part_of(split: str, patient: IndexPatient) -> str:
    """The part of an index patient (its index episode), as part_sql decides for an episode."""
    if split == "sex":
        return {"Female": "female", "Male": "male"}.get(patient.sex or "", "other")
    if split == "age":
        if patient.date_of_birth is None:
            return AGE_BANDS[0][1]
        age = age_on(patient.date_of_birth, patient.fracture_date)
        return next((key for top, key in AGE_BANDS if age < top), "85+")
    if split == "care_home":
        return {"Yes": "yes", "No": "no"}.get(patient.care_home_resident or "", "not_known")
    if split == "site":
        sites = (patient.fracture_sites or "").split(";")
        return "hip" if "Hip" in sites else "spine" if "Spine" in sites else "other"
    raise ValueError(f"unknown split {split!r}")


@dataclass
class SplitCounts:
    """One service's counts in each part of one split: KPI counts and outcome follow-ups."""

    kpis: dict[str, Counts]
    outcomes: dict[str, FollowUp]


def split_counts(
    conn: Connection,
    split: str,
    period: Period,
    as_of: date,
    service_ids: Iterable[int] | None = None,
) -> dict[int, SplitCounts]:
    """Every service's (or those asked for) counts by part of a split: one grouped KPI query and
    one read of the index patients. Services with neither are absent."""
    result: dict[int, SplitCounts] = {}
    query = counts_query([period], as_of, service_ids, part=part_sql(split))
    for row in conn.execute(query).mappings():
        slot = result.setdefault(row["service_id"], SplitCounts({}, {}))
        slot.kpis[row["part"]] = {name: int(row[name] or 0) for name in COUNT_NAMES}
    for patient in index_patients(conn, period, as_of, service_ids):
        slot = result.setdefault(patient.service_id, SplitCounts({}, {}))
        slot.outcomes.setdefault(part_of(split, patient), FollowUp()).add(patient, as_of)
    return result
