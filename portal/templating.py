"""Template helpers: the current service, field labels and specs, date formats, hidden form
state and status tags. Registered as Jinja globals and filters while the app is set up."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from kpis import dataset as ds
from portal import clock, policy
from portal.access import current_service
from portal.journey import contacts, fields
from portal.journey.forms import FORM_LABELS
from portal.journey.rules import format_value, spaced_nhs_number
from portal.models.contacts import CONTACT_METHODS, CONTACT_OUTCOMES


def field_label(name: str) -> str:
    return ds.LABELS.get(name, name.replace("_", " ").capitalize())


def described_by(name: str, hint: str, error: str | None) -> Markup:
    """The aria-describedby attribute of a field's control: its hint and its error, if any."""
    ids = ([f"{name}-hint"] if hint else []) + ([f"{name}-error"] if error else [])
    return Markup(' aria-describedby="{}"').format(" ".join(ids)) if ids else Markup()


def new_submission_id() -> str:
    """A fresh id for every rendered form (spec/offline.md)."""
    return str(uuid.uuid4())


def hidden_state(version: int | None) -> Markup:
    """The hidden inputs every save form posts: the CSRF token, a fresh submission id (offline.md)
    and the version the form shows (none for a new record)."""
    return Markup(
        '<input type="hidden" name="csrf_token" value="{}">\n'
        '<input type="hidden" name="submission_id" value="{}">\n'
        '<input type="hidden" name="version" value="{}">\n'
    ).format(generate_csrf(), new_submission_id(), "" if version is None else version)


def status_tag(status: str) -> Markup:
    """A stage's status as a tag (not started, in progress, complete)."""
    return Markup('<strong class="portal-status portal-status--{}">{}</strong>\n').format(
        status.replace(" ", "-"), status.capitalize()
    )


def error_link(item: tuple[str, str], prefix: str) -> tuple[str, str]:
    """(link target, message) of a form error for the error summary."""
    name, message = item
    return (fields.anchor(name) if name != "submission_id" else f"{prefix}-save", message)


def shown(value: Any, name: str) -> str:
    """A stored value as people read it."""
    if value is None or value == "":
        return "Not answered"
    if name in ds.DATE_FIELDS:
        return uk_date(value)
    if name in ds.MULTI_VALUE_FIELDS:
        return ", ".join(part for part in str(value).split(";") if part)
    return format_value(name, value)


def uk_date(value: date | datetime | None) -> str:
    """Dates as NHS staff read them: 12 March 2024."""
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%B %Y')}"


def uk_datetime(value: datetime | None) -> str:
    """A stored moment (UTC, without a zone) as the clock on the ward showed it: 12 March 2024,
    14:05 in Europe/London, summer time included."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(clock.LONDON)
    return f"{local.day} {local.strftime('%B %Y, %H:%M')}"


# Fields of records outside the dataset that the audit trail shows (accounts, services, versions).
_AUDIT_LABELS = {
    "_version": "Version of the record",
    "active": "Active",
    "email": "Email",
    "display_name": "Name",
    "role": "Role",
    "code": "Service code",
    "name": "Name",
}


def audit_field_label(name: str) -> str:
    """A changed field's label as its form shows it (issue 22)."""
    return (
        ds.LABELS.get(name)
        or FORM_LABELS.get(name)
        or _AUDIT_LABELS.get(name)
        or name.replace("_", " ").capitalize()
    )


def audit_value(value: Any, name: str) -> str:
    """A value in the audit trail as the user typed or chose it (issue 22): "Yes"/"No", dates
    as 18 November 2026, several choices separated by commas; never "True" or "2026-11-18"."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(audit_value(part, name) for part in value) or "(empty)"
    if name == "nhs_number":
        return spaced_nhs_number(str(value))
    if isinstance(value, str):
        if _ISO_DATE.fullmatch(value):
            try:
                return uk_date(date.fromisoformat(value))
            except ValueError:
                return value
        if name in ds.MULTI_VALUE_FIELDS:
            return ", ".join(part for part in value.split(";") if part)
    return str(value)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def patient_label(patient: Any) -> str:
    """Who a kept form is about, for the list of what waits on a device (issue 22)."""
    number = f"NHS number {spaced_nhs_number(patient.nhs_number)}"
    return f"{patient.name}, {number}" if patient.name else number


def episode_label(episode: Any) -> str:
    """Which episode a kept form is about: its patient and fracture date (issue 22)."""
    return f"{patient_label(episode.patient)}: fracture of {uk_date(episode.fracture_date)}"


def init_app(app: Flask) -> None:
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals.update(
        current_service=current_service,  # None when signed out
        field_label=field_label,
        audit_field_label=audit_field_label,
        field_spec=fields.spec,
        field_anchor=fields.anchor,
        described_by=described_by,
        hidden_state=hidden_state,
        very_high_risk_advice=ds.VERY_HIGH_RISK_ADVICE,
        new_submission_id=new_submission_id,
        status_tag=status_tag,
        stage_titles=ds.STAGE_TITLES,
        may=policy.may,
        contact_purposes=contacts.PURPOSE_LABELS,
        contact_methods=CONTACT_METHODS,
        contact_outcomes=CONTACT_OUTCOMES,
    )
    app.jinja_env.filters.update(
        uk_date=uk_date,
        uk_datetime=uk_datetime,
        error_link=error_link,
        shown=shown,
        nhs_number=spaced_nhs_number,
        patient_label=patient_label,
        audit_value=audit_value,
        episode_label=episode_label,
    )
