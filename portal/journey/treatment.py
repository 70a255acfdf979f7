"""A treatment plan's schedule, derived from what was recorded of each course (never typed), and
the "treatment due" worklist that follows patients beyond the first year (docs/journey.md).

- Denosumab: an injection every 6 months, due from 5 months after the last one and overdue after
  7 (late doses are followed by rebound vertebral fractures).
- Zoledronate: an infusion every 12 months (due from 11, overdue after 13), and a review at 3
  years.
- An oral bisphosphonate (alendronate, risedronate, ibandronate): a review at 5 years.
- A review counts from the last one: continuing after review brings the next at 10 (6) years.
- Teriparatide (24 months), abaloparatide (18) and romosozumab (12): the course ends and a
  follow-on antiresorptive is due from a month before its end, overdue a month after.
- Denosumab or an anabolic course stopped without a follow-on antiresorptive stays due until one
  is recorded: a course of the episode started on or after the day it stopped.

Pure over the recorded courses: no request, no writes.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import Episode, Patient, Service, TreatmentCourse

DENOSUMAB, ZOLEDRONATE = "Denosumab", "Zoledronate"
ORAL_BISPHOSPHONATES = ("Alendronate", "Risedronate", "Ibandronate")
# Months of an anabolic course before a follow-on antiresorptive is due.
ANABOLIC_COURSE_MONTHS = {"Teriparatide": 24, "Abaloparatide": 18, "Romosozumab": 12}
# What counts as a follow-on after denosumab or an anabolic course.
ANTIRESORPTIVES = ORAL_BISPHOSPHONATES + (ZOLEDRONATE, DENOSUMAB)
# Months from the last dose (or review) to the next, and the window around it: (due from,
# due, overdue after).
DOSE_MONTHS = {DENOSUMAB: (5, 6, 7), ZOLEDRONATE: (11, 12, 13)}
REVIEW_MONTHS = {ZOLEDRONATE: 36, **dict.fromkeys(ORAL_BISPHOSPHONATES, 60)}
# The route a drug is usually given by, offered first on the form.
USUAL_ROUTE = {
    **dict.fromkeys(ORAL_BISPHOSPHONATES, "Oral"),
    ZOLEDRONATE: "Intravenous",
    DENOSUMAB: "Subcutaneous",
    **dict.fromkeys(ANABOLIC_COURSE_MONTHS, "Subcutaneous"),
    "Raloxifene": "Oral",
    "Alfacalcidol": "Oral",
    "HRT": "Oral",
    "Strontium ranelate": "Oral",
}

UPCOMING, DUE, OVERDUE = "upcoming", "due", "overdue"


def add_months(day: date, months: int) -> date:
    """The same day `months` later; the month's last day when it has no such day (31 Aug + 6)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@dataclass(frozen=True)
class DueItem:
    """One thing a course is waiting for: a dose, a review, a follow-on drug."""

    course: Any  # TreatmentCourse (or anything with its attributes)
    what: str
    due_from: date
    due_on: date
    overdue_after: date

    def status(self, today: date) -> str:
        if today > self.overdue_after:
            return OVERDUE
        if today >= self.due_from:
            return DUE
        return UPCOMING

    @property
    def drug(self) -> str:
        return str(self.course.drug)


def _dates(course: Any, kind: str) -> list[date]:
    return [event.event_date for event in course.events if event.kind == kind]


def last_dose(course: Any) -> date:
    """The latest dose of a course; its start is its first dose."""
    started: date = course.started_on
    return max([started, *_dates(course, "dose")])


def needs_follow_on(drug: str) -> bool:
    return drug == DENOSUMAB or drug in ANABOLIC_COURSE_MONTHS


def has_follow_on(course: Any, courses: Iterable[Any]) -> bool:
    """An antiresorptive course of the episode started on or after the day this one stopped."""
    if course.stopped_on is None:
        return False
    return any(
        other is not course
        and other.drug in ANTIRESORPTIVES
        and other.started_on >= course.stopped_on
        for other in courses
    )


