"""A split as a table (issue 20, "Who is left behind"): each KPI and outcome for everyone and for
each part of the split, for a service or nationally, with the public suppression rule; its text
alternative, its CSV and the values its chart draws.

KPI 2's denominator (the expected caseload) is not split: each part's KPI 2 is its episodes over
the whole caseload, so the parts add up to the whole. KPI 1 (fields at most 20% missing) is
computed within each part and does not add up; the counts beneath it do."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from kpis import outcomes
from kpis.counting import COUNT_NAMES, Counts
from kpis.csv_output import SafeWriter
from kpis.definitions import KPIS, SUPPRESS_BELOW
from kpis.engine import EMPTY_COUNTS, Figure, national_figures, service_figures
from kpis.numbers import format_denominator, format_value, percent
from kpis.outcomes import FollowUp
from kpis.periods import Period
from kpis.splits import Split


@dataclass(frozen=True)
class Cell:
    """One figure: numerator (events), denominator (patients), exact value in percent."""

    numerator: int
    denominator: int | Fraction
    value: Fraction | None
    suppressed: bool = False

    @property
    def text(self) -> str:
        if self.suppressed:
            return "fewer than 5"
        if self.value is None:
            return "no data"
        return format_value(self.value) + "%"

    @property
    def counts_text(self) -> str:
        if self.suppressed:
            return ""
        return f"{self.numerator} of {format_denominator(self.denominator)}"


@dataclass(frozen=True)
class SplitRow:
    key: str  # kpi1 ... kpi11, or an outcome measure's name
    label: str
    whole: Cell
    parts: list[Cell]
    is_proportion: bool  # drawn on the chart (KPIs 3-11 and the outcomes)


@dataclass
class SplitTable:
    split: Split
    subject: str
    period: Period
    rows: list[SplitRow]
    public: bool

    @property
    def title(self) -> str:
        return f"{self.subject}, {self.period.label()}: by {self.split.label.lower()}"

    @property
    def part_labels(self) -> list[str]:
        return [label for _, label in self.split.parts]

    def text_alternative(self) -> str:
        """The largest gap between parts of each measure, in words."""
        sentences = [f"Each KPI and outcome of {self.title}, for everyone and for each part."]
        for row in self.rows:
            if not row.is_proportion:
                continue
            values = [
                (cell.value, label)
                for cell, label in zip(row.parts, self.part_labels, strict=True)
                if cell.value is not None and not cell.suppressed
            ]
            if len(values) < 2:
                continue
            low, high = min(values), max(values)
            sentences.append(
                f"{row.label}: from {format_value(low[0])}% ({low[1]}) to "
                f"{format_value(high[0])}% ({high[1]}); everyone {row.whole.text}."
            )
        if self.public:
            sentences.append("Figures over fewer than 5 patients are not shown.")
        return " ".join(sentences)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = SafeWriter(buffer)  # text cells neutralised (kpis/csv_output.py)
        writer.writerow(["measure", "part", "numerator", "denominator", "value"])
        for row in self.rows:
            for label, cell in [
                ("Everyone", row.whole),
                *zip(self.part_labels, row.parts, strict=True),
            ]:
                if cell.suppressed:
                    writer.writerow([row.key, label, "", "", "fewer than 5"])
                else:
                    writer.writerow(
                        [
                            row.key,
                            label,
                            cell.numerator,
                            format_denominator(cell.denominator),
                            format_value(cell.value),
                        ]
                    )
        return buffer.getvalue()

    def chart_rows(self) -> list[SplitRow]:
        return [row for row in self.rows if row.is_proportion]


def _sum(groups: Sequence[Counts]) -> Counts:
    total = dict(EMPTY_COUNTS)
    for group in groups:
        for name in COUNT_NAMES:
            total[name] += group[name]
    return total


def _kpi_cell(figure: Figure, public: bool) -> Cell:
    return Cell(
        figure.numerator,
        figure.denominator,
        figure.value,
        public and figure.denominator < SUPPRESS_BELOW,
    )


def _kpi_figures(groups: Sequence[tuple[Counts, int]], months: int, national: bool) -> list[Figure]:
    if national:
        return national_figures(groups, months)
    counts, caseload = groups[0] if groups else (EMPTY_COUNTS, 0)
    return service_figures(counts, caseload, months)


def build(
    split: Split,
    subject: str,
    period: Period,
    services: Sequence[tuple[dict[str, Counts], dict[str, FollowUp], int]],
    national: bool,
    public: bool,
) -> SplitTable:
    """The table of one service (one entry in `services`) or of the nation (every service with
    data): each entry holds the service's KPI counts and outcome follow-ups by part, and its
    expected caseload."""
    keys = [key for key, _ in split.parts]
    wholes = [(_sum(list(kpis.values())), caseload) for kpis, _, caseload in services]
    whole_figures = _kpi_figures(wholes, period.months, national)
    part_figures = []
    for key in keys:
        groups = [(kpis.get(key, EMPTY_COUNTS), caseload) for kpis, _, caseload in services]
        figures = _kpi_figures(groups, period.months, national)
        # KPI 2: the part's episodes over the whole caseload (the caseload is not split).
        whole_kpi2 = whole_figures[1]
        figures[1] = Figure(
            figures[1].kpi,
            figures[1].numerator,
            whole_kpi2.denominator,
            percent(figures[1].numerator, whole_kpi2.denominator),
            figures[1].kpi.band(percent(figures[1].numerator, whole_kpi2.denominator)),
        )
        part_figures.append(figures)
    rows = [
        SplitRow(
            f"kpi{kpi.number}",
            f"KPI {kpi.number}: {kpi.name}",
            _kpi_cell(whole_figures[i], public),
            [_kpi_cell(figures[i], public) for figures in part_figures],
            kpi.is_proportion,
        )
        for i, kpi in enumerate(KPIS)
    ]
    whole_follow = outcomes.pooled(f for _, follow, _ in services for f in follow.values())
    part_follow = [
        outcomes.pooled(follow[key] for _, follow, _ in services if key in follow) for key in keys
    ]
    for i, measure in enumerate(outcomes.MEASURES):
        whole = outcomes.figures(whole_follow)[i]
        parts = [outcomes.figures(f)[i] for f in part_follow]
        rows.append(
            SplitRow(
                measure.name,
                measure.label,
                Cell(whole.events, whole.patients, whole.value, public and whole.suppressed),
                [Cell(p.events, p.patients, p.value, public and p.suppressed) for p in parts],
                True,
            )
        )
    return SplitTable(split, subject, period, rows, public)
