"""Factories for the KPI tests: episodes written straight to the tables, each with its own patient,
every audited field answered unless the test says otherwise."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import pytest

_nhs_numbers = itertools.count(4000000000)

# Everything answered: KPI 1 sees no missing field unless a test blanks one.
COMPLETE = {
    "sex": "Female",
    "postcode": "LS1 4AB",
    "care_home_resident": "No",
    "admitted": "No",
    "fracture_sites": "Wrist",
    "previous_fracture": "No",
    "smoker": "Never",
    "on_bone_therapy_at_fracture": "No",
    "dxa_status": "Not recommended",
    "dxa_not_recommended_reason": "Other",
    "falls_assessed": "No",
    "falls_referred": "No",
    "bone_therapy": "Not appropriate",
    "calcium_vitd": "Yes",
    "followup16_done": "No",
    "strength_balance16": "No",
    "followup52_done": "No",
}
PATIENT_KEYS = ("sex", "postcode", "care_home_resident", "date_of_death")


def days(n: int) -> timedelta:
    return timedelta(days=n)


@pytest.fixture
def add_episode(db):
    """add_episode(service, fracture_date, **fields): one live episode of a new patient.

    Day offsets may be given as `assessment_day=90` (fracture_date + 90 days) for the dates
    assessment, dxa, followup16, followup52 and death. `deleted=True` soft-deletes it.
    """
    from portal.models import Episode, Patient

    def add(service, fracture_date: date, *, deleted: bool = False, commit: bool = True, **fields):
        values = dict(COMPLETE)
        values["identification_date"] = fracture_date
        values["assessment_date"] = fracture_date + days(10)
        for name in ("assessment", "dxa", "followup16", "followup52"):
            offset = fields.pop(f"{name}_day", None)
            if offset is not None:
                fields[f"{name}_date"] = fracture_date + days(offset)
        death = fields.pop("death_day", None)
        if death is not None:
            fields["date_of_death"] = fracture_date + days(death)
        if fields.get("dxa_status") == "Recommended":
            values["dxa_not_recommended_reason"] = None
        if fields.get("followup16_done") == "Yes" and "followup16_date" not in fields:
            fields["followup16_date"] = fracture_date + days(100)
        if fields.get("followup52_done") == "Yes" and "followup52_date" not in fields:
            fields["followup52_date"] = fracture_date + days(370)
        values.update(fields)
        patient = Patient(
            service_id=service.id,
            nhs_number=str(next(_nhs_numbers)),
            date_of_birth=date(1940, 5, 17),
            **{k: values.pop(k) for k in PATIENT_KEYS if k in values},
        )
        db.session.add(patient)
        db.session.flush()
        episode = Episode(
            service_id=service.id, patient_id=patient.id, fracture_date=fracture_date, **values
        )
        if deleted:
            episode.deleted_at = datetime(2025, 1, 2, 9, 0)
            episode.deleted_reason = "entered twice"
        db.session.add(episode)
        if commit:
            db.session.commit()
        else:
            db.session.flush()
        return episode

    return add
