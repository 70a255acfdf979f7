"""The command-line exports as CSV: KPI figures (spec/kpis.md, "Export"), outcome measures and
funnel plots (spec/outcomes.md, "Export"), written by the one CSV writer (kpis/csv_output.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kpis import outcomes
from kpis.csv_output import csv_text
from kpis.engine import Report, Row
from kpis.funnel import Funnel, percent_text, tau2_text
from kpis.outcomes import FollowUp
from kpis.periods import Period

HEADER = (
    "service_code",
    "period_start",
    "period_end",
    "kpi",
    "numerator",
    "denominator",
    "value",
    "band",
)


def export_rows(report: Report, include_national: bool = True) -> Iterator[tuple[str, ...]]:
    """11 rows per service in the report, then (unless a service was asked for) 11 national rows."""
    rows: list[Row] = list(report.rows)
    if include_national:
        rows.append(report.national)
    start = report.period.start.isoformat()
    end = report.period.end.isoformat()
    for row in rows:
        for figure in row.figures:
            yield (
                row.code,
                start,
                end,
                str(figure.kpi.number),
                str(figure.numerator),
                figure.denominator_text,
                figure.value_text,
                figure.band,
            )


def export_csv(report: Report, include_national: bool = True) -> str:
    """The export as CSV text, header first, lines ending in LF."""
    return csv_text(HEADER, export_rows(report, include_national))


# --- outcomes (spec/outcomes.md, "Export") -----------------------------------------------------

OUTCOME_HEADER = (
    "service_code",
    "period_start",
    "period_end",
    "measure",
    "patients",
    "events",
    "at_risk",
    "value",
)


def outcome_rows(
    period: Period, groups: Sequence[tuple[str, FollowUp]]
) -> Iterator[tuple[str, ...]]:
    """Four rows (refracture_12m, refracture_24m, mortality_30d, mortality_1y) per group, in the
    order given; at_risk only on the refracture rows, value empty when there is none."""
    start, end = period.start.isoformat(), period.end.isoformat()
    for code, follow_up in groups:
        for figure in outcomes.figures(follow_up):
            yield (
                code,
                start,
                end,
                figure.measure.name,
                str(figure.patients),
                str(figure.events),
                "" if figure.at_risk is None else str(figure.at_risk),
                figure.value_text,
            )


def outcomes_csv(period: Period, groups: Sequence[tuple[str, FollowUp]]) -> str:
    """The outcomes export as CSV text, header first, lines ending in LF."""
    return csv_text(OUTCOME_HEADER, outcome_rows(period, groups))


# --- funnel plots (spec/outcomes.md, "Export") ------------------------------------------------

FUNNEL_HEADER = (
    "service_code",
    "numerator",
    "denominator",
    "value",
    "target",
    "lower95",
    "upper95",
    "lower998",
    "upper998",
    "tau2",
    "flag",
)


def funnel_rows(plot: Funnel) -> Iterator[tuple[str, ...]]:
    """One row per point, in the funnel's order: percentages rounded half up to 2 decimals."""
    if plot.target is None:
        return
    target = percent_text(plot.target)
    tau2 = tau2_text(plot.tau2)
    for point in plot.points:
        bounds = point.limits
        yield (
            point.point.code,
            str(point.point.numerator),
            str(point.point.denominator),
            percent_text(point.point.value),
            target,
            percent_text(bounds.lower95),
            percent_text(bounds.upper95),
            percent_text(bounds.lower998),
            percent_text(bounds.upper998),
            tau2,
            point.flag,
        )


def funnel_csv(plot: Funnel) -> str:
    """The funnel export as CSV text; the header alone when there is no point."""
    return csv_text(FUNNEL_HEADER, funnel_rows(plot))
