"""Who the synthetic patients are: the services they attend (each with a quality that sets how
well it does), their NHS numbers in the test range, and the patient each index fracture
belongs to (age, sex, where they live, care home)."""

from __future__ import annotations

import bisect
import functools
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kpis.dataset import MINIMUM_AGE
from portal.journey.rules import nhs_check_digit

# A generated patient or episode: the dataset's fields by name, plus the writer's keys.
Row = dict[str, Any]

# Postcode areas by nation, so a service's patients live around it.
POSTCODE_AREAS = {
    "England": (
        "LS",
        "BD",
        "BS",
        "BA",
        "LN",
        "NG",
        "M",
        "SK",
        "B",
        "CV",
        "NE",
        "SR",
        "PL",
        "EX",
        "OX",
    ),
    "Wales": ("CF", "NP", "SA", "LL", "LD", "SY"),
    "Northern Ireland": ("BT",),
}
# Letters never used in the inward part of a UK postcode.
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
# Audited patient fields a struggling service leaves empty.
_PATIENT_SKIPPABLE = ("postcode", "care_home_resident")
# The oldest patient drawn, and the most common age at a fragility fracture.
_OLDEST_AGE = 101
_TYPICAL_AGE = 80


@dataclass
class ServiceProfile:
    """How well one service does: rates are probabilities, delays are mean days."""

    id: int
    code: str
    nation: str
    weight: float  # share of the episodes
    quality: float  # 0 (struggling) .. 1 (excellent)
    assess_rate: float = 0.0
    assess_delay: float = 0.0
    dxa_rate: float = 0.0
    dxa_done_rate: float = 0.0
    dxa_delay: float = 0.0
    falls_rate: float = 0.0
    treat_rate: float = 0.0
    followup16_rate: float = 0.0
    followup52_rate: float = 0.0
    strength_rate: float = 0.0
    missing_rate: float = 0.0
    areas: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        q = self.quality
        self.assess_rate = 0.55 + 0.43 * q
        self.assess_delay = 110 - 90 * q
        self.dxa_rate = 0.30 + 0.55 * q
        self.dxa_done_rate = 0.55 + 0.40 * q
        self.dxa_delay = 130 - 100 * q
        self.falls_rate = 0.25 + 0.70 * q
        self.treat_rate = 0.35 + 0.40 * q
        self.followup16_rate = 0.05 + 0.85 * q
        self.followup52_rate = 0.03 + 0.80 * q
        self.strength_rate = 0.02 + 0.30 * q
        self.missing_rate = 0.12 * (1 - q) ** 2 + 0.003


def identified_per_year(expected_caseload: int, quality: float) -> float:
    """Episodes a service of this quality records a year: services identify from a fifth to
    four fifths of their catchment's fragility fractures (KPI 2; national 37%)."""
    return expected_caseload * (0.2 + 0.6 * quality)


def make_profiles(
    rng: random.Random, services: Sequence[Mapping[str, Any]]
) -> list[ServiceProfile]:
    """One profile per service dict (`id`, `code`, `nation`, `expected_caseload`, optional
    `quality` 0-1; without it the quality is drawn, from near 0 to near 1 as in the audit)."""
    profiles = []
    for service in services:
        quality = service.get("quality")
        if quality is None:
            quality = rng.betavariate(2, 2)
        areas = POSTCODE_AREAS[service["nation"]]
        # A service's patients come from one or two neighbouring postcode areas.
        own = tuple(rng.sample(areas, min(2, len(areas))))
        identified = identified_per_year(service["expected_caseload"], quality)
        profiles.append(
            ServiceProfile(
                id=service["id"],
                code=service["code"],
                nation=service["nation"],
                weight=identified,
                quality=quality,
                areas=own,
            )
        )
    return profiles


class NhsNumbers:
    """Distinct valid NHS numbers in the 999 test range, in a seeded, scattered order.

    nhs-number's own generate() draws from the process-wide `random` and may repeat a number,
    so the walk is ours (seeded, every number once); the check digit is the library's, through
    the dataset rules.
    """

    CAPACITY = 900_000  # valid numbers in the range, a little under (a tenth fail the check)

    def __init__(self, rng: random.Random):
        # A step coprime with 10**6 visits every 6-digit suffix once in a scattered order.
        self.step = rng.choice((7919, 104729, 15485863 % 10**6 or 1, 86028121 % 10**6))
        while self.step % 2 == 0 or self.step % 5 == 0:
            self.step += 1
        self.position = rng.randrange(10**6)
        self.issued = 0

    def __iter__(self) -> NhsNumbers:
        return self

    def __next__(self) -> str:
        while self.issued < 10**6:
            self.issued += 1
            self.position = (self.position + self.step) % 10**6
            nine = f"999{self.position:06d}"
            check = nhs_check_digit(nine)
            number = f"{nine}{check}" if check is not None else None
            if number and len(set(number)) > 1:
                return number
        raise RuntimeError("the 999 test range of NHS numbers is used up")


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier (28 February for 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    """One of the keys, drawn with the weights given: the draw of `rng.choices(keys, weights)`,
    with the running totals kept (millions of draws make a benchmark-sized data set)."""
    keys, totals = _running_totals(tuple(weights.items()))
    return keys[bisect.bisect(totals, rng.random() * (totals[-1] + 0.0), 0, len(keys) - 1)]


@functools.lru_cache(maxsize=1024)
def _running_totals(items: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    return [key for key, _ in items], list(itertools.accumulate(weight for _, weight in items))


def _postcode(rng: random.Random, areas: Sequence[str]) -> str:
    area = rng.choice(areas)
    return (
        f"{area}{rng.randint(1, 29)} {rng.randint(0, 9)}"
        f"{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
    )


def patient(rng: random.Random, profile: ServiceProfile, fracture: date, number: str) -> Row:
    """The patient of an index fracture, of the age the audit sees (mostly women, around 80)."""
    sex = pick(rng, {"Female": 74.0, "Male": 25.0, "Other": 0.3, "Not known": 0.7})
    age = int(rng.triangular(MINIMUM_AGE, _OLDEST_AGE, _TYPICAL_AGE))
    # Within the year after the birthday: the patient is `age` in whole years on the fracture date.
    born = years_before(fracture, age) - timedelta(days=rng.randint(0, 360))
    care_home = pick(rng, {"Yes": 4 + max(0, age - 75) * 0.6, "No": 88.0, "Not known": 3.0})
    row: Row = {
        "service_id": profile.id,
        "nhs_number": number,
        "date_of_birth": born,
        "sex": sex,
        "postcode": _postcode(rng, profile.areas),
        "care_home_resident": care_home,
        "date_of_death": None,
    }
    for name in _PATIENT_SKIPPABLE:
        if rng.random() < profile.missing_rate:
            row[name] = None
    return row
