"""Finding a patient of a service (issue 18): by NHS number, hospital number, family name (with
a given name or date of birth to narrow it) or date of birth. Names are compared folded: case and
accents set aside (Patient.family_name_search). The search is posted, never put in a URL, and
each search is audited with what it was by and the patients it found (never the words searched
for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey.forms import FormData, date_text
from portal.journey.next_steps import NextStep, next_step
from portal.journey.rules import ValueProblem, age_on, clean_nhs_number, parse_value
from portal.journey.rules.direct_care import fold_name
from portal.models import Episode, Patient, Service

MOST_RESULTS = 50
CRITERIA = ("nhs_number", "hospital_number", "family_name", "given_name", "date_of_birth")
NOTHING_TO_SEARCH = "Enter an NHS number, a hospital number, a family name or a date of birth"


@dataclass(frozen=True)
class Found:
    patient: Patient
    age: int
    episode: Episode | None
    step: NextStep | None


@dataclass
class Search:
    """A search as posted: its criteria, their problems, and what it found."""

    criteria: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    results: list[Found] = field(default_factory=list)
    more: bool = False  # more than MOST_RESULTS matched

    @property
    def by(self) -> list[str]:
        return [name for name in CRITERIA if self.criteria.get(name)]


def read(form: FormData) -> Search:
    """The criteria as posted, checked: an NHS number must be a valid one, a date a real date."""
    search = Search()
    raw_nhs = (form.get("nhs_number") or "").strip()
    if raw_nhs:
        try:
            search.criteria["nhs_number"] = clean_nhs_number(raw_nhs)
        except ValueProblem as problem:
            search.errors["nhs_number"] = str(problem)
    for name in ("hospital_number", "family_name", "given_name"):
        text = " ".join((form.get(name) or "").split())
        if name == "hospital_number":
            text = text.upper().replace(" ", "")
        if len(text) > 100:
            search.errors[name] = "Too long to be a name or number: shorten it"
        elif text:
            search.criteria[name] = text
    try:
        typed = date_text("date_of_birth", form)
        if typed:
            search.criteria["date_of_birth"] = parse_value("date_of_birth", typed)
    except ValueProblem as problem:
        search.errors["date_of_birth"] = str(problem)
    if search.criteria.get("given_name") and not search.criteria.get("family_name"):
        search.errors["given_name"] = "Give the family name too: a given name alone finds too many"
    if not search.criteria and not search.errors:
        search.errors["nhs_number"] = NOTHING_TO_SEARCH
    return search


def run(actor: Actor, service: Service, search: Search, today: date) -> Search:
    """The service's patients who match every criterion given, each with their latest live
    episode and its next step; audited as a view of search results."""
    criteria = search.criteria
    conditions = [Patient.service_id == service.id]
    if "nhs_number" in criteria:
        conditions.append(Patient.nhs_number == criteria["nhs_number"])
    if "hospital_number" in criteria:
        conditions.append(Patient.hospital_number == criteria["hospital_number"])
    for name, column in (
        ("family_name", Patient.family_name_search),
        ("given_name", Patient.given_name_search),
    ):
        folded = fold_name(criteria.get(name))
        if folded:
            conditions.append(column.startswith(folded, autoescape=True))
    if "date_of_birth" in criteria:
        conditions.append(Patient.date_of_birth == criteria["date_of_birth"])
    patients = list(
        db.session.scalars(
            select(Patient)
            .options(selectinload(Patient.episodes))
            .where(*conditions)
            .order_by(Patient.family_name_search, Patient.given_name_search, Patient.id)
            .limit(MOST_RESULTS + 1)
        )
    )
    search.more = len(patients) > MOST_RESULTS
    for patient in patients[:MOST_RESULTS]:
        live = [e for e in patient.episodes if e.deleted_at is None]
        latest = live[-1] if live else None
        search.results.append(
            Found(
                patient,
                age_on(patient.date_of_birth, today),
                latest,
                next_step(latest, today) if latest is not None else None,
            )
        )
    by = f"patient search by {', '.join(search.by)}"
    if len(search.results) == 1:
        audit.record(actor, "search", search.results[0].patient, detail=f"{by}: found")
    else:
        shown = ", ".join(str(found.patient.id) for found in search.results) or "none"
        audit.record(
            actor,
            "search",
            service_id=service.id,
            detail=f"{by}: {len(search.results)} found, patients shown {shown}",
        )
    return search
