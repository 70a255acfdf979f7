"""The patient journey: register a patient, add a fracture episode, save each stage, correct,
delete and restore, and read a record's history.

Every save is planned first (parse each field with the dataset rules, merge with what others saved
since the form was rendered, check the record as a whole) and written only when the plan is ready,
so a refused save writes nothing and the caller can keep the submission before writing
(spec/offline.md). Forms reach this module as a mapping of posted names to values (a werkzeug
MultiDict or anything with `get` and `getlist`): no Flask request here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from kpis import dataset as ds
from portal.audit import events as audit
from portal.extensions import db
from portal.journey import versions
from portal.journey.rules import (
    ValueProblem,
    check_patient_dates,
    check_record,
    format_value,
    parse_value,
    uk_date,
)
from portal.models import AuditEvent, Episode, Patient, Service

REGISTRATION_FIELDS = ("nhs_number", "date_of_birth", "sex", "postcode", "care_home_resident") + (
    ds.STAGES["identification"]
)
PATIENT_DETAIL_FIELDS = ("date_of_birth", "sex", "postcode", "care_home_resident", "date_of_death")
NEW_EPISODE_FIELDS = ds.STAGES["identification"]
DATE_PARTS = ("day", "month", "year")

# Fields that apply only given another answer of the same stage: the form hides them otherwise,
# and a value left in a hidden field is discarded rather than refused (the user cannot see it).
APPLIES_WHEN = {
    "dxa_not_recommended_reason": ("dxa_status", "Not recommended"),
    "dxa_date": ("dxa_status", "Recommended"),
    "t_score": ("dxa_status", "Recommended"),
    "followup16_date": ("followup16_done", "Yes"),
    "followup52_date": ("followup52_done", "Yes"),
}

# Conflict views post each candidate under these prefixes and the user's pick under CHOOSE.
YOURS, THEIRS, CHOOSE = "yours::", "theirs::", "choose::"


class FormData(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


@dataclass
class Plan:
    """What a save would do: `outcome` is ready, refused, conflict or existing."""

    outcome: str
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    conflicts: list[versions.Conflict] = field(default_factory=list)
    # The record offered instead (existing patient or episode) or the record being saved.
    record: Any = None

    def __post_init__(self) -> None:
        # The error summary lists problems in the order the fields appear in the form.
        order = {name: index for index, name in enumerate(ds.CSV_COLUMNS)}
        self.errors = dict(sorted(self.errors.items(), key=lambda item: order.get(item[0], -1)))


# Reading forms ---------------------------------------------------------------------------------


def field_of(input_name: str) -> str:
    """The dataset field a posted input belongs to (a date comes as field-day/-month/-year)."""
    base, _, part = input_name.rpartition("-")
    return base if base and part in DATE_PARTS else input_name


def _date_text(name: str, form: FormData) -> str:
    """The day, month and year inputs of a date joined as D/M/YYYY for the dataset parser."""
    label = ds.LABELS[name]
    parts = {part: (form.get(f"{name}-{part}") or "").strip() for part in DATE_PARTS}
    if not any(parts.values()):
        return ""
    missing = [part for part in DATE_PARTS if not parts[part]]
    if missing:
        raise ValueProblem(f"{label} must include a {' and a '.join(missing)}")
    if not all(value.isdigit() for value in parts.values()):
        raise ValueProblem(f"{label} must be a real date written in numbers, like 12 3 2024")
    if len(parts["year"]) != 4:
        raise ValueProblem(f"{label} must have a four-digit year, like 2024")
    return f"{parts['day']}/{parts['month']}/{parts['year']}"


def read_form(fields: tuple[str, ...], form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse the posted inputs of some fields: (values, {field: message} of those refused)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in fields:
        try:
            if name in ds.DATE_FIELDS:
                text = _date_text(name, form)
            elif name in ds.MULTI_VALUE_FIELDS:
                text = ";".join(v.strip() for v in form.getlist(name) if v and v.strip())
            else:
                text = form.get(name) or ""
            values[name] = parse_value(name, text)
        except ValueProblem as problem:
            errors[name] = str(problem)
    for name, (controller, answer) in APPLIES_WHEN.items():
        if name in values and controller in values and values[controller] != answer:
            values[name] = None
    return values, errors


def form_inputs(fields: tuple[str, ...], values: dict[str, Any] | Any) -> MultiDict:
    """The inputs a form shows for stored values (a record or a dict), as the browser posts them."""
    inputs: MultiDict = MultiDict()
    for name in fields:
        value = values.get(name) if isinstance(values, dict) else getattr(values, name)
        inputs.setlist(name, [])
        if value is None:
            continue
        if name in ds.DATE_FIELDS:
            inputs.add(f"{name}-day", str(value.day))
            inputs.add(f"{name}-month", str(value.month))
            inputs.add(f"{name}-year", str(value.year))
        elif name in ds.MULTI_VALUE_FIELDS:
            inputs.setlist(name, [part for part in str(value).split(";") if part])
        else:
            inputs.add(name, format_value(name, value))
    return inputs


def resolve_conflict_form(form: FormData) -> MultiDict:
    """The form a conflict view posts, with each field taken from the side the user picked.

    A field with no pick keeps the stored value ("theirs"): nothing is overwritten silently.
    """
    resolved: MultiDict = MultiDict()
    picks: dict[str, str] = {}
    for name, value in form.items(multi=True):  # type: ignore[attr-defined]
        if name.startswith(CHOOSE):
            picks[name[len(CHOOSE) :]] = YOURS if value == "yours" else THEIRS
    for name, value in form.items(multi=True):  # type: ignore[attr-defined]
        if name.startswith(CHOOSE):
            continue
        for prefix in (YOURS, THEIRS):
            if name.startswith(prefix):
                inner = name[len(prefix) :]
                if picks.get(field_of(inner), THEIRS) == prefix:
                    resolved.add(inner, value)
                break
        else:
            resolved.add(name, value)
    return resolved


def conflict_inputs(fields: tuple[str, ...], plan: Plan) -> MultiDict:
    """Hidden inputs of a conflict view: merged values, and both candidates of each conflict."""
    conflicting = {conflict.field: conflict for conflict in plan.conflicts}
    inputs = form_inputs(tuple(name for name in fields if name not in conflicting), plan.values)
    for name, conflict in conflicting.items():
        for prefix, value in ((YOURS, conflict.yours), (THEIRS, conflict.theirs)):
            for inner, text in form_inputs((name,), {name: value}).items(multi=True):
                inputs.add(prefix + inner, text)
    return inputs


def parse_version(raw: Any) -> int | None:
    """The record version a form was rendered from, or None when it carries none."""
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        return None


# Records as the dataset rules read them ------------------------------------------------------


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


# Plans -----------------------------------------------------------------------------------------


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
    patient = {name: values.get(name) for name in ds.PATIENT_FIELDS}
    episode = {name: values.get(name) for name in ds.EPISODE_FIELDS}
    errors = _with_record_problems(errors, check_record(patient, episode, today))
    if errors:
        return Plan("refused", values=values, errors=errors)
    return Plan("ready", values=values)


def register(service: Service, plan: Plan, user: Any) -> tuple[Patient, Episode]:
    """Write a ready registration plan: the patient and their first episode, both audited."""
    patient = Patient(service_id=service.id, **{n: plan.values.get(n) for n in ds.PATIENT_FIELDS})
    versions.record_create(patient, ds.PATIENT_FIELDS)
    episode = Episode(
        service_id=service.id,
        patient_id=patient.id,
        created_by_id=user.id,
        **{n: plan.values.get(n) for n in ds.STAGES["identification"]},
    )
    versions.record_create(episode, ds.STAGES["identification"])
    return patient, episode


def _episode_on(patient: Patient, fracture_date: date, other_than: int | None = None):
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


def add_episode(patient: Patient, plan: Plan, user: Any) -> Episode:
    """Write a ready new-episode plan, linked to the patient's latest earlier episode."""
    fracture_date = plan.values["fracture_date"]
    earlier = [e for e in live_episodes(patient) if e.fracture_date < fracture_date]
    episode = Episode(
        service_id=patient.service_id,
        patient_id=patient.id,
        created_by_id=user.id,
        previous_episode_id=earlier[-1].id if earlier else None,
        **plan.values,
    )
    versions.record_create(episode, ds.STAGES["identification"] + ("previous_episode_id",))
    return episode