def _window(course: Any, what: str, base: date, months: tuple[int, int, int]) -> DueItem:
    early, due, late = months
    return DueItem(
        course, what, add_months(base, early), add_months(base, due), add_months(base, late)
    )


def _stopped_without_follow_on(course: Any) -> DueItem:
    stopped = course.stopped_on
    if course.drug == DENOSUMAB:
        # The follow-on is due when the next injection would have been.
        last = last_dose(course)
        due_on, overdue_after = max(stopped, add_months(last, 6)), max(stopped, add_months(last, 7))
    else:
        due_on, overdue_after = stopped, add_months(stopped, 1)
    return DueItem(
        course, f"{course.drug} stopped without a follow-on drug", stopped, due_on, overdue_after
    )


def course_schedule(course: Any, courses: Sequence[Any]) -> list[DueItem]:
    """What a course waits for, given the episode's other courses (for a follow-on)."""
    drug = course.drug
    if course.stopped_on is not None:
        if not needs_follow_on(drug) or has_follow_on(course, courses):
            return []
        return [_stopped_without_follow_on(course)]
    items: list[DueItem] = []
    if drug in DOSE_MONTHS:
        what = "Denosumab injection" if drug == DENOSUMAB else "Zoledronate infusion"
        items.append(_window(course, what, last_dose(course), DOSE_MONTHS[drug]))
    if drug in REVIEW_MONTHS:
        months = REVIEW_MONTHS[drug]
        base = max([course.started_on, *_dates(course, "review")])
        what = f"Review of {drug.lower()} ({months // 12} years)"
        items.append(_window(course, what, base, (months - 1, months, months + 3)))
    if drug in ANABOLIC_COURSE_MONTHS:
        months = ANABOLIC_COURSE_MONTHS[drug]
        what = f"End of {drug.lower()} course ({months} months): follow-on antiresorptive due"
        items.append(_window(course, what, course.started_on, (months - 1, months, months + 1)))
    return items


def plan_schedule(courses: Sequence[Any]) -> list[DueItem]:
    """Everything an episode's treatment plan waits for, soonest first."""
    items = [item for course in courses for item in course_schedule(course, courses)]
    return sorted(items, key=lambda item: (item.due_on, item.what))


# The worklist ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueRow:
    item: DueItem
    status: str
    episode: Episode
    patient: Patient


def _order(row: DueRow) -> tuple[int, int, date, str]:
    # Denosumab first (a late dose is the most harmful), then overdue before due, soonest first.
    return (
        0 if row.item.drug == DENOSUMAB else 1,
        0 if row.status == OVERDUE else 1,
        row.item.due_on,
        row.patient.nhs_number,
    )


def episode_courses(episode: Episode) -> list[TreatmentCourse]:
    return list(
        db.session.scalars(
            select(TreatmentCourse)
            .where(TreatmentCourse.episode_id == episode.id)
            .options(selectinload(TreatmentCourse.events))
            .order_by(TreatmentCourse.started_on, TreatmentCourse.id)
        )
    )


def treatment_due(service: Service, today: date) -> list[DueRow]:
    """Every dose, review and follow-on due or overdue today across the service's treatment
    plans, whatever the year; deceased patients and deleted episodes never appear."""
    courses = db.session.scalars(
        select(TreatmentCourse)
        .join(Episode, Episode.id == TreatmentCourse.episode_id)
        .join(Patient, Patient.id == Episode.patient_id)
        .where(
            TreatmentCourse.service_id == service.id,
            Episode.deleted_at.is_(None),
            Patient.date_of_death.is_(None),
        )
        .options(
            selectinload(TreatmentCourse.events),
            selectinload(TreatmentCourse.episode).selectinload(Episode.patient),
        )
    ).all()
    by_episode: dict[int, list[TreatmentCourse]] = {}
    for course in courses:
        by_episode.setdefault(course.episode_id, []).append(course)
    rows = []
    for plan in by_episode.values():
        for item in plan_schedule(plan):
            status = item.status(today)
            if status != UPCOMING:
                episode = item.course.episode
                rows.append(DueRow(item, status, episode, episode.patient))
    return sorted(rows, key=_order)
