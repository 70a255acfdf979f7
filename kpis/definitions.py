"""The 11 FLS-DB key performance indicators as data (spec/kpis.md): names, what the numerator and
the denominator count, and the colour bands."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

GREEN, AMBER, RED, NONE = "green", "amber", "red", "none"
BANDS = (GREEN, AMBER, RED, NONE)
BAND_WORDS = {GREEN: "Green", AMBER: "Amber", RED: "Red", NONE: "No band"}


@dataclass(frozen=True)
class Banding:
    """Thresholds on the unrounded value (percent).

    green when value >= green_from (or > green_above); amber when value >= amber_from; else red.
    `amber_from` None means there is no amber band.
    """

    green_from: Fraction | None = None
    green_above: Fraction | None = None
    amber_from: Fraction | None = None
    words: str = ""

    def band(self, value: Fraction | None) -> str:
        """The band of an unrounded value; `none` when there is no value."""
        if value is None:
            return NONE
        if self.green_above is not None and value > self.green_above:
            return GREEN
        if self.green_from is not None and value >= self.green_from:
            return GREEN
        if self.amber_from is not None and value >= self.amber_from:
            return AMBER
        return RED


EIGHTY_FIFTY = Banding(
    green_from=Fraction(80),
    amber_from=Fraction(50),
    words="green 80% or more, amber 50% to 80%, red below 50%",
)
SPINE = Banding(
    green_above=Fraction(20),
    amber_from=Fraction(10),
    words="green above 20%, amber 10% to 20%, red below 10%",
)
FIFTY_NO_AMBER = Banding(
    green_from=Fraction(50), words="green 50% or more, red below 50% (no amber)"
)


@dataclass(frozen=True)
class KPI:
    """One key performance indicator: its number, name, and what it counts, in words."""

    number: int
    name: str
    short_name: str
    numerator: str
    denominator: str
    banding: Banding
    # KPIs 1 and 2 are not proportions of patients: a plain run chart, no control limits.
    is_proportion: bool = True
    # What the portal shows about the band of KPI 1, which is not banded on its value.
    band_note: str = ""

    def band(self, value: Fraction | None) -> str:
        return self.banding.band(value)


KPIS: tuple[KPI, ...] = (
    KPI(
        1,
        "Data completeness",
        "Completeness",
        "audited fields (17) that are at most 20% missing",
        "audited fields with at least one episode in which they are counted",
        # A service's KPI 1 band is whether it meets it, see kpis.engine; nationally 80/50.
        EIGHTY_FIFTY,
        is_proportion=False,
        band_note="green when fewer than 5 counted fields are more than 20% missing, else red",
    ),
    KPI(
        2,
        "Identification",
        "Identification",
        "episodes in the cohort",
        "expected caseload x months in the period / 12",
        EIGHTY_FIFTY,
        is_proportion=False,
    ),
    KPI(
        3,
        "Spine fractures",
        "Spine",
        "episodes whose fracture sites include Spine",
        "episodes in the cohort",
        SPINE,
    ),
    KPI(
        4,
        "FLS assessment within 90 days",
        "Assessment 90d",
        "episodes assessed 0 to 90 days after the fracture",
        "episodes due at 90 days",
        EIGHTY_FIFTY,
    ),
    KPI(
        5,
        "DXA within 90 days",
        "DXA 90d",
        "episodes with a DXA 0 to 90 days after the fracture",
        "episodes with DXA recommended, due at 90 days",
        EIGHTY_FIFTY,
    ),
    KPI(
        6,
        "Falls risk assessment",
        "Falls",
        "episodes with falls risk assessed or a falls referral",
        "episodes in the cohort",
        EIGHTY_FIFTY,
    ),
    KPI(
        7,
        "Bone therapy recommended",
        "Bone therapy",
        "episodes with a bone therapy drug recommended",
        "episodes in the cohort",
        FIFTY_NO_AMBER,
    ),
    KPI(
        8,
        "Strength and balance by 16 weeks",
        "Strength & balance",
        "episodes that started strength and balance exercise",
        "non-hip episodes due at 16 weeks, patient alive at 16 weeks",
        EIGHTY_FIFTY,
    ),
    KPI(
        9,
        "Monitoring contact by 16 weeks",
        "Contact 16w",
        "episodes with a monitoring contact 0 to 112 days after the fracture",
        "episodes with bone therapy recommended, due at 16 weeks, patient alive at 16 weeks",
        EIGHTY_FIFTY,
    ),
    KPI(
        10,
        "Treatment started by 16 weeks",
        "Treatment 16w",
        "episodes on a bone therapy drug at the 16-week contact",
        "episodes with bone therapy recommended, due at 16 weeks, patient alive at 16 weeks",
        EIGHTY_FIFTY,
    ),
    KPI(
        11,
        "Adherence at 12 months",
        "Adherence 12m",
        "episodes on a bone therapy drug at the 12-month follow-up",
        "episodes with bone therapy recommended, due at 52 weeks, patient alive at 52 weeks",
        EIGHTY_FIFTY,
    ),
)
KPI_BY_NUMBER = {kpi.number: kpi for kpi in KPIS}

# Public pages hide any value whose denominator is below this (kpis.md, "fewer than 5").
SUPPRESS_BELOW = 5
