"""A run chart's content: the months shown, p-chart limits or a plain run chart, the Anhoej rules,
the national line, a text alternative and the data as rows (spec/kpis.md, "Over time")."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from kpis.csv_output import csv_text
from kpis.definitions import KPI
from kpis.engine import MonthPoint
from kpis.numbers import format_denominator, format_value
from kpis.periods import Month, Period
from kpis.spc import PChart, RunRules, anhoej, p_chart, run_marks


@dataclass(frozen=True)
class ChartMonth:
    """One month as drawn: value None when suppressed (a gap on public charts)."""

    month: Month
    numerator: int | None
    denominator: int | Fraction | None
    value: Fraction | None
    lower: float | None = None
    upper: float | None = None
    flagged: bool = False
    national: Fraction | None = None

    @property
    def suppressed(self) -> bool:
        return self.value is None


def _value(month: ChartMonth) -> Fraction:
    """A shown month's value (shown months have one)."""
    return month.value if month.value is not None else Fraction(0)


@dataclass
class RunChart:
    kpi: KPI
    subject: str  # the service's name, or "National"
    period: Period
    months: list[ChartMonth]
    centre: float | None
    rules: RunRules
    public: bool
    has_national: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"KPI {self.kpi.number} {self.kpi.name}: {self.subject}"

    @property
    def is_p_chart(self) -> bool:
        return self.kpi.is_proportion

    @property
    def shown(self) -> list[ChartMonth]:
        return [m for m in self.months if not m.suppressed]

    @property
    def flagged(self) -> list[ChartMonth]:
        return [m for m in self.months if m.flagged]

    def signal_positions(self) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
        """Where the run rules' signals lie, as positions in `months` (gaps included): the
        unusually long run (first, last), or None, and the crossings of the median when there are
        unusually few of them (the months either side of each), or []."""
        places = [i for i, m in enumerate(self.months) if m.value is not None]
        marks = run_marks([_value(self.months[i]) for i in places])
        run = None
        if self.rules.long_run and marks.longest_run is not None:
            run = (places[marks.longest_run[0]], places[marks.longest_run[1]])
        crossings = []
        if self.rules.few_crossings:
            crossings = [(places[a], places[b]) for a, b in marks.crossings]
        return run, crossings

    def marks_words(self) -> list[str]:
        """How the chart marks what it flags, for its legend's readers and the text alternative."""
        words = []
        if self.flagged:
            words.append("Months outside the control limits are ringed.")
        run, crossings = self.signal_positions()
        if run is not None:
            first, last = self.months[run[0]].month.label(), self.months[run[1]].month.label()
            words.append(
                f'The unusually long run, {first} to {last}, is shaded and labelled "Long run".'
            )
        if self.rules.few_crossings:
            words.append(
                f"Each of the {len(crossings)} crossing(s) of the median is marked with a cross."
            )
        return words

    def text_alternative(self) -> str:
        """What the chart shows, in words, for a screen reader and for the printed page."""
        shown = self.shown
        kind = "p-chart" if self.is_p_chart else "run chart"
        if not shown:
            return f"{self.title}, {self.period.label()}: no month has figures to show."
        low = min(shown, key=_value)
        high = max(shown, key=_value)
        parts = [
            f"{kind.capitalize()} of {self.title}, {self.period.label()}, {len(shown)} months shown.",
            f"Lowest {format_value(low.value)}% in {low.month.label()}, highest "
            f"{format_value(high.value)}% in {high.month.label()}.",
        ]
        if self.centre is not None:
            parts.append(f"Centre line {self.centre:.1f}%.")
        if self.is_p_chart:
            flagged = self.flagged
            if flagged:
                names = ", ".join(m.month.label() for m in flagged)
                parts.append(f"{len(flagged)} month(s) outside the control limits: {names}.")
            else:
                parts.append("No month outside the control limits.")
        signals = self.rules.describe()
        parts.extend(signals or ["No unusual run or shortage of crossings: random variation only."])
        parts.extend(self.marks_words())
        if self.has_national:
            parts.append("The national value is the dotted line with square markers.")
        hidden = len(self.months) - len(shown)
        if hidden:
            parts.append(f"{hidden} month(s) with fewer than 5 in the denominator are not shown.")
        return " ".join(parts)

    def rows(self) -> list[dict[str, str]]:
        """The data as a table (and the CSV): one row per month with a denominator."""
        out = []
        for m in self.months:
            out.append(
                {
                    "month": m.month.key,
                    "numerator": "" if m.suppressed else str(m.numerator),
                    "denominator": "fewer than 5"
                    if m.denominator is None
                    else format_denominator(m.denominator),
                    "value": "" if m.suppressed else format_value(m.value),
                    "lower_limit": "" if m.lower is None else f"{m.lower:.1f}",
                    "upper_limit": "" if m.upper is None else f"{m.upper:.1f}",
                    "outside_limits": "yes" if m.flagged else "",
                    "national": format_value(m.national),
                }
            )
        return out

    def csv(self) -> str:
        columns = ["month", "numerator", "denominator", "value"]
        if self.is_p_chart:
            columns += ["lower_limit", "upper_limit", "outside_limits"]
        if self.has_national:
            columns.append("national")
        return csv_text(columns, ([row.get(c, "") for c in columns] for row in self.rows()))


def build(
    kpi: KPI,
    subject: str,
    period: Period,
    points: list[MonthPoint],
    national: list[MonthPoint] | None = None,
    public: bool = False,
) -> RunChart:
    """Put together a run chart from monthly points (months with a denominator of 0 are already
    left out). On public charts a month with a denominator below 5 is a gap with no limits, and the
    centre line and rules read only the months shown."""
    national_values = {p.month: p.value for p in national or []}
    shown = [p for p in points if not (public and p.suppressed)]
    chart: PChart | None = None
    if kpi.is_proportion and shown:
        chart = p_chart([p.numerator for p in shown], [int(p.denominator) for p in shown])
    limits = {}
    if chart is not None:
        for i, point in enumerate(shown):
            limits[point.month] = (chart.lower[i], chart.upper[i], chart.flagged[i])
    months = []
    for point in points:
        nat = national_values.get(point.month)
        if public and point.suppressed:
            months.append(ChartMonth(point.month, None, None, None, national=nat))
            continue
        lower, upper, flagged = limits.get(point.month, (None, None, False))
        months.append(
            ChartMonth(
                point.month,
                point.numerator,
                point.denominator,
                point.value,
                lower,
                upper,
                flagged,
                nat,
            )
        )
    rules = anhoej([p.value for p in shown if p.value is not None])
    # A p-chart's centre line is p-bar; a plain run chart's is its median.
    centre = chart.centre if chart is not None else rules.median
    return RunChart(kpi, subject, period, months, centre, rules, public, national is not None)
