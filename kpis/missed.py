"""Missed patients (issue 20, FLS-DB's benchmark table since January 2025): from a service's hip
fractures a year (the hip fracture audit, NHFD), the patients it should be treating, and how many
of them are not on treatment at 12 months.

    predicted caseload = hip fractures x 5 (x months / 12 for a period)
    expected on treatment at 12 months = predicted caseload x 80% identified x 50% recommended
                                         x 80% still on it
    missed = expected - on treatment at 12 months (KPI 11's numerator), never below 0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from kpis.numbers import round_half_up
from kpis.periods import Period

FRAGILITY_FRACTURES_PER_HIP_FRACTURE = 5
IDENTIFIED = Fraction(80, 100)
RECOMMENDED = Fraction(50, 100)
STILL_ON_TREATMENT = Fraction(80, 100)

FORMULA = (
    "Predicted caseload = hip fractures a year x 5 (x months / 12 for a period). "
    "Expected on treatment at 12 months = predicted caseload x 80% identified x 50% recommended "
    "treatment x 80% still on it. Missed = expected on treatment minus those on treatment at "
    "12 months (KPI 11's numerator), never below 0."
)


@dataclass(frozen=True)
class Missed:
    """The estimate for a service (or the nation): exact, shown as whole patients."""

    hip_fractures: Fraction
    predicted: Fraction
    expected: Fraction
    on_treatment: int
    missed: Fraction

    @staticmethod
    def whole(value: Fraction) -> str:
        return f"{round_half_up(value, 0):.0f}"

    @property
    def predicted_text(self) -> str:
        return self.whole(self.predicted)

    @property
    def expected_text(self) -> str:
        return self.whole(self.expected)

    @property
    def missed_text(self) -> str:
        return self.whole(self.missed)


def hip_fractures_in(period: Period, yearly: Mapping[int, int]) -> Fraction | None:
    """Hip fractures over the period: each month a twelfth of its year's figure; None when a year
    of the period has no figure recorded."""
    total = Fraction(0)
    for month in period.each_month():
        if month.year not in yearly:
            return None
        total += Fraction(yearly[month.year], 12)
    return total


def estimate(hip_fractures: Fraction, on_treatment: int) -> Missed:
    """The formula for a number of hip fractures over the period and KPI 11's numerator."""
    predicted = hip_fractures * FRAGILITY_FRACTURES_PER_HIP_FRACTURE
    expected = predicted * IDENTIFIED * RECOMMENDED * STILL_ON_TREATMENT
    return Missed(
        hip_fractures, predicted, expected, on_treatment, max(Fraction(0), expected - on_treatment)
    )


def for_period(period: Period, yearly: Mapping[int, int], on_treatment: int) -> Missed | None:
    """A service's estimate over a period; None ("not yet known") without its hip fractures."""
    hips = hip_fractures_in(period, yearly)
    return None if hips is None else estimate(hips, on_treatment)


def national(known: list[Missed]) -> Missed | None:
    """The formula on the pooled figures of the services whose hip fractures are known."""
    if not known:
        return None
    return estimate(
        sum((m.hip_fractures for m in known), Fraction(0)), sum(m.on_treatment for m in known)
    )
