"""Letters to the GP and to the patient after an FLS assessment (issue 18; ROS clinical standards
"Inform" and "Integrate"): made from what was recorded, editable while a draft, kept unchanged
once final, printable on A4 and downloadable as a PDF made on the server (WeasyPrint).

The service's letterhead, address, telephone and signature block are plain text with named
placeholders ({service_name}), filled in with `string.Template` safely: no template language, no
attribute lookups, and an unknown placeholder is left as typed. The wording of each letter is in
journey/letter_text.py.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select

from portal import clock, pdf
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey import letter_text
from portal.journey.rules import spaced_nhs_number
from portal.models import Episode, Letter, Service

DEFAULT_HEADING = "{service_name}"
DEFAULT_SIGNATURE = "{clinician_name}\nFracture Liaison Service\n{service_name}"
PLACEHOLDERS = (
    "service_name",
    "service_code",
    "service_address",
    "service_telephone",
    "clinician_name",
    "today",
)
SETTINGS = ("letter_heading", "letter_address", "letter_telephone", "letter_signature")
SETTING_LABELS = {
    "letter_heading": "Letterhead",
    "letter_address": "Address",
    "letter_telephone": "Telephone",
    "letter_signature": "Signature block",
    "attempts_before_lost": "Unanswered contact attempts before lost to follow-up",
}
SETTING_LENGTHS = {
    "letter_heading": 500,
    "letter_address": 500,
    "letter_telephone": 100,
    "letter_signature": 500,
}
BODY_LENGTH = 20000
RECIPIENT_LENGTH = 500
KIND_TITLES = {"gp": "Letter to the GP", "patient": "Letter to the patient"}


class Placeholders(string.Template):
    """`{name}` placeholders, filled in by safe_substitute: a name only, never an expression."""

    delimiter = "{"
    # A string the class compiles when defined (string.Template's documented way to change the
    # placeholder syntax); typeshed types the compiled attribute.
    pattern = r"""
        \{(?:
          (?P<escaped>\{) |
          (?P<named>[a-z_]+)\} |
          (?P<braced>(?!)) |
          (?P<invalid>)
        )
    """  # type: ignore[assignment]


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class LetterRefused(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def fill(text: str, values: Mapping[str, str]) -> str:
    """A setting's text with its placeholders filled in; unknown ones stay as typed."""
    return Placeholders(text).safe_substitute(values)


def unknown_placeholders(text: str) -> list[str]:
    return [name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS]


def _long_date(day: date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def _placeholder_values(service: Service, clinician_name: str, today: date) -> dict[str, str]:
    return {
        "service_name": service.name,
        "service_code": service.code,
        "service_address": service.letter_address or "",
        "service_telephone": service.letter_telephone or "",
        "clinician_name": clinician_name,
        "today": _long_date(today),
    }


def heading_of(service: Service, clinician_name: str, today: date) -> str:
    """The letterhead, address and telephone as the top of a letter shows them."""
    values = _placeholder_values(service, clinician_name, today)
    parts = [fill(service.letter_heading or DEFAULT_HEADING, values)]
    if service.letter_address:
        parts.append(fill(service.letter_address, values))
    if service.letter_telephone:
        parts.append("Telephone: " + fill(service.letter_telephone, values))
    return "\n".join(part.strip() for part in parts if part.strip())


def signature_of(service: Service, clinician_name: str, today: date) -> str:
    values = _placeholder_values(service, clinician_name, today)
    return fill(service.letter_signature or DEFAULT_SIGNATURE, values).strip()


def letters_of(episode: Episode) -> list[Letter]:
    """The episode's letters, newest first."""
    return list(
        db.session.scalars(
            select(Letter)
            .where(Letter.episode_id == episode.id)
            .order_by(Letter.created_at.desc(), Letter.id.desc())
        )
    )


def _recipient(episode: Episode, kind: str) -> str:
    patient = episode.patient
    if kind == "gp":
        practice = patient.gp_practice or "The patient's GP practice"
        return f"The GP\n{practice}" + (
            f" ({patient.gp_practice_code})" if patient.gp_practice_code else ""
        )
    return patient.name or "The patient"


def create_letter(
    actor: Actor, episode: Episode, kind: str, clinician_name: str, today: date
) -> Letter:
    """A draft letter made from the episode's record."""
    if kind not in KIND_TITLES:
        raise LetterRefused({"kind": "Choose a GP letter or a patient letter"})
    service = episode.service
    body = (
        letter_text.gp_letter(episode, service)
        if kind == "gp"
        else letter_text.patient_letter(episode, service)
    )
    letter = Letter(
        service_id=episode.service_id,
        episode_id=episode.id,
        kind=kind,
        state="draft",
        recipient=_recipient(episode, kind),
        heading=heading_of(service, clinician_name, today),
        body=body,
        signature=signature_of(service, clinician_name, today),
        created_by_id=actor.user_id,
    )
    db.session.add(letter)
    db.session.flush()
    audit.record(
        actor,
        "create",
        letter,
        {"kind": (None, kind), "recipient": (None, letter.recipient), "state": (None, "draft")},
        detail=f"{KIND_TITLES[kind].lower()}, episode {episode.id}",
    )
    return letter


def save_draft(actor: Actor, letter: Letter, recipient: str, body: str) -> dict[str, Any]:
    """Change a draft's recipient and text; a final letter is never changed."""
    if letter.state == "final":
        raise LetterRefused({"body": "This letter is final: it cannot be changed"})
    recipient, body = recipient.strip(), body.replace("\r\n", "\n").strip()
    errors = {}
    if not recipient:
        errors["recipient"] = "Say who the letter goes to"
    elif len(recipient) > RECIPIENT_LENGTH:
        errors["recipient"] = (
            f"Who the letter goes to must be {RECIPIENT_LENGTH} characters or fewer"
        )
    if not body:
        errors["body"] = "The letter needs its text"
    elif len(body) > BODY_LENGTH:
        errors["body"] = f"The letter must be {BODY_LENGTH} characters or fewer"
    if errors:
        raise LetterRefused(errors)
    changes = audit.apply_changes(letter, {"recipient": recipient, "body": body})
    if changes:
        db.session.flush()
        audit.record(actor, "update", letter, changes, detail=f"episode {letter.episode_id}")
    return changes


def make_final(actor: Actor, letter: Letter) -> None:
    """Make a draft final: from now on it is kept unchanged."""
    if letter.state == "final":
        return
    changes = audit.apply_changes(
        letter,
        {"state": "final", "finalised_by_id": actor.user_id, "finalised_at": clock.utcnow()},
    )
    db.session.flush()
    audit.record(
        actor,
        "update",
        letter,
        {name: changes[name] for name in ("state",)},
        detail=f"{KIND_TITLES[letter.kind].lower()} made final, to {letter.recipient.splitlines()[0]}",
    )


def record_download(actor: Actor, letter: Letter, how: str, *, action: str = "export") -> None:
    """Downloading a letter is an export of patient data; opening a final one to print it, a
    view."""
    audit.record(actor, action, letter, detail=f"{KIND_TITLES[letter.kind].lower()} as {how}")


def update_settings(actor: Actor, service: Service, form: Mapping[str, str]) -> dict[str, Any]:
    """A lead changes the service's letterhead, address, telephone, signature block and the
    number of unanswered attempts before a patient is lost to follow-up."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in SETTINGS:
        text = (form.get(name) or "").replace("\r\n", "\n").strip()
        if len(text) > SETTING_LENGTHS[name]:
            errors[name] = (
                f"{SETTING_LABELS[name]} must be {SETTING_LENGTHS[name]} characters or fewer"
            )
        unknown = unknown_placeholders(text)
        if unknown:
            errors[name] = (
                f"{SETTING_LABELS[name]} has a placeholder the portal does not know: "
                f"{{{unknown[0]}}}. Use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
        values[name] = text or None
    raw = (form.get("attempts_before_lost") or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 10:
        errors["attempts_before_lost"] = (
            f"{SETTING_LABELS['attempts_before_lost']} must be a whole number from 1 to 10"
        )
    else:
        values["attempts_before_lost"] = int(raw)
    if errors:
        raise LetterRefused(errors)
    changes = audit.apply_changes(service, values)
    if changes:
        db.session.flush()
        audit.record(actor, "update", service, changes, detail="letters and contact settings")
    return changes


def placeholder_help() -> str:
    return ", ".join("{" + name + "}" for name in PLACEHOLDERS)


def patient_line(episode: Episode) -> str:
    """Who a letter is about, as its first line says."""
    patient = episode.patient
    parts = [patient.name or "The patient", f"date of birth {_long_date(patient.date_of_birth)}"]
    parts.append(f"NHS number {spaced_nhs_number(patient.nhs_number)}")
    if patient.hospital_number:
        parts.append(f"hospital number {patient.hospital_number}")
    return ", ".join(parts)


def pdf_of(html: str) -> bytes:
    """A letter's page as PDF, made on the server (portal.pdf: no request leaves the server; the
    page carries its own styles and no images)."""
    return pdf.pdf_of(html)
