"""p-chart limits and the Anhoej run rules on worked examples (spec/kpis.md, "Over time")."""

from __future__ import annotations

import math

import pytest

from kpis.spc import anhoej, fewest_crossings, longest_run_limit, p_chart


@pytest.mark.parametrize(
    "useful, expected",
    [
        # n = 10: Binomial(9, 0.5). P(X <= 1) = (1 + 9) / 512 = 0.0195 < 0.05,
        # P(X <= 2) = (1 + 9 + 36) / 512 = 0.0898 >= 0.05, so c = 2.
        (10, 2),
        # n = 12: Binomial(11, 0.5). cumulative 1, 12, 67, 232 of 2048; 5% is 102.4: c = 3.
        (12, 3),
        # n = 20: Binomial(19, 0.5). cumulative to 5 is 16664, to 6 is 43796, of 524288
        # (5% = 26214.4): c = 6.
        (20, 6),
        # n = 2: Binomial(1, 0.5): P(X <= 0) = 0.5: c = 0 (never signals).
        (2, 0),
        (1, 0),
    ],
)
def test_fewest_crossings_is_qbinom_005(useful, expected):
    assert fewest_crossings(useful) == expected


def test_fewest_crossings_matches_the_definition_for_many_n():
    for useful in range(2, 80):
        trials = useful - 1
        c = fewest_crossings(useful)
        below = sum(math.comb(trials, k) for k in range(c)) / 2**trials
        at = sum(math.comb(trials, k) for k in range(c + 1)) / 2**trials
        assert at >= 0.05 and (c == 0 or below < 0.05)


@pytest.mark.parametrize("useful, limit", [(10, 6), (16, 7), (20, 7), (24, 8), (30, 8), (8, 6)])
def test_longest_run_limit(useful, limit):
    # round(log2(n) + 3): log2(10) + 3 = 6.32 -> 6; log2(24) + 3 = 7.58 -> 8; log2(8) + 3 = 6.
    assert longest_run_limit(useful) == limit


def test_random_looking_series_has_no_signal():
    values = [5, 7, 4, 8, 3, 9, 2, 6, 1, 10]
    rules = anhoej(values)
    assert rules.median == 5.5
    assert rules.useful == 10
    assert rules.crossings == 9  # alternates every month
    assert rules.longest_run == 1
    assert not rules.signal


def test_shift_shows_as_a_long_run_and_few_crossings():
    # Median 5.5; six below then six above: one crossing, runs of 6 and 6 (limit for 12: 7).
    values = [1, 2, 3, 4, 5, 1, 6, 7, 8, 9, 10, 8]
    rules = anhoej(values)
    assert rules.useful == 12
    assert rules.longest_run == 6
    assert rules.run_limit == 7
    assert not rules.long_run
    assert rules.crossings == 1
    assert rules.crossing_limit == 3
    assert rules.few_crossings and rules.signal
    assert "few crossings" in " ".join(rules.describe())


def test_months_on_the_median_are_left_out():
    # 17 months, median 5 (the 9th of 17 sorted); the one 5 is left out: 16 useful months,
    # 7 below, 8 above, 1 below: longest run 8 > round(log2(16) + 3) = 7; 2 crossings, and
    # Binomial(15, 0.5) has cumulative 1, 16, 121, 576, 1941 of 32768 (5% = 1638.4): c = 4.
    values = [1, 2, 3, 1, 2, 3, 1, 5, 9, 9, 9, 9, 9, 9, 9, 9, 2]
    rules = anhoej(values)
    assert rules.median == 5
    assert rules.useful == 16
    assert rules.longest_run == 8
    assert rules.run_limit == 7
    assert rules.long_run
    assert rules.crossings == 2 and rules.crossing_limit == 4 and rules.few_crossings


def test_empty_and_flat_series_signal_nothing():
    assert not anhoej([]).signal
    flat = anhoej([50, 50, 50])
    assert flat.useful == 0 and not flat.signal


def test_p_chart_worked_example():
    # p-bar = (0 + 9 + 7) / (10 + 10 + 20) = 0.4.
    # n = 10: 3 sqrt(0.4 x 0.6 / 10) = 0.46476 -> limits 0 (clipped from -6.5%) and 86.48%.
    # n = 20: 3 sqrt(0.4 x 0.6 / 20) = 0.32863 -> limits 7.14% and 72.86%.
    chart = p_chart([0, 9, 7], [10, 10, 20])
    assert chart.centre == pytest.approx(40.0)
    assert chart.lower == pytest.approx([0.0, 0.0, 7.1366], abs=1e-3)
    assert chart.upper == pytest.approx([86.476, 86.476, 72.863], abs=1e-3)
    # 0% is on the clipped lower limit (not outside); 90% is above 86.48%; 35% is inside.
    assert chart.flagged == [False, True, False]


def test_p_chart_limits_are_clipped_to_100():
    chart = p_chart([9, 10], [10, 10])  # p-bar 0.95
    assert max(chart.upper) == 100.0
    assert chart.flagged == [False, False]


def test_p_chart_refuses_empty_months():
    with pytest.raises(ValueError):
        p_chart([1], [0])
