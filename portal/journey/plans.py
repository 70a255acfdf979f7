"""What a save would do, worked out before anything is written: each field parsed with the
dataset rules, merged with what others saved since the form was rendered (journey/versions.py),
and the record checked as a whole. A plan is ready, refused (with a message per field), a
conflict (fields both sides changed) or existing (the patient or episode is already there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select

from kpis import dataset as ds
from portal.extensions import db
from portal.journey import contacts, unusual_dates, versions
from portal.journey.audit_completion import LOCKED
from portal.journey.forms import (
    NEW_EPISODE_FIELDS,
    NOT_DONE_REASON,
    PATIENT_DETAIL_FIELDS,
    REGISTRATION_FIELDS,
    FormData,
    read_form,
    stage_fields,
)
from portal.journey.rules import check_patient_dates, check_record, uk_date
from portal.models import Episode, Patient, Service

# Fields of the journey's forms that are not dataset fields (their errors are listed last).
FORM_ONLY_FIELDS = (
    "followup16_not_done_reason",
    "followup52_not_done_reason",
    unusual_dates.CONFIRM_FIELD,
)


@dataclass
class Plan:
    """What a save would do: `outcome` is ready, refused, conflict or existing."""

    outcome: str
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    conflicts: list[versions.Conflict] = field(default_factory=list)
    # The record offered instead (existing patient or episode) or the record being saved.
    record: Any = None
    # Unusual dates the save brings (journey/unusual_dates.py): refused until confirmed, then
    # kept in the history with the change.
    warnings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The error summary lists problems in the order the fields appear in the form.
        order = {
            name: index
            for index, name in enumerate(ds.CSV_COLUMNS + ds.DIRECT_CARE_FIELDS + FORM_ONLY_FIELDS)
        }
        self.errors = dict(sorted(self.errors.items(), key=lambda item: order.get(item[0], -1)))


def patient_values(patient: Patient) -> dict[str, Any]:
    return {name: getattr(patient, name) for name in ds.PATIENT_FIELDS}


def episode_values(episode: Episode) -> dict[str, Any]:
    return {name: getattr(episode, name) for name in ds.EPISODE_FIELDS}


def live_episodes(patient: Patient) -> list[Episode]:
    return [episode for episode in patient.episodes if episode.deleted_at is None]


def _with_record_problems(errors: dict[str, str], problems: dict[str, str]) -> dict[str, str]:
    """Value problems first; a rule on the whole record adds a message to the other fields (a
    refused value reads as empty to those rules, so its own message is the one that stands)."""
    return {**problems, **errors}


def _new_problems(
    before: dict[str, str], after: dict[str, str], fields: tuple[str, ...]
) -> dict[str, str]:
    """Problems a save would bring: any on the fields saved, and any new one elsewhere (a problem
    that was already there, on a field of another stage, does not block this stage)."""
    return {
        name: message
        for name, message in after.items()
        if name in fields or before.get(name) != message
    }


def plan_registration(service: Service, form: FormData, today: date) -> Plan:
    """Register a patient with their first fracture episode; an NHS number already in the
    service offers that patient instead."""
    values, errors = read_form(REGISTRATION_FIELDS, form)
    if values.get("nhs_number"):
        existing = db.session.scalar(
            select(Patient).where(
                Patient.service_id == service.id, Patient.nhs_number == values["nhs_number"]
            )
        )
        if existing is not None:
            return Plan("existing", values=values, record=existing)
    errors = _hospital_number_taken(service.id, values.get("hospital_number"), None) | errors
    patient = {name: values.get(name) for name in ds.PATIENT_FIELDS}
    episode = {name: values.get(name) for name in ds.EPISODE_FIELDS}
    errors = _with_record_problems(errors, check_record(patient, episode, today))
    if errors:
        return Plan("refused", values=values, errors=errors)
    return Plan("ready", values=values)


def _hospital_number_taken(
    service_id: int, hospital_number: str | None, patient_id: int | None
) -> dict[str, str]:
    """A hospital number names one patient of a service (dataset.md; a constraint too)."""
    if not hospital_number:
        return {}
    other = db.session.scalar(
        select(Patient.id).where(
            Patient.service_id == service_id,
            Patient.hospital_number == hospital_number,
            Patient.id != (patient_id or 0),
        )
    )
    if other is None:
        return {}
    return {
        "hospital_number": f"Hospital number {hospital_number} is already another patient's "
        "in this service"
    }


def _episode_on(
    patient: Patient, fracture_date: date, other_than: int | None = None
) -> Episode | None:
    return db.session.scalar(
        select(Episode).where(
            Episode.patient_id == patient.id,
            Episode.fracture_date == fracture_date,
            Episode.id != (other_than or 0),
        )
    )


def _deleted_message(fracture_date: date) -> str:
    return (
        f"An episode of this patient for a fracture diagnosed on {uk_date(fracture_date)} was "
        "deleted; an admin can restore it"
    )


def plan_new_episode(patient: Patient, form: FormData, today: date) -> Plan:
    """A new fracture of a known patient; a fracture date that already has an episode offers
    that episode instead of a second one."""
    values, errors = read_form(NEW_EPISODE_FIELDS, form)
    if values.get("fracture_date"):
        existing = _episode_on(patient, values["fracture_date"])
        if existing is not None and existing.deleted_at is None:
            return Plan("existing", values=values, record=existing)
        if existing is not None:
            errors["fracture_date"] = _deleted_message(values["fracture_date"])
    errors = _with_record_problems(errors, check_record(patient_values(patient), values, today))
    if errors:
        return Plan("refused", values=values, errors=errors)
    return Plan("ready", values=values, record=patient)


def plan_stage(
    episode: Episode, stage: str, form: FormData, base_version: int | None, today: date
) -> Plan:
    """Save one stage of an episode: parse, merge with others' changes, check the whole record,
    the rule of a follow-up not done, and the unusual dates the save brings (refused until the
    form confirms them)."""
    fields = stage_fields(stage)
    values, errors = read_form(fields, form)
    if episode.audit_complete_at is not None:  # complete for the audit (audit_completion.py)
        return Plan("refused", values=values, errors={"submission_id": LOCKED}, record=episode)
    merged, conflicts = versions.merge(episode, values, base_version)
    if conflicts and not errors:
        return Plan("conflict", values=merged, conflicts=conflicts, record=episode)
    patient = patient_values(episode.patient)
    before = episode_values(episode)
    after = {**before, **merged}
    problems = check_record(patient, after, today, changed=fields)
    if problems:  # which of them the save brings: the record as it was is checked only then
        problems = _new_problems(
            check_record(patient, before, today, changed=fields), problems, fields
        )
    problems |= errors
    new_date = merged.get("fracture_date")
    if new_date and not versions.same(new_date, episode.fracture_date):
        clash = _episode_on(episode.patient, new_date, other_than=episode.id)
        if clash is not None:
            problems.setdefault(
                "fracture_date",
                _deleted_message(new_date)
                if clash.deleted_at is not None
                else f"This patient already has an episode for a fracture diagnosed on {uk_date(new_date)}",
            )
    if stage in NOT_DONE_REASON:
        problems = (
            contacts.not_done_problems(
                episode, stage, after, today, episode.service.attempts_before_lost
            )
            | problems
        )
    if problems:
        return Plan("refused", values=merged, errors=problems, record=episode)
    unusual = unusual_dates.brought(before, after)
    if not set(unusual) <= unusual_dates.confirmed(form.get(unusual_dates.CONFIRM_FIELD)):
        return Plan(
            "refused",
            values=merged,
            errors={unusual_dates.CONFIRM_FIELD: UNUSUAL_DATES_MESSAGE},
            record=episode,
            warnings=unusual,
        )
    return Plan("ready", values=merged, record=episode, warnings=unusual)


UNUSUAL_DATES_MESSAGE = "Check the unusual dates and confirm them to save"


def plan_patient(patient: Patient, form: FormData, base_version: int | None, today: date) -> Plan:
    """Correct a patient's details (date of death included), checked against every episode."""
    values, errors = read_form(PATIENT_DETAIL_FIELDS, form)
    merged, conflicts = versions.merge(patient, values, base_version)
    if conflicts and not errors:
        return Plan("conflict", values=merged, conflicts=conflicts, record=patient)
    episodes = [episode_values(e) for e in live_episodes(patient)]
    before = patient_values(patient)
    problems = (
        _new_problems(
            check_patient_dates(before, episodes, today),
            check_patient_dates({**before, **merged}, episodes, today),
            PATIENT_DETAIL_FIELDS,
        )
        | _hospital_number_taken(patient.service_id, merged.get("hospital_number"), patient.id)
        | errors
    )
    if problems:
        return Plan("refused", values=merged, errors=problems, record=patient)
    return Plan("ready", values=merged, record=patient)
