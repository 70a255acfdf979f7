"""A funnel plot's content (spec/outcomes.md, "Funnel plots"): the points shown (on public pages,
the services with a denominator of 5 or more; every point still counts for p0 and tau2), the
service highlighted, which limits are used, a text alternative and the data as rows and CSV."""

from __future__ import annotations

from dataclasses import dataclass

from kpis.csv_output import csv_text
from kpis.definitions import KPI
from kpis.export import FUNNEL_HEADER, funnel_rows
from kpis.funnel import FLAG_WORDS, FLAGS, Funnel, FunnelPoint, percent_text, tau2_text
from kpis.periods import Period

# The denominators at which the limit lines are drawn: dense where they bend.
CURVE_STEPS = 120


@dataclass
class FunnelChart:
    kpi: KPI
    period: Period
    plot: Funnel
    highlight: str | None  # the service code drawn apart (a signed-in user's service)
    public: bool

    @property
    def title(self) -> str:
        return f"KPI {self.kpi.number} {self.kpi.name}: every service, {self.period.label()}"

    @property
    def shown(self) -> list[FunnelPoint]:
        """The points drawn and flagged on this page."""
        if not self.public:
            return list(self.plot.points)
        return [p for p in self.plot.points if p.point.shown_in_public]

    @property
    def hidden(self) -> int:
        return len(self.plot.points) - len(self.shown)

    @property
    def highlighted(self) -> FunnelPoint | None:
        return next((p for p in self.shown if p.point.code == self.highlight), None)

    @property
    def limits_note(self) -> str:
        """Which limits the plot uses, in words, with tau2."""
        if self.plot.target is None:
            return "No service has a denominator in this period, so there are no limits."
        if self.plot.adjusted:
            return (
                "The limits are widened for over-dispersion: the services differ more than chance "
                "alone would make them, so an additive random effect is allowed for (tau2 = "
                f"{tau2_text(self.plot.tau2)}, on the arcsine scale, from 10% winsorised z-scores)."
            )
        return (
            "The limits are exact binomial 95% and 99.8% limits around the national value "
            "(tau2 = 0: the services differ no more than chance would make them)."
        )

    def by_flag(self) -> dict[str, list[FunnelPoint]]:
        groups: dict[str, list[FunnelPoint]] = {flag: [] for flag in FLAGS}
        for point in self.shown:
            groups[point.flag].append(point)
        return groups

    def text_alternative(self) -> str:
        """What the plot shows, in words."""
        if self.plot.target is None:
            return f"Funnel plot of {self.title}: no service has a denominator in this period."
        shown = self.shown
        parts = [
            f"Funnel plot of {self.title}. {len(shown)} service(s) shown, each a point at its "
            f"denominator and value; the national value is {percent_text(self.plot.target)}%.",
            self.limits_note,
        ]
        for flag, points in self.by_flag().items():
            if not points or flag == "within":
                continue
            names = ", ".join(
                f"{p.point.code} ({percent_text(p.point.value)}% of {p.point.denominator})"
                for p in points
            )
            parts.append(f"{FLAG_WORDS[flag].capitalize()}: {names}.")
        within = len(self.by_flag()["within"])
        parts.append(f"{within} service(s) within the limits.")
        mine = self.highlighted
        if mine is not None:
            parts.append(
                f"Your service {mine.point.code}: {percent_text(mine.point.value)}% "
                f"({mine.point.numerator} of {mine.point.denominator}), {FLAG_WORDS[mine.flag]}."
            )
        if self.hidden:
            parts.append(
                f"{self.hidden} service(s) with fewer than 5 in the denominator are not shown; "
                "they still count in the national value and the limits."
            )
        return " ".join(parts)

    def rows(self) -> list[dict[str, str]]:
        """The data as a table: one row per point shown."""
        codes = {p.point.code for p in self.shown}
        return [
            dict(zip(FUNNEL_HEADER, row, strict=True)) | {"flag_words": FLAG_WORDS[row[-1]]}
            for row in funnel_rows(self.plot)
            if row[0] in codes
        ]

    def csv(self) -> str:
        """The points shown, in the columns of `flask kpis funnel`."""
        return csv_text(FUNNEL_HEADER, ([row[c] for c in FUNNEL_HEADER] for row in self.rows()))

    def curve_denominators(self) -> list[int]:
        """The denominators at which the limit lines are drawn."""
        largest = max([p.point.denominator for p in self.plot.points] + [10])
        top = int(largest * 1.1) + 1
        steps = sorted(
            {max(1, round(top * (i / CURVE_STEPS) ** 2)) for i in range(CURVE_STEPS + 1)}
        )
        return steps
