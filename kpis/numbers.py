"""Exact KPI arithmetic: values as fractions, shown rounded half up with Decimal (kpis.md)."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction


def percent(numerator: int | Fraction, denominator: int | Fraction) -> Fraction | None:
    """100 x numerator / denominator, exactly; None when the denominator is 0 ("no data")."""
    if denominator == 0:
        return None
    return Fraction(100) * Fraction(numerator) / Fraction(denominator)


def round_half_up(value: Fraction, places: int) -> Decimal:
    """A fraction rounded half up (ties away from zero, as Decimal's ROUND_HALF_UP) to `places`
    decimals, decided on the exact fraction, never through a float."""
    scaled = abs(value) * 10**places
    whole = math.floor(scaled + Fraction(1, 2))
    if value < 0:
        whole = -whole
    return Decimal(whole).scaleb(-places)


def format_value(value: Fraction | None) -> str:
    """A KPI value to one decimal place (`79.95` -> `80.0`); empty when there is no value."""
    if value is None:
        return ""
    return f"{round_half_up(value, 1):.1f}"


def format_denominator(denominator: int | Fraction) -> str:
    """An integer as itself; KPI 2's fractional denominator rounded half up to two decimals,
    trailing zeros and point removed (`750`, `53.33`, `0.08`)."""
    if isinstance(denominator, int) or Fraction(denominator).denominator == 1:
        return str(int(denominator))
    text = f"{round_half_up(Fraction(denominator), 2):.2f}"
    return text.rstrip("0").rstrip(".")
