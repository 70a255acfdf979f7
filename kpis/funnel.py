"""Funnel plots (spec/outcomes.md, "Funnel plots"): every service's value of one KPI 3-11 against
the national value, with 95% and 99.8% limits that widen as a service's denominator shrinks.

The target p0, the values and the flags' comparisons are exact (fractions). The binomial
distribution function comes from scipy (scipy.special.bdtr, the function behind
scipy.stats.binom.cdf, on a whole table at once) in floating point: the limits are drawn and
printed to two decimals, and the interpolated limit is continuous where F(r) meets the tail
probability, so a last-bit error moves no printed limit. The flags are categories, so a tail
probability within a hair of its threshold is decided again in whole numbers (`_exact_tail`).
The over-dispersion estimate (arcsine scale, 10% winsorised z-scores, as NHS England's SHMI and
Spiegelhalter 2005) is floating point by nature: asin, sqrt and sin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.special import bdtr, bdtrc

from kpis.definitions import SUPPRESS_BELOW
from kpis.numbers import round_half_up

ABOVE_998, ABOVE_95, BELOW_998, BELOW_95, WITHIN = (
    "above_998",
    "above_95",
    "below_998",
    "below_95",
    "within",
)
FLAGS = (ABOVE_998, ABOVE_95, WITHIN, BELOW_95, BELOW_998)
FLAG_WORDS = {
    ABOVE_998: "above the 99.8% limit",
    ABOVE_95: "above the 95% limit",
    WITHIN: "within the limits",
    BELOW_95: "below the 95% limit",
    BELOW_998: "below the 99.8% limit",
}
# Tail probabilities of the exact binomial limits, and the normal deviates of the adjusted ones.
TAILS_95 = (0.025, 0.975)
TAILS_998 = (0.001, 0.999)
Z_95 = 1.959964
Z_998 = 3.090232
# A float tail probability this close to its threshold (relative) is decided again exactly.
TIE_MARGIN = 1e-9


@dataclass(frozen=True)
class Point:
    """One service's numerator and denominator (denominator >= 1)."""

    code: str
    numerator: int
    denominator: int

    @property
    def value(self) -> Fraction:
        return Fraction(self.numerator, self.denominator)

    @property
    def shown_in_public(self) -> bool:
        """Public funnel plots draw and flag services with a denominator of 5 or more."""
        return self.denominator >= SUPPRESS_BELOW


@dataclass(frozen=True)
class Limits:
    """Proportions (0-1) of the 95% and 99.8% limits for one denominator."""

    lower95: float
    upper95: float
    lower998: float
    upper998: float


@dataclass(frozen=True)
class FunnelPoint:
    point: Point
    limits: Limits
    flag: str


@dataclass(frozen=True)
class Funnel:
    """A KPI's funnel over one period: the target, tau2 (0 when not over-dispersed) and the points
    in the order given."""

    target: Fraction | None
    tau2: float
    points: list[FunnelPoint]

    @property
    def adjusted(self) -> bool:
        """Whether the limits are widened for over-dispersion (tau2 > 0)."""
        return self.tau2 > 0

    @property
    def method(self) -> str:
        if self.adjusted:
            return "limits widened for over-dispersion (additive random effect, tau2 above 0)"
        return "exact binomial limits (no over-dispersion: tau2 is 0)"

    def limits_for(self, denominator: int) -> Limits:
        """The limits at any denominator, for drawing the funnel."""
        assert self.target is not None
        return limits(denominator, self.target, self.tau2)


# --- exact binomial limits ----------------------------------------------------------------------


def _cdf_table(n: int, p: float) -> Any:
    """F(0), ..., F(n) of Binomial(n, p), in one vectorised call."""
    return bdtr(np.arange(n + 1), n, p)


def _limit(cdf: Any, n: int, tail: float) -> float:
    """r = the smallest whole number with F(r) >= a; alpha = (F(r) - a) / (F(r) - F(r - 1)),
    F(-1) = 0; limit = (r - alpha) / n, clipped to [0, 1]."""
    r = min(int(np.searchsorted(cdf, tail, side="left")), n)
    upper = float(cdf[r])
    lower = float(cdf[r - 1]) if r > 0 else 0.0
    alpha = (upper - tail) / (upper - lower) if upper > lower else 0.0
    return min(1.0, max(0.0, (r - alpha) / n))


def binomial_limits(n: int, p0: Fraction, tails: Sequence[float]) -> list[float]:
    """The exact binomial limits of Binomial(n, p0) for several tail probabilities, from one
    table of its distribution function. Every limit equals p0 when p0 is 0 or 1."""
    if p0 in (0, 1):
        return [float(p0)] * len(tails)
    cdf = _cdf_table(n, float(p0))
    return [_limit(cdf, n, tail) for tail in tails]


def binomial_limit(n: int, p0: Fraction, tail: float) -> float:
    """One exact binomial limit (see binomial_limits)."""
    return binomial_limits(n, p0, [tail])[0]


# --- over-dispersion ----------------------------------------------------------------------------


