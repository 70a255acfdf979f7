"""Recording an episode's treatment plan: a drug started (drug, route, start date), each dose and
review with its date, a stop with its reason, and a switch (a stop with a follow-on drug, which
starts the next course). Each save goes through the save engine (journey/saving.py), so it is
idempotent on its submission id and audited with its actor; the schedule that follows from it is
journey/treatment.py's.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from kpis import dataset as ds
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey import saving, versions
from portal.journey.forms import FormData, read_date
from portal.journey.plans import Plan
from portal.journey.rules import ValueProblem, uk_date
from portal.journey.saving import SaveResult
from portal.journey.submissions import PostedSubmission
from portal.journey.treatment import (
    ANTIRESORPTIVES,
    DENOSUMAB,
    episode_courses,
    last_dose,
)
from portal.models import Episode, TreatmentCourse, TreatmentEvent
from portal.models.treatment import ROUTES, STOP_REASONS

# Strontium ranelate, withdrawn in the UK, is never offered for a new course.
OFFERED_DRUGS = tuple(drug for drug in ds.DRUGS if drug not in ds.WITHDRAWN_DRUGS)
SWITCHED = "Switched to another drug"
MAX_NOTE = 1000
LABELS = {
    "drug": "Drug",
    "route": "Route",
    "started_on": "Date started",
    "given_on": "Date of the dose",
    "reviewed_on": "Date of the review",
    "note": "What was decided",
    "stopped_on": "Date stopped",
    "stop_reason": "Reason for stopping",
    "follow_on_drug": "Follow-on drug",
    "follow_on_route": "Route of the follow-on drug",
    "no_follow_on": "Stopping without a follow-on drug",
}
NO_FOLLOW_ON_WARNING = (
    "Stopping denosumab without a follow-on drug risks rebound vertebral fractures. Choose a "
    "follow-on drug, or confirm that it stops without one (it stays on the treatment-due list "
    "until one is recorded)"
)


class _Reading:
    """The values of one posted treatment form and the problems met reading them."""

    def __init__(self, form: FormData, episode: Episode, today: date) -> None:
        self.form, self.episode, self.today = form, episode, today
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def choice(self, name: str, allowed: tuple[str, ...], *, required: bool = True) -> str | None:
        text = (self.form.get(name) or "").strip()
        if not text:
            if required:
                self.errors[name] = f"Choose the {LABELS[name].lower()}"
            return None
        if text not in allowed:
            self.errors[name] = f"{LABELS[name]} must be one of: {', '.join(allowed)}"
            return None
        self.values[name] = text
        return text

    def day(self, name: str, *, not_before: tuple[date, str] | None = None) -> date | None:
        """A required date: not in the future, not after the patient's death, and not before the
        fracture (or `not_before`: (date, what it is))."""
        label = LABELS[name]
        try:
            day = read_date(name, self.form, label)
        except ValueProblem as problem:
            self.errors[name] = str(problem)
            return None
        if day is None:
            self.errors[name] = f"{label} is required"
            return None
        earliest, what = not_before or (
            self.episode.fracture_date,
            "the fracture was diagnosed",
        )
        died = self.episode.patient.date_of_death
        if day > self.today:
            self.errors[name] = f"{label} cannot be in the future (today is {uk_date(self.today)})"
        elif day < earliest:
            self.errors[name] = f"{label} cannot be before {what} ({uk_date(earliest)})"
        elif died is not None and day > died:
            self.errors[name] = (
                f"{label} cannot be after the patient's date of death ({uk_date(died)})"
            )
        else:
            self.values[name] = day
        return day

    def plan(self, record: Any) -> Plan:
        outcome = "refused" if self.errors else "ready"
        return Plan(outcome, values=self.values, errors=self.errors, record=record)


def _new_course(
    actor: Actor, episode: Episode, drug: str, route: str, started_on: date
) -> TreatmentCourse:
    course = TreatmentCourse(
        service_id=episode.service_id,
        episode_id=episode.id,
        drug=drug,
        route=route,
        started_on=started_on,
        created_by_id=actor.user_id,
    )
    versions.record_create(actor, course, ("episode_id", "drug", "route", "started_on"))
    return course


def _save(
    actor: Actor,
    episode: Episode,
    submission: PostedSubmission,
    kind: str,
    plan: Any,
    write: Any,
    outcome_url: str,
) -> SaveResult:
    return saving.save_planned(
        actor,
        submission,
        kind=f"treatment:{kind}",
        plan=plan,
        write=write,
        outcome_url=outcome_url,
        known=episode,
    )


# Starting a drug --------------------------------------------------------------------------------


def plan_start(episode: Episode, form: FormData, today: date) -> Plan:
    reading = _Reading(form, episode, today)
    reading.choice("drug", OFFERED_DRUGS)
    reading.choice("route", ROUTES)
    reading.day("started_on")
    return reading.plan(episode)


def start_course(
    actor: Actor,
    episode: Episode,
    form: FormData,
    submission: PostedSubmission,
    today: date,
    *,
    outcome_url: str,
) -> SaveResult:
    """A drug started for the episode (at 16 weeks, 12 months or later): its schedule follows."""

    def write(plan: Plan) -> TreatmentCourse:
        values = plan.values
        return _new_course(actor, episode, values["drug"], values["route"], values["started_on"])

    return _save(
        actor,
        episode,
        submission,
        "start",
        lambda: plan_start(episode, form, today),
        write,
        outcome_url,
    )


# Doses and reviews ------------------------------------------------------------------------------


def _live_course_day(reading: _Reading, course: TreatmentCourse, name: str) -> None:
    day = reading.day(
        name, not_before=(course.started_on, f"the {course.drug.lower()} was started")
    )
    if day is not None and course.stopped_on is not None and day > course.stopped_on:
        reading.errors[name] = (
            f"{LABELS[name]} cannot be after the course was stopped ({uk_date(course.stopped_on)})"
        )


def plan_dose(course: TreatmentCourse, form: FormData, today: date) -> Plan:
    reading = _Reading(form, course.episode, today)
    _live_course_day(reading, course, "given_on")
    given = reading.values.get("given_on")
    if given is not None and (
        given == course.started_on
        or any(e.kind == "dose" and e.event_date == given for e in course.events)
    ):
        reading.errors["given_on"] = f"A dose on {uk_date(given)} is already recorded"
    return reading.plan(course)


def plan_review(course: TreatmentCourse, form: FormData, today: date) -> Plan:
    reading = _Reading(form, course.episode, today)
    _live_course_day(reading, course, "reviewed_on")
    note = (form.get("note") or "").strip()
    if len(note) > MAX_NOTE:
        reading.errors["note"] = f"{LABELS['note']} must be {MAX_NOTE} characters or fewer"
    reading.values["note"] = note or None
    return reading.plan(course)


def record_event(
    actor: Actor,
    course: TreatmentCourse,
    kind: str,
    form: FormData,
    submission: PostedSubmission,
    today: date,
    *,
    outcome_url: str,
) -> SaveResult:
    """A dose given ("dose") or a review done ("review") on a course, with its date."""

    def plan() -> Plan:
        return (plan_dose if kind == "dose" else plan_review)(course, form, today)

    def write(planned: Plan) -> TreatmentEvent:
        values = planned.values
        event = TreatmentEvent(
            service_id=course.service_id,
            course_id=course.id,
            kind=kind,
            event_date=values["given_on" if kind == "dose" else "reviewed_on"],
            note=values.get("note"),
            created_by_id=actor.user_id,
        )
        db.session.add(event)
        db.session.flush()
        # A dose or review is never edited, so it carries no version: created and audited.
        audit.record(
            actor,
            "create",
            event,
            {f: (None, getattr(event, f)) for f in ("course_id", "kind", "event_date", "note")},
        )
        return event

    return _save(actor, course.episode, submission, kind, plan, write, outcome_url)


# Stopping and switching -------------------------------------------------------------------------


def plan_stop(course: TreatmentCourse, form: FormData, today: date) -> Plan:
    reading = _Reading(form, course.episode, today)
    if course.stopped_on is not None:
        reading.errors["stopped_on"] = (
            f"This course was already stopped on {uk_date(course.stopped_on)}"
        )
        return reading.plan(course)
    reading.day("stopped_on", not_before=(last_dose(course), "the last dose"))
    reason = reading.choice("stop_reason", STOP_REASONS)
    follow_on = reading.choice("follow_on_drug", OFFERED_DRUGS, required=False)
    if follow_on is not None:
        reading.choice("follow_on_route", ROUTES)
    elif reason == SWITCHED:
        reading.errors["follow_on_drug"] = "Choose the drug the patient was switched to"
    confirmed = form.get("no_follow_on") == "yes"
    reading.values["no_follow_on_confirmed"] = False
    stopped = reading.values.get("stopped_on")
    if course.drug == DENOSUMAB and follow_on not in ANTIRESORPTIVES and stopped is not None:
        later = [
            c
            for c in episode_courses(course.episode)
            if c.id != course.id and c.drug in ANTIRESORPTIVES and c.started_on >= stopped
        ]
        if not later and not confirmed:
            reading.errors["no_follow_on"] = NO_FOLLOW_ON_WARNING
        reading.values["no_follow_on_confirmed"] = not later
    return reading.plan(course)


def stop_course(
    actor: Actor,
    course: TreatmentCourse,
    form: FormData,
    submission: PostedSubmission,
    today: date,
    *,
    outcome_url: str,
) -> SaveResult:
    """Stop a course with its reason; with a follow-on drug, a switch: the follow-on course
    starts the day this one stops."""

    def write(plan: Plan) -> TreatmentCourse:
        values = plan.values
        versions.record_update(
            actor,
            course,
            {
                "stopped_on": values["stopped_on"],
                "stop_reason": values["stop_reason"],
                "no_follow_on_confirmed": values["no_follow_on_confirmed"],
            },
            action="stop",
        )
        if values.get("follow_on_drug"):
            follow_on = _new_course(
                actor,
                course.episode,
                values["follow_on_drug"],
                values["follow_on_route"],
                values["stopped_on"],
            )
            versions.record_update(actor, course, {"follow_on_id": follow_on.id}, action="switch")
        return course

    return _save(
        actor,
        course.episode,
        submission,
        "stop",
        lambda: plan_stop(course, form, today),
        write,
        outcome_url,
    )


def needs_confirmation(course: TreatmentCourse) -> bool:
    """Whether stopping this course without a follow-on asks for confirmation (denosumab)."""
    return course.drug == DENOSUMAB