def plan_stage(
    episode: Episode, stage: str, form: FormData, base_version: int | None, today: date
) -> Plan:
    """Save one stage of an episode: parse, merge with others' changes, check the whole record."""
    fields = ds.STAGES[stage]
    values, errors = read_form(fields, form)
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
    if problems:
        return Plan("refused", values=merged, errors=problems, record=episode)
    return Plan("ready", values=merged, record=episode)


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
        | errors
    )
    if problems:
        return Plan("refused", values=merged, errors=problems, record=patient)
    return Plan("ready", values=merged, record=patient)


def apply(plan: Plan) -> dict[str, tuple[Any, Any]]:
    """Write a ready plan of a stage or patient save: changed fields only, audited with versions."""
    return versions.record_update(plan.record, plan.values)


# Delete and restore ----------------------------------------------------------------------------


class DeleteRefused(ValueError):
    """Deleting was refused: `field` names the form field the message belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def delete_episode(episode: Episode, reason: str, confirmed: bool, user: Any) -> None:
    """Soft-delete an episode (lead): hidden from every list, KPI and export; an admin can restore it."""
    reason = (reason or "").strip()
    if not reason:
        raise DeleteRefused("reason", "Enter the reason for deleting this episode")
    if len(reason) > 1000:
        raise DeleteRefused("reason", "The reason must be 1000 characters or fewer")
    if not confirmed:
        raise DeleteRefused("confirm", "Confirm that you want to delete this episode")
    versions.record_update(
        episode,
        {"deleted_at": datetime.utcnow(), "deleted_by_id": user.id, "deleted_reason": reason},
        action="delete",
        detail=reason,
    )


def restore_episode(episode: Episode) -> None:
    """Undo a soft delete (admin of the episode's service)."""
    versions.record_update(
        episode,
        {"deleted_at": None, "deleted_by_id": None, "deleted_reason": None},
        action="restore",
    )


def deleted_episodes(service: Service) -> list[Episode]:
    """The deleted episodes of a service, the most recently deleted first."""
    return list(
        db.session.scalars(
            select(Episode)
            .where(Episode.service_id == service.id, Episode.deleted_at.is_not(None))
            .order_by(Episode.deleted_at.desc())
        )
    )


# History ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    who: str
    action: str
    record: str
    field: str
    old: str
    new: str


def _shown(name: str, value: Any) -> str:
    """An audited value as people read it (dates day/month/year)."""
    if value is None or value == "":
        return "(empty)"
    if name in ds.DATE_FIELDS:
        try:
            return uk_date(date.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    return str(value)


def history(episode: Episode) -> list[HistoryLine]:
    """Every change of the episode and of its patient, newest first: who, when, field, old -> new."""
    events = db.session.scalars(
        select(AuditEvent)
        .where(
            ((AuditEvent.entity_type == "episode") & (AuditEvent.entity_id == episode.id))
            | ((AuditEvent.entity_type == "patient") & (AuditEvent.entity_id == episode.patient_id))
        )
        .where(AuditEvent.changes.is_not(None))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    lines: list[HistoryLine] = []
    for event in events:
        who = event.user.display_name if event.user is not None else "system"
        record = "Patient" if event.entity_type == "patient" else "Episode"
        for name, (old, new) in (event.changes or {}).items():
            if name == versions.VERSION_KEY:
                continue
            lines.append(
                HistoryLine(
                    event.at,
                    who,
                    event.action,
                    record,
                    ds.LABELS.get(name, name.replace("_", " ").capitalize()),
                    _shown(name, old),
                    _shown(name, new),
                )
            )
    return lines


def record_view(patient: Patient) -> None:
    """Opening a patient's record is itself audited (security.md)."""
    audit.record("view", patient)
