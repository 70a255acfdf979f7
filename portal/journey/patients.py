"""Finding a service's patients."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.journey.rules import clean_nhs_number
from portal.models import Patient, Service


def find_by_nhs_number(service: Service, typed: str) -> tuple[str, Patient | None]:
    """The NHS number as typed, checked and cleaned (ValueProblem when it is not a valid one),
    and the service's patient with that number, if there is one."""
    nhs_number = clean_nhs_number(typed)
    patient = db.session.scalar(
        select(Patient).where(Patient.service_id == service.id, Patient.nhs_number == nhs_number)
    )
    return nhs_number, patient
