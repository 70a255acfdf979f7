"""Statistical process control for run charts (spec/kpis.md, "Over time"): p-chart limits and the
Anhoej run rules. Pure functions of the monthly numbers; no database, no drawing."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class PChart:
    """Centre line and per-month 3-sigma limits, all in percent; `flagged` months lie outside."""

    centre: float
    lower: list[float]
    upper: list[float]
    flagged: list[bool]


def p_chart(numerators: Sequence[int], denominators: Sequence[int]) -> PChart:
    """p-bar = sum of numerators / sum of denominators; limits p-bar +/- 3 sqrt(p-bar (1 - p-bar) / n)
    for each month's denominator n, clipped to 0-100%. A month strictly outside is flagged."""
    if len(numerators) != len(denominators):
        raise ValueError("one numerator per denominator")
    if not denominators or any(n <= 0 for n in denominators):
        raise ValueError("every month needs a positive denominator (months with 0 are left out)")
    p_bar = Fraction(sum(numerators), sum(denominators))
    p = float(p_bar)
    lower, upper, flagged = [], [], []
    for numerator, n in zip(numerators, denominators, strict=True):
        spread = 3 * math.sqrt(p * (1 - p) / n)
        low, high = max(0.0, p - spread), min(1.0, p + spread)
        lower.append(100 * low)
        upper.append(100 * high)
        share = Fraction(numerator, n)
        # Compare the exact share against the limits so a month on its limit is not flagged.
        flagged.append(share < Fraction(low) or share > Fraction(high))
    return PChart(100 * p, lower, upper, flagged)


def longest_run_limit(useful: int) -> int:
    """A run longer than round(log2(n) + 3) is unusually long (n = months not on the median)."""
    return math.floor(math.log2(useful) + 3 + 0.5)


def fewest_crossings(useful: int) -> int:
    """The smallest c with P(X <= c) >= 0.05 for X ~ Binomial(n - 1, 0.5): R's
    qbinom(0.05, n - 1, 0.5), computed exactly in whole numbers."""
    trials = useful - 1
    if trials <= 0:
        return 0
    total = 2**trials
    cumulative = 0
    for c in range(trials + 1):
        cumulative += math.comb(trials, c)
        # cumulative / total >= 1 / 20
        if 20 * cumulative >= total:
            return c
    return trials


@dataclass(frozen=True)
class RunRules:
    """The Anhoej rules on a series against its median."""

    median: float | None
    useful: int  # months not on the median
    longest_run: int
    run_limit: int
    crossings: int
    crossing_limit: int  # fewer crossings than this signal a shift

    @property
    def long_run(self) -> bool:
        return self.useful > 0 and self.longest_run > self.run_limit

    @property
    def few_crossings(self) -> bool:
        return self.useful > 0 and self.crossings < self.crossing_limit

    @property
    def signal(self) -> bool:
        """Non-random variation: a shift in the process."""
        return self.long_run or self.few_crossings

    def describe(self) -> list[str]:
        """The signals in words, for the page and the text alternative."""
        words = []
        if self.long_run:
            words.append(
                f"An unusually long run: {self.longest_run} months in a row on one side of the "
                f"median (more than {self.run_limit} is unusual for {self.useful} months)."
            )
        if self.few_crossings:
            words.append(
                f"Unusually few crossings of the median: {self.crossings} (fewer than "
                f"{self.crossing_limit} is unusual for {self.useful} months)."
            )
        return words


def anhoej(values: Sequence[Fraction]) -> RunRules:
    """Longest run and number of crossings of the median, months on the median left out."""
    if not values:
        return RunRules(None, 0, 0, 0, 0, 0)
    median = statistics.median(values)
    sides = [1 if v > median else -1 for v in values if v != median]
    useful = len(sides)
    if useful == 0:
        return RunRules(float(median), 0, 0, 0, 0, 0)
    longest = run = 1
    crossings = 0
    for before, after in zip(sides, sides[1:], strict=False):
        if after == before:
            run += 1
            longest = max(longest, run)
        else:
            crossings += 1
            run = 1
    return RunRules(
        float(median),
        useful,
        longest,
        longest_run_limit(useful),
        crossings,
        fewest_crossings(useful),
    )


@dataclass(frozen=True)
class RunMarks:
    """Where the Anhoej signals lie, as positions in the values the rules read, so a chart can mark
    them: the longest run (first and last position, months on the median inside it included) and
    each crossing of the median (the positions of the two months either side)."""

    longest_run: tuple[int, int] | None
    crossings: list[tuple[int, int]]


def run_marks(values: Sequence[Fraction]) -> RunMarks:
    """The positions of the longest run and of the crossings, read as `anhoej` reads them (the
    first of equally long runs)."""
    if not values:
        return RunMarks(None, [])
    median = statistics.median(values)
    sided = [(i, 1 if v > median else -1) for i, v in enumerate(values) if v != median]
    if not sided:
        return RunMarks(None, [])
    best = (sided[0][0], sided[0][0])
    best_length = length = 1
    start = sided[0][0]
    crossings = []
    for (i, before), (j, after) in zip(sided, sided[1:], strict=False):
        if after == before:
            length += 1
            if length > best_length:
                best_length, best = length, (start, j)
        else:
            crossings.append((i, j))
            start, length = j, 1
    return RunMarks(best, crossings)
