"""The page for patients and families (issue 20): a service's figures in plain words, each beside
the figure for every service, with what a person can ask their GP. No KPI names or numbers; the
public suppression rule (nothing over fewer than 5 people)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from kpis.definitions import SUPPRESS_BELOW
from kpis.engine import Figure
from kpis.numbers import round_half_up
from kpis.outcomes import OutcomeFigure
from kpis.periods import Period
from portal.kpi_pages import figures as kpi_figures
from portal.kpi_pages import outcome_figures
from portal.models import Service

ASSESSED, STARTED, STILL_ON = 3, 9, 10  # KPIs 4, 10 and 11, by index

QUESTIONS = (
    "Have my bones been checked since I broke a bone?",
    "Should I take a medicine to make my bones stronger?",
    "How do I take it, and for how long?",
    "When will we check how it is going?",
    "Can I get help with my balance, or join an exercise class?",
    "What can I do at home to stop a fall?",
)


@dataclass(frozen=True)
class PlainFigure:
    """One question, the service's answer and the answer for every service, in words."""

    question: str
    here: str
    everywhere: str


def _in_every_100(value: Fraction | None) -> str:
    return f"{round_half_up(value, 0):.0f} in every 100" if value is not None else ""


def _share(figure: Figure | OutcomeFigure, words: str) -> str:
    count = figure.denominator if isinstance(figure, Figure) else figure.patients
    if count < SUPPRESS_BELOW or figure.value is None:
        return "Too few people to give a fair figure."
    return f"{_in_every_100(figure.value)} {words}."


@dataclass
class PlainPage:
    service_code: str
    service_name: str
    year: int
    seen: int
    seen_everywhere: int
    figures: list[PlainFigure]
    questions: tuple[str, ...] = QUESTIONS


def plain_page(service: Service, year: int, as_of: date) -> PlainPage:
    """The service's figures for a year in plain words, from the cached benchmarks and outcomes."""
    period = Period.year(year)
    report = kpi_figures.full_report(period, as_of)
    row = report.row_for(service.id)
    figures = row.figures if row is not None else kpi_figures.empty_row(service, period).figures
    national = report.national.figures
    outcomes = outcome_figures.service_outcomes(service, period, as_of)
    again = outcomes.lines[0]
    lines = [
        PlainFigure(
            "Were bones checked in time?",
            _share(figures[ASSESSED], "people had their bones checked within 3 months"),
            _share(national[ASSESSED], "people had their bones checked within 3 months"),
        ),
        PlainFigure(
            "Did people start a bone medicine?",
            _share(
                figures[STARTED],
                "people who were told to take a bone medicine had started it by 4 months",
            ),
            _share(
                national[STARTED],
                "people who were told to take a bone medicine had started it by 4 months",
            ),
        ),
        PlainFigure(
            "Were they still taking it a year later?",
            _share(figures[STILL_ON], "people were still taking it a year later"),
            _share(national[STILL_ON], "people were still taking it a year later"),
        ),
        PlainFigure(
            "Did people break another bone?",
            _share(again.figure, "people broke another bone within a year"),
            _share(again.national, "people broke another bone within a year"),
        ),
    ]
    seen = row.episodes if row is not None else 0
    return PlainPage(service.code, service.name, year, seen, report.national.episodes, lines)