def tau_squared(points: Sequence[Point], p0: Fraction) -> float:
    """The additive random effect on the arcsine scale: z_i = (asin(sqrt(p_i)) - t0) / s_i with
    s_i = 1 / (2 sqrt(n_i)); the k = floor(I / 10) smallest and largest z_i winsorised; phi =
    mean of z^2; tau2 = max(0, (I phi - (I - 1)) / (sum w - sum w^2 / sum w)), w_i = 1 / s_i^2.
    0 with fewer than two points."""
    count = len(points)
    if count < 2:
        return 0.0
    target = math.asin(math.sqrt(float(p0)))
    scores = []
    weights = []
    for point in points:
        spread = 1 / (2 * math.sqrt(point.denominator))
        scores.append((math.asin(math.sqrt(point.numerator / point.denominator)) - target) / spread)
        weights.append(1 / spread**2)
    scores.sort()
    k = count // 10  # floor(0.1 x I), in whole numbers
    if k:
        low, high = scores[k], scores[count - 1 - k]
        scores = [low] * k + scores[k : count - k] + [high] * k
    phi = sum(z * z for z in scores) / count
    total = sum(weights)
    spread_of_weights = total - sum(w * w for w in weights) / total
    return max(0.0, (count * phi - (count - 1)) / spread_of_weights)


def adjusted_limit(n: int, p0: Fraction, tau2: float, z: float) -> float:
    """sin(t0 + z sqrt(s^2 + tau2))^2, the argument clipped to [0, pi/2]."""
    target = math.asin(math.sqrt(float(p0)))
    spread = 1 / (2 * math.sqrt(n))
    argument = target + z * math.sqrt(spread**2 + tau2)
    return math.sin(min(math.pi / 2, max(0.0, argument))) ** 2


def limits(n: int, p0: Fraction, tau2: float) -> Limits:
    """The four limits for a denominator n: adjusted when tau2 > 0, else exact binomial."""
    if tau2 > 0:
        return Limits(
            adjusted_limit(n, p0, tau2, -Z_95),
            adjusted_limit(n, p0, tau2, Z_95),
            adjusted_limit(n, p0, tau2, -Z_998),
            adjusted_limit(n, p0, tau2, Z_998),
        )
    return Limits(*binomial_limits(n, p0, (*TAILS_95, *TAILS_998)))


# --- flags --------------------------------------------------------------------------------------


def _exact_tail(point: Point, p0: Fraction, upper: bool) -> Fraction:
    """P(X >= y) (upper) or P(X <= y) under Binomial(n, p0), in whole numbers."""
    n, y = point.denominator, point.numerator
    a, b = p0.numerator, p0.denominator
    ks = range(y, n + 1) if upper else range(0, y + 1)
    total = sum(math.comb(n, k) * a**k * (b - a) ** (n - k) for k in ks)
    return Fraction(total, b**n)


def _tail_at_most(point: Point, p0: Fraction, upper: bool, threshold: float) -> bool:
    """Whether the point's tail probability is at most the threshold (0.001 or 0.025)."""
    n, y, p = point.denominator, point.numerator, float(p0)
    if upper:
        tail = 1.0 if y == 0 else float(bdtrc(y - 1, n, p))  # P(X >= y) = P(X > y - 1)
    else:
        tail = float(bdtr(y, n, p))
    if abs(tail - threshold) > TIE_MARGIN * threshold:
        return tail <= threshold
    return _exact_tail(point, p0, upper) <= Fraction(str(threshold))


def binomial_flag(point: Point, p0: Fraction) -> str:
    """With U = P(X >= y) and L = P(X <= y) for X ~ Binomial(n, p0): above_998 when U <= 0.001,
    else above_95 when U <= 0.025, else below_998 when L <= 0.001, else below_95 when
    L <= 0.025, else within."""
    if p0 in (0, 1):
        # Every service sits at p0: both tails hold the whole distribution.
        return WITHIN
    if _tail_at_most(point, p0, True, TAILS_998[0]):
        return ABOVE_998
    if _tail_at_most(point, p0, True, TAILS_95[0]):
        return ABOVE_95
    if _tail_at_most(point, p0, False, TAILS_998[0]):
        return BELOW_998
    if _tail_at_most(point, p0, False, TAILS_95[0]):
        return BELOW_95
    return WITHIN


def adjusted_flag(point: Point, bounds: Limits) -> str:
    """Against the widened limits, comparing the unrounded value; on a limit is within it."""
    value = point.value
    if value > Fraction(bounds.upper998):
        return ABOVE_998
    if value > Fraction(bounds.upper95):
        return ABOVE_95
    if value < Fraction(bounds.lower998):
        return BELOW_998
    if value < Fraction(bounds.lower95):
        return BELOW_95
    return WITHIN


def funnel(points: Sequence[Point]) -> Funnel:
    """The funnel of every point with a denominator of at least 1 (others are left out): target
    p0 = sum of numerators / sum of denominators, tau2, each point's limits and flag."""
    used = [p for p in points if p.denominator >= 1]
    if not used:
        return Funnel(None, 0.0, [])
    p0 = Fraction(sum(p.numerator for p in used), sum(p.denominator for p in used))
    tau2 = tau_squared(used, p0)
    result = []
    for point in used:
        bounds = limits(point.denominator, p0, tau2)
        flag = adjusted_flag(point, bounds) if tau2 > 0 else binomial_flag(point, p0)
        result.append(FunnelPoint(point, bounds, flag))
    return Funnel(p0, tau2, result)


# --- formats ------------------------------------------------------------------------------------


def percent_text(proportion: Fraction | float) -> str:
    """A proportion as a percentage rounded half up to 2 decimals (on the exact value)."""
    return f"{round_half_up(Fraction(proportion) * 100, 2):.2f}"


def tau2_text(tau2: float) -> str:
    """tau2 in plain decimal notation, 8 significant digits, no trailing zeros; `0` for none."""
    if tau2 == 0:
        return "0"
    exact = Decimal(tau2)
    rounded = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 7), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
