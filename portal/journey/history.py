"""A record's history, read back from the audit trail, and views of patients' records (which
are themselves audited: security.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from kpis import dataset as ds
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey import contacts, unusual_dates, versions
from portal.journey.forms import FORM_LABELS
from portal.journey.rules import spaced_nhs_number as nhs_number
from portal.journey.rules import uk_date
from portal.models import (
    AuditEvent,
    ContactAttempt,
    Episode,
    Letter,
    Patient,
    Service,
    TreatmentCourse,
    TreatmentEvent,
)


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    who: str
    action: str
    record: str
    field: str
    old: str
    new: str
    # Why, when the change says (a deletion's or a reopening's reason).
    detail: str = ""


# The treatment plan's dates (journey/treatment_saving.py), shown as the dataset's are.
TREATMENT_DATES = ("started_on", "stopped_on", "event_date")


def _shown(name: str, value: Any) -> str:
    """An audited value as people read it (dates day/month/year)."""
    if value is None or value == "":
        return "(empty)"
    if name == "nhs_number":
        return nhs_number(str(value))
    if name in ds.DATE_FIELDS or name in TREATMENT_DATES or name == "made_on":
        try:
            return uk_date(date.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    return str(value)


# Records of the episode besides itself, as the history names them (issue 18).
RECORDS = {
    "episode": "Episode",
    "patient": "Patient",
    "treatment_course": "Treatment plan",
    "treatment_event": "Treatment plan",
    "contact_attempt": "Contact attempt",
    "letter": "Letter",
}
# Names of what the history shows that are not dataset fields.
OTHER_LABELS = {
    unusual_dates.CONFIRMED_KEY: "Unusual date confirmed",
    **FORM_LABELS,
    **contacts.LABELS,
    "kind": "Letter to",
    "recipient": "To",
    "state": "State",
    "body": "Text",
}


def history(episode: Episode) -> list[HistoryLine]:
    """Every change of the episode, of its patient, of its treatment plan, and of its contact
    attempts and letters, newest first: who, when, field, old -> new."""
    courses = select(TreatmentCourse.id).where(TreatmentCourse.episode_id == episode.id)
    doses = select(TreatmentEvent.id).where(TreatmentEvent.course_id.in_(courses))
    attempts = select(ContactAttempt.id).where(ContactAttempt.episode_id == episode.id)
    letters = select(Letter.id).where(Letter.episode_id == episode.id)
    events = db.session.scalars(
        select(AuditEvent)
        .where(
            ((AuditEvent.entity_type == "episode") & (AuditEvent.entity_id == episode.id))
            | ((AuditEvent.entity_type == "patient") & (AuditEvent.entity_id == episode.patient_id))
            | ((AuditEvent.entity_type == "treatment_course") & AuditEvent.entity_id.in_(courses))
            | ((AuditEvent.entity_type == "treatment_event") & AuditEvent.entity_id.in_(doses))
            | (
                (AuditEvent.entity_type == "contact_attempt")
                & AuditEvent.entity_id.in_(attempts.scalar_subquery())
            )
            | (
                (AuditEvent.entity_type == "letter")
                & AuditEvent.entity_id.in_(letters.scalar_subquery())
            )
        )
        .where(AuditEvent.changes.is_not(None))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    lines: list[HistoryLine] = []
    for event in events:
        who = event.user.display_name if event.user is not None else (event.operator or "system")
        record = RECORDS.get(event.entity_type or "", "Episode")
        for name, (old, new) in (event.changes or {}).items():
            if name == versions.VERSION_KEY:
                continue
            lines.append(
                HistoryLine(
                    event.at,
                    who,
                    event.action,
                    record,
                    ds.LABELS.get(name)
                    or OTHER_LABELS.get(name, name.replace("_", " ").capitalize()),
                    _shown(name, old),
                    _shown(name, new),
                    event.detail or "",
                )
            )
    return lines


def record_view(actor: Actor, patient: Patient) -> None:
    """Opening a patient's record is itself audited (security.md)."""
    audit.record(actor, "view", patient)


def record_list_view(actor: Actor, service: Service, what: str, patient_ids: list[int]) -> None:
    """Seeing a list of patients (a worklist page) is a view of each of them (security.md):
    the trail names the list and the patients shown."""
    shown = ", ".join(str(i) for i in dict.fromkeys(patient_ids)) or "none"
    audit.record(
        actor,
        "view_list",
        service_id=service.id,
        entity_type="worklist",
        detail=f"{what}: patients shown {shown}",
    )


def record_search(actor: Actor, service: Service, found: Patient | None) -> None:
    """A search by NHS number, whether or not it found someone (security.md: views of search
    results). The number searched for is not written: the trail names the patient found."""
    if found is not None:
        audit.record(actor, "search", found, detail="NHS number search: found")
    else:
        audit.record(actor, "search", service_id=service.id, detail="NHS number search: not found")
