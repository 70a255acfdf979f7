"""The treatment plan's schedule (journey/treatment.py): each drug's doses, reviews and course
end, the windows' edges, and a stop without a follow-on drug."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from portal.journey.treatment import (
    DUE,
    OVERDUE,
    UPCOMING,
    add_months,
    course_schedule,
    plan_schedule,
)


@dataclass
class Event:
    kind: str
    event_date: date


@dataclass
class Course:
    drug: str
    started_on: date
    stopped_on: date | None = None
    events: list[Event] = field(default_factory=list)


def only(course: Course, courses=None):
    items = course_schedule(course, courses or [course])
    assert len(items) == 1, items
    return items[0]


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 8, 31), 6, date(2025, 2, 28)),
        (date(2023, 8, 31), 6, date(2024, 2, 29)),
        (date(2024, 1, 15), 12, date(2025, 1, 15)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
    ],
)
def test_months_are_added_to_the_calendar(day, months, expected):
    assert add_months(day, months) == expected


def test_denosumab_is_due_from_five_months_and_overdue_after_seven():
    course = Course("Denosumab", date(2024, 1, 10), events=[Event("dose", date(2024, 7, 12))])
    item = only(course)
    assert (item.due_from, item.due_on, item.overdue_after) == (
        date(2024, 12, 12),
        date(2025, 1, 12),
        date(2025, 2, 12),
    )
    assert item.status(date(2024, 12, 11)) == UPCOMING
    assert item.status(date(2024, 12, 12)) == DUE
    assert item.status(date(2025, 2, 12)) == DUE
    assert item.status(date(2025, 2, 13)) == OVERDUE


def test_zoledronate_is_yearly_and_reviewed_at_three_years_from_the_last_review():
    course = Course("Zoledronate", date(2021, 3, 1), events=[Event("dose", date(2022, 3, 3))])
    infusion, review = sorted(course_schedule(course, [course]), key=lambda i: i.due_on)
    assert infusion.due_on == date(2023, 3, 3)
    assert "3 years" in review.what and review.due_on == date(2024, 3, 1)
    course.events.append(Event("review", date(2024, 3, 10)))
    review = [i for i in course_schedule(course, [course]) if "Review" in i.what][0]
    assert review.due_on == date(2027, 3, 10)


def test_an_oral_bisphosphonate_is_reviewed_at_five_years():
    item = only(Course("Alendronate", date(2020, 5, 4)))
    assert item.due_on == date(2025, 5, 4) and item.what.startswith("Review of alendronate")


@pytest.mark.parametrize(("drug", "months"), [("Teriparatide", 24), ("Romosozumab", 12)])
def test_an_anabolic_course_ends_with_a_follow_on_due(drug, months):
    item = only(Course(drug, date(2023, 2, 1)))
    assert item.due_on == add_months(date(2023, 2, 1), months)
    assert "follow-on antiresorptive" in item.what


def test_denosumab_stopped_without_a_follow_on_stays_until_one_is_recorded():
    stopped = Course(
        "Denosumab",
        date(2023, 1, 5),
        stopped_on=date(2024, 2, 1),
        events=[Event("dose", date(2023, 7, 5))],
    )
    item = only(stopped)
    assert item.what == "Denosumab stopped without a follow-on drug"
    # Due from the stop; overdue a month after the next injection would have been (5/1/2024).
    assert item.status(date(2024, 2, 1)) == DUE
    assert item.status(date(2024, 2, 6)) == OVERDUE
    follow_on = Course("Zoledronate", date(2024, 3, 1))
    assert course_schedule(stopped, [stopped, follow_on]) == []
    # A drug that is no antiresorptive does not count as the follow-on.
    assert course_schedule(stopped, [stopped, Course("HRT", date(2024, 3, 1))]) != []


def test_a_stopped_oral_bisphosphonate_waits_for_nothing():
    assert (
        plan_schedule([Course("Alendronate", date(2020, 1, 1), stopped_on=date(2021, 1, 1))]) == []
    )
