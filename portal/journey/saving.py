"""The save engine: registering a patient, adding a fracture, saving a stage or a patient's
details, each one service call that says what happened (spec/offline.md).

A save is planned first (journey/plans.py) and written only when the plan is ready, so a refused
save writes nothing. It is idempotent on its submission id: the submission is kept (inserted)
before anything else is written, so a copy of a submission already saved, or two copies racing
each other, meet the unique constraint first; the copy is rolled back and answers the first
outcome. A save about to be refused looks its submission up first, so a replay is never refused
for the effect of its own first save. A save that lost a race on the record's version is planned
once more (merging what the other save wrote).

Operations flush; the request (or command) commits. After a rollback the ORM reads its records
again, so the second attempt plans on what the winner wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from kpis import dataset as ds
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey import contacts, plans, submissions, unusual_dates, versions
from portal.journey.forms import FormData
from portal.journey.plans import Plan
from portal.journey.submissions import PostedSubmission
from portal.journey.versions import Conflict
from portal.models import Episode, Patient, Service

SAVED, REFUSED, CONFLICT, EXISTING, REPLAYED = (
    "saved",
    "refused",
    "conflict",
    "existing",
    "replayed",
)


@dataclass
class SaveResult:
    """What a save did.

    - saved: `record` holds what was written; `outcome_url` is where it shows.
    - refused: `errors` holds a message per field (nothing written).
    - conflict: `conflicts` holds each field both sides changed, `values` the merged rest.
    - existing: `record` is the patient or episode already there, offered instead.
    - replayed: the submission was saved before; `status_code` and `outcome_url` are its answer.
    """

    outcome: str
    record: Any = None
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    status_code: int = 200
    outcome_url: str | None = None
    warnings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_plan(cls, plan: Plan) -> SaveResult:
        return cls(
            plan.outcome,
            record=plan.record,
            values=plan.values,
            errors=plan.errors,
            conflicts=plan.conflicts,
            warnings=plan.warnings,
        )


def register_patient(
    actor: Actor,
    service: Service,
    form: FormData,
    submission: PostedSubmission,
    today: date,
    *,
    outcome_url: Callable[[Episode], str],
) -> SaveResult:
    """Register a patient with their first fracture episode; an NHS number already in the
    service offers that patient instead (`existing`)."""

    def write(plan: Plan) -> Episode:
        fields = ds.PATIENT_FIELDS + ds.DIRECT_CARE_FIELDS
        patient = Patient(service_id=service.id, **{n: plan.values.get(n) for n in fields})
        versions.record_create(actor, patient, fields)
        episode = Episode(
            service_id=service.id,
            patient_id=patient.id,
            created_by_id=actor.user_id,
            **{n: plan.values.get(n) for n in ds.STAGES["identification"]},
        )
        versions.record_create(actor, episode, ds.STAGES["identification"])
        return episode

    return _save(
        actor,
        submission,
        kind="registration",
        plan=lambda: plans.plan_registration(service, form, today),
        write=write,
        outcome_url=outcome_url,
    )


def add_episode(
    actor: Actor,
    patient: Patient,
    form: FormData,
    submission: PostedSubmission,
    today: date,
    *,
    outcome_url: Callable[[Episode], str],
) -> SaveResult:
    """A new fracture of a known patient, linked to their latest earlier episode as a
    refracture; a fracture date that already has an episode offers it instead (`existing`)."""

    def write(plan: Plan) -> Episode:
        fracture_date = plan.values["fracture_date"]
        earlier = [e for e in plans.live_episodes(patient) if e.fracture_date < fracture_date]
        episode = Episode(
            service_id=patient.service_id,
            patient_id=patient.id,
            created_by_id=actor.user_id,
            previous_episode_id=earlier[-1].id if earlier else None,
            # A refracture starts with "previous fracture: Yes" (issue 19).
            previous_fracture="Yes" if earlier else None,
            **plan.values,
        )
        versions.record_create(
            actor,
            episode,
            ds.STAGES["identification"] + ("previous_episode_id", "previous_fracture"),
        )
        return episode

    return _save(
        actor,
        submission,
        kind="new_episode",
        plan=lambda: plans.plan_new_episode(patient, form, today),
        write=write,
        outcome_url=outcome_url,
    )


def save_stage(
    actor: Actor,
    episode: Episode,
    stage: str,
    form: FormData,
    submission: PostedSubmission,
    base_version: int | None,
    today: date,
    *,
    outcome_url: str,
) -> SaveResult:
    """Save one stage of an episode from the form rendered at `base_version`."""
    return _save(
        actor,
        submission,
        kind=f"stage:{stage}",
        plan=lambda: plans.plan_stage(episode, stage, form, base_version, today),
        write=lambda plan: _write_update(actor, plan),
        outcome_url=lambda _record: outcome_url,
        known=episode,
    )


def save_patient(
    actor: Actor,
    patient: Patient,
    form: FormData,
    submission: PostedSubmission,
    base_version: int | None,
    today: date,
    *,
    outcome_url: str,
) -> SaveResult:
    """Correct a patient's details (date of death included) from the form rendered at
    `base_version`, checked against every episode of the patient."""
    return _save(
        actor,
        submission,
        kind="patient",
        plan=lambda: plans.plan_patient(patient, form, base_version, today),
        write=lambda plan: _write_update(actor, plan),
        outcome_url=lambda _record: outcome_url,
        known=patient,
    )


def save_planned(
    actor: Actor,
    submission: PostedSubmission,
    *,
    kind: str,
    plan: Callable[[], Plan],
    write: Callable[[Plan], Any],
    outcome_url: str,
    known: Any,
) -> SaveResult:
    """A save of another of an episode's records (its treatment plan, journey/treatment_saving.py)
    through the same engine: planned, kept on its submission id, written, or answered again."""
    return _save(
        actor,
        submission,
        kind=kind,
        plan=plan,
        write=write,
        outcome_url=lambda _record: outcome_url,
        known=known,
    )


def record_contact_attempt(
    actor: Actor,
    episode: Episode,
    form: FormData,
    submission: PostedSubmission,
    today: date,
    *,
    outcome_url: str,
) -> SaveResult:
    """Record an attempt to reach the patient about an episode (journey/contacts.py)."""

    def plan() -> Plan:
        values, errors = contacts.read_attempt(episode, form, today)
        if errors:
            return Plan("refused", values=values, errors=errors, record=episode)
        return Plan("ready", values=values, record=episode)

    return _save(
        actor,
        submission,
        kind="contact_attempt",
        plan=plan,
        write=lambda planned: contacts.write_attempt(actor, episode, planned.values),
        outcome_url=lambda _record: outcome_url,
        known=episode,
    )


def _write_update(actor: Actor, plan: Plan) -> Any:
    # Unusual dates the nurse confirmed are kept with the change they came with.
    noted = (
        {unusual_dates.CONFIRMED_KEY: (None, "; ".join(plan.warnings.values()))}
        if plan.warnings
        else None
    )
    versions.record_update(actor, plan.record, plan.values, noted=noted)
    return plan.record


def _save(
    actor: Actor,
    submission: PostedSubmission,
    *,
    kind: str,
    plan: Callable[[], Plan],
    write: Callable[[Plan], Any],
    outcome_url: Callable[[Any], str],
    known: Any = None,
) -> SaveResult:
    """Plan, keep the submission, write; or answer the submission's first outcome.

    `known` is the record a save updates (None when the save creates one): its submission is
    kept with it at once; a created record is pointed at once written.
    """
    for attempt in (1, 2):
        if attempt == 2:
            earlier = _earlier_answer(actor, submission, plan)
            if earlier is not None:
                return earlier
        planned = plan()
        if planned.outcome != "ready":
            earlier = _earlier_answer(actor, submission, plan, planned)
            return earlier if earlier is not None else SaveResult.of_plan(planned)
        try:
            url = outcome_url(known) if known is not None else None
            kept = submissions.remember(actor, submission, kind=kind, entity=known, outcome_url=url)
            record = write(planned)
            if known is None:
                url = outcome_url(record)
                submissions.point_at(actor, kept, record, url)
            db.session.flush()
        except (IntegrityError, StaleDataError):
            db.session.rollback()
            if attempt == 2:
                raise
            continue
        return SaveResult(SAVED, record=record, values=planned.values, outcome_url=url)
    raise AssertionError("unreachable")  # pragma: no cover


def _earlier_answer(
    actor: Actor,
    submission: PostedSubmission,
    plan: Callable[[], Plan],
    planned: Plan | None = None,
) -> SaveResult | None:
    """The answer to a submission already kept: its first outcome, or a refusal (of the plan
    made, or made now) when the id was kept for other content. None when it was never saved."""
    try:
        earlier = submissions.first_outcome(actor, submission)
    except submissions.SubmissionReused as error:
        refused = SaveResult.of_plan(planned if planned is not None else plan())
        refused.outcome = REFUSED
        refused.errors = {"submission_id": str(error), **refused.errors}
        return refused
    if earlier is None:
        return None
    return SaveResult(REPLAYED, status_code=earlier.status_code, outcome_url=earlier.outcome_url)
