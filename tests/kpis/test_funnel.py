"""Funnel plots (spec/outcomes.md, "Funnel plots"): exact binomial limits worked by hand, the
over-dispersion estimate against its formula, the flags, and the export's formats."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpis import funnel
from kpis.funnel import Point


def test_exact_binomial_limits_worked_by_hand():
    """Binomial(10, 1/2): F(1) = 11/1024, F(2) = 56/1024 >= 0.025, so r = 2 and
    alpha = (56/1024 - 1/40) / (45/1024) = 30.4/45; limit = (2 - alpha) / 10 = 13.24%.
    Upper 97.5%: F(7) = 968/1024, F(8) = 1013/1024: r = 8, alpha = 14.6/45: 76.76%."""
    half = Fraction(1, 2)
    assert funnel.binomial_limit(10, half, 0.025) == pytest.approx((2 - 30.4 / 45) / 10)
    assert funnel.percent_text(funnel.binomial_limit(10, half, 0.025)) == "13.24"
    assert funnel.binomial_limit(10, half, 0.975) == pytest.approx((8 - 14.6 / 45) / 10)
    assert funnel.percent_text(funnel.binomial_limit(10, half, 0.975)) == "76.76"


def test_limits_clip_to_zero_and_one():
    # Binomial(1, 1/2): F(0) = 1/2 >= 0.001: r = 0, alpha = (0.5 - 0.001) / 0.5: below 0.
    assert funnel.binomial_limit(1, Fraction(1, 2), 0.001) == 0.0
    assert funnel.binomial_limit(1, Fraction(1, 2), 0.999) <= 1.0


def test_p0_of_zero_or_one_puts_every_limit_at_p0():
    for p0, numerator in ((Fraction(0), 0), (Fraction(1), 1)):
        points = [Point("AAA", 7 * numerator, 7), Point("BBB", 30 * numerator, 30)]
        plot = funnel.funnel(points)
        assert plot.target == p0 and plot.tau2 == 0
        for point in plot.points:
            limits = point.limits
            assert {limits.lower95, limits.upper95, limits.lower998, limits.upper998} == {float(p0)}
            assert point.flag == funnel.WITHIN


def test_one_point_is_its_own_target_and_within():
    plot = funnel.funnel([Point("AAA", 3, 9)])
    assert plot.target == Fraction(1, 3) and plot.tau2 == 0
    assert plot.points[0].flag == funnel.WITHIN


def test_no_point_and_empty_denominators():
    assert funnel.funnel([]).points == []
    assert funnel.funnel([Point("AAA", 0, 0)]).target is None


def test_one_of_one_is_not_above_998_by_chance():
    plot = funnel.funnel([Point("AAA", 1, 1), Point("BBB", 50, 100)])
    assert plot.points[0].flag == funnel.WITHIN


def test_binomial_flag_on_an_exact_tie():
    """Binomial(3, 1/10): P(X >= 3) = 1/1000 exactly: at most 0.001, so above_998."""
    assert funnel.binomial_flag(Point("AAA", 3, 3), Fraction(1, 10)) == funnel.ABOVE_998
    # P(X <= 0) = 729/1000: within.
    assert funnel.binomial_flag(Point("AAA", 0, 3), Fraction(1, 10)) == funnel.WITHIN
    # Binomial(40, 1/2), 30 of 40: U = P(X >= 30) = 0.00111: above 95, not 99.8.
    assert funnel.binomial_flag(Point("AAA", 30, 40), Fraction(1, 2)) == funnel.ABOVE_95
    assert funnel.binomial_flag(Point("AAA", 31, 40), Fraction(1, 2)) == funnel.ABOVE_998
    assert funnel.binomial_flag(Point("AAA", 10, 40), Fraction(1, 2)) == funnel.BELOW_95
    assert funnel.binomial_flag(Point("AAA", 9, 40), Fraction(1, 2)) == funnel.BELOW_998


def plain_tau2(points: list[Point]) -> float:
    """tau2 as outcomes.md writes it, step by step."""
    count = len(points)
    if count < 2:
        return 0.0
    p0 = sum(p.numerator for p in points) / sum(p.denominator for p in points)
    t0 = math.asin(math.sqrt(p0))
    s = [1 / (2 * math.sqrt(p.denominator)) for p in points]
    z = sorted(
        (math.asin(math.sqrt(p.numerator / p.denominator)) - t0) / si
        for p, si in zip(points, s, strict=True)
    )
    k = math.floor(0.1 * count)
    for i in range(k):
        z[i] = z[k]
        z[count - 1 - i] = z[count - 1 - k]
    phi = sum(v * v for v in z) / count
    w = [1 / si**2 for si in s]
    return max(0.0, (count * phi - (count - 1)) / (sum(w) - sum(x * x for x in w) / sum(w)))


OVER_DISPERSED = [
    Point(f"S{i:02d}", numerator, 100)
    for i, numerator in enumerate((10, 90, 20, 80, 30, 70, 40, 60, 50, 50, 15, 85))
]


def test_over_dispersion_widens_the_limits_and_flags_against_them():
    plot = funnel.funnel(OVER_DISPERSED)
    assert plot.target == Fraction(1, 2)
    assert plot.tau2 == pytest.approx(plain_tau2(OVER_DISPERSED), rel=1e-12)
    assert plot.adjusted and "over-dispersion" in plot.method
    t0 = math.asin(math.sqrt(0.5))
    spread = math.sqrt(1 / 400 + plot.tau2)
    expected_upper = math.sin(t0 + 1.959964 * spread) ** 2
    assert plot.points[0].limits.upper95 == pytest.approx(expected_upper)
    flags = {p.point.code: p.flag for p in plot.points}
    # 10% against limits this wide: below the 95% limit but not the 99.8% one, or within.
    lower95, lower998 = plot.points[0].limits.lower95, plot.points[0].limits.lower998
    expected = "below_998" if 0.1 < lower998 else "below_95" if 0.1 < lower95 else "within"
    assert flags["S00"] == expected
    assert flags["S08"] == funnel.WITHIN


def test_winsorising_takes_the_tenth_from_each_end():
    # Ten points: k = 1; one wild point barely moves tau2 once winsorised.
    calm = [Point(f"S{i}", 45 + i, 100) for i in range(9)]
    wild = calm + [Point("WLD", 100, 100)]
    assert funnel.tau_squared(wild, Fraction(sum(p.numerator for p in wild), 1000)) == (
        pytest.approx(plain_tau2(wild), rel=1e-12)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
        min_size=1,
        max_size=25,
    )
)
def test_limits_are_ordered_and_tau2_follows_the_formula(pairs):
    points = [Point(f"S{i:02d}", y, n) for i, (y, n) in enumerate(pairs)]
    plot = funnel.funnel(points)
    assert plot.tau2 == pytest.approx(plain_tau2(points), rel=1e-9, abs=1e-15)
    for point in plot.points:
        limits = point.limits
        assert 0 <= limits.lower998 <= limits.lower95 <= limits.upper95 <= limits.upper998 <= 1
        assert point.flag in funnel.FLAGS


def test_tau2_text():
    assert funnel.tau2_text(0) == "0"
    assert funnel.tau2_text(0.1) == "0.1"
    assert funnel.tau2_text(1.5) == "1.5"
    assert funnel.tau2_text(0.000123456789) == "0.00012345679"
    assert funnel.tau2_text(0.0123456785) == "0.012345679"  # half up at the 8th digit
    assert funnel.tau2_text(12345.678949) == "12345.679"
    assert "e" not in funnel.tau2_text(1.234e-9).lower()


def test_percent_text_rounds_half_up():
    assert funnel.percent_text(Fraction(1, 8)) == "12.50"
    assert funnel.percent_text(Fraction(1, 3)) == "33.33"
    assert funnel.percent_text(Fraction(2, 3)) == "66.67"
    assert funnel.percent_text(Fraction(1, 800)) == "0.13"  # 0.125 -> 0.13
