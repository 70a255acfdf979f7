"""Attempts to reach a patient (issue 18): each call, letter, clinic or other try, how it went and
a note, listed on the episode with who recorded it and when; and the rule of a follow-up "not
done". An attempt never takes an episode off a worklist. A follow-up may be recorded as not done,
with a reason, once its window has closed, or before then as "Lost to follow-up" once the
service's number of unanswered attempts (three unless a lead changes it) is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from kpis import dataset as ds
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey.forms import NOT_DONE_REASON, FormData, date_text
from portal.journey.rules import ValueProblem, parse_value, uk_date
from portal.models import ContactAttempt, Episode
from portal.models.contacts import (
    CONTACT_METHODS,
    CONTACT_OUTCOMES,
    CONTACT_PURPOSES,
    LOST_TO_FOLLOW_UP,
)

PURPOSE_LABELS = {
    "followup16": "16-week contact",
    "followup52": "12-month follow-up",
    "assessment": "Assessment",
    "other": "Something else",
}
LABELS = {
    "purpose": "What the attempt was for",
    "made_on": "Date of the attempt",
    "method": "How",
    "outcome": "What happened",
    "note": "Note",
}
FIELDS = ("purpose", "made_on", "method", "outcome", "note")
NOTE_LENGTH = 1000
UNANSWERED = ("No answer", "Wrong number")
_WINDOW_CLOSES = {
    "followup16": ds.FOLLOWUP16_WINDOW_DAYS[1],
    "followup52": ds.FOLLOWUP52_WINDOW_DAYS[1],
}


@dataclass(frozen=True)
class LastAttempt:
    made_on: date
    method: str
    outcome: str


def last_attempts(episode_ids: list[int]) -> dict[int, LastAttempt]:
    """The latest attempt of each of these episodes (those with one)."""
    if not episode_ids:
        return {}
    rows = db.session.execute(
        select(
            ContactAttempt.episode_id,
            ContactAttempt.made_on,
            ContactAttempt.method,
            ContactAttempt.outcome,
        )
        .where(ContactAttempt.episode_id.in_(episode_ids))
        .order_by(ContactAttempt.made_on, ContactAttempt.id)
    )
    return {row.episode_id: LastAttempt(row.made_on, row.method, row.outcome) for row in rows}


def attempts_of(episode: Episode) -> list[ContactAttempt]:
    """Every attempt of an episode, newest first."""
    return list(
        db.session.scalars(
            select(ContactAttempt)
            .where(ContactAttempt.episode_id == episode.id)
            .order_by(ContactAttempt.made_on.desc(), ContactAttempt.id.desc())
        )
    )


def unanswered(episode: Episode, purpose: str) -> int:
    """How many attempts about this follow-up did not reach the patient."""
    return int(
        db.session.scalar(
            select(func.count(ContactAttempt.id)).where(
                ContactAttempt.episode_id == episode.id,
                ContactAttempt.purpose == purpose,
                ContactAttempt.outcome.in_(UNANSWERED),
            )
        )
        or 0
    )


def suggested_purpose(episode: Episode, today: date) -> str:
    """What an attempt today is most likely for: the follow-up whose window is open or past."""
    days = (today - episode.fracture_date).days
    if not episode.followup52_done and days >= ds.FOLLOWUP52_WINDOW_DAYS[0]:
        return "followup52"
    if not episode.followup16_done and days >= ds.FOLLOWUP16_WINDOW_DAYS[0]:
        return "followup16"
    if episode.assessment_date is None:
        return "assessment"
    return "followup16" if not episode.followup16_done else "other"


def read_attempt(
    episode: Episode, form: FormData, today: date
) -> tuple[dict[str, Any], dict[str, str]]:
    """The attempt as posted: (values, {field: message} of those refused)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, allowed in (
        ("purpose", CONTACT_PURPOSES),
        ("method", CONTACT_METHODS),
        ("outcome", CONTACT_OUTCOMES),
    ):
        chosen = (form.get(name) or "").strip()
        values[name] = chosen if chosen in allowed else None
        if values[name] is None:
            errors[name] = f"Choose {LABELS[name].lower()}"
    try:
        text = date_text("made_on", form, LABELS["made_on"])
        made_on = parse_value("fracture_date", text) if text else None
    except ValueProblem as problem:
        errors["made_on"] = str(problem).replace(ds.LABELS["fracture_date"], LABELS["made_on"])
        made_on = None
    else:
        if made_on is None:
            errors["made_on"] = f"{LABELS['made_on']} is required"
        elif made_on > today:
            errors["made_on"] = f"{LABELS['made_on']} cannot be in the future"
        elif made_on < episode.fracture_date:
            errors["made_on"] = (
                f"{LABELS['made_on']} cannot be before the fracture was diagnosed "
                f"({uk_date(episode.fracture_date)})"
            )
    values["made_on"] = made_on
    note = " ".join((form.get("note") or "").split()) or None
    if note is not None and len(note) > NOTE_LENGTH:
        errors["note"] = f"{LABELS['note']} must be {NOTE_LENGTH} characters or fewer"
    values["note"] = note
    return values, errors


def write_attempt(actor: Actor, episode: Episode, values: dict[str, Any]) -> ContactAttempt:
    """Keep an attempt and audit it (its fields, on the episode's service)."""
    attempt = ContactAttempt(
        service_id=episode.service_id,
        episode_id=episode.id,
        created_by_id=actor.user_id,
        **{name: values[name] for name in FIELDS},
    )
    db.session.add(attempt)
    db.session.flush()
    audit.record(
        actor,
        "create",
        attempt,
        {name: (None, values[name]) for name in FIELDS if values[name] is not None},
        detail=f"contact attempt, episode {episode.id}",
    )
    return attempt


def not_done_problems(
    episode: Episode, stage: str, values: dict[str, Any], today: date, attempts_needed: int
) -> dict[str, str]:
    """The rule of a follow-up newly recorded as not done (issue 18), as {field: message}."""
    done_field, reason_field = f"{stage}_done", NOT_DONE_REASON[stage]
    if values.get(done_field) != "No":
        return {}
    reason = values.get(reason_field)
    if getattr(episode, done_field) == "No" and getattr(episode, reason_field) == reason:
        return {}  # already recorded so (an import may have): the rule is not asked again
    closes = episode.fracture_date + timedelta(days=_WINDOW_CLOSES[stage])
    tried = unanswered(episode, stage)
    what = "contact" if stage == "followup16" else "follow-up"
    if reason == LOST_TO_FOLLOW_UP and tried < attempts_needed:
        return {
            reason_field: f"Lost to follow-up needs {attempts_needed} unanswered contact "
            f"attempts; {tried} {'is' if tried == 1 else 'are'} recorded. Record each attempt below"
        }
    if reason == LOST_TO_FOLLOW_UP:
        return {}
    if today <= closes:
        return {
            done_field: f"The window for this {what} is open until {uk_date(closes)}: record a "
            "contact attempt instead (below). Not done can be recorded once the window has "
            f"closed, or as lost to follow-up after {attempts_needed} unanswered attempts"
        }
    if reason is None:
        return {reason_field: f"Choose why the {what} was not done"}
    return {}
