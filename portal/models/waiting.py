"""What keeps a live episode on a worklist, as the partial indexes of migration 0011 hold it.

A worklist of a large service is a small part of its episodes (ten years of a service can hold
140,000 episodes, of which a few thousand wait for any one thing). Each list's waiting condition
is kept here once, as SQL that the worklist queries (portal/journey/worklists.py) and the
indexes share word for word: PostgreSQL uses a partial index only when a query's WHERE clause
implies the index's predicate, so the constants are written into the SQL, never bound as
parameters. Each index is keyed by (service, fracture date, patient): a list is counted from its
index alone, and read a page at a time in fracture-date order. The two indexes on patients let
the lists leave out the deceased, and find the patients an audited field of their own is missing
for, without reading every patient of the service.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Index, String, and_, literal_column, or_
from sqlalchemy.sql.elements import ColumnElement

from kpis import dataset as ds
from portal.models.clinical import Episode, Patient

episodes = Episode.__table__.c
patients = Patient.__table__.c


def constant(value: str) -> ColumnElement[Any]:
    """A string written into the statement (as the index predicates are), not a parameter."""
    assert "'" not in value and "\\" not in value
    return literal_column(f"'{value}'", String())


def blank(column: Any) -> ColumnElement[bool]:
    """Not answered: NULL, or an empty string for a text field."""
    if isinstance(column.type, Date):
        return column.is_(None)
    return or_(column.is_(None), column == constant(""))


LIVE = episodes.deleted_at.is_(None)

# The audited fields kept on the episode, and those kept on the patient (KPI 1).
EPISODE_AUDITED = tuple(name for name in ds.AUDITED_FIELDS if name not in ds.PATIENT_FIELDS)
PATIENT_AUDITED = tuple(name for name in ds.AUDITED_FIELDS if name in ds.PATIENT_FIELDS)

# The part of each list's wait that holds whatever the date: a follow-up recorded as "No" may
# keep an episode listed too, but only inside its window (worklists.py adds that part).
UNANSWERED: dict[str, ColumnElement[bool]] = {
    "awaiting-assessment": blank(episodes.assessment_date),
    "dxa-not-done": and_(episodes.dxa_status == constant("Recommended"), blank(episodes.dxa_date)),
    "followup16": blank(episodes.followup16_done),
    "followup52": blank(episodes.followup52_done),
    "incomplete": or_(*(blank(episodes[name]) for name in EPISODE_AUDITED)),
}

PATIENT_INCOMPLETE = or_(*(blank(patients[name]) for name in PATIENT_AUDITED))
DECEASED = patients.date_of_death.is_not(None)


def index_name(key: str) -> str:
    return "ix_episodes_waiting_" + key.replace("-", "_")


WORKLIST_INDEXES = [
    *(
        Index(
            index_name(key),
            episodes.service_id,
            episodes.fracture_date,
            episodes.patient_id,
            postgresql_where=and_(LIVE, condition),
            sqlite_where=and_(LIVE, condition),
        )
        for key, condition in UNANSWERED.items()
    ),
    # A list sorted by date of birth walks the service's patients in that order (the NHS number
    # and the name have their indexes already).
    Index("ix_patients_service_id_date_of_birth", patients.service_id, patients.date_of_birth),
    Index(
        "ix_patients_deceased",
        patients.service_id,
        patients.id,
        postgresql_where=DECEASED,
        sqlite_where=DECEASED,
    ),
    Index(
        "ix_patients_audit_incomplete",
        patients.service_id,
        patients.id,
        postgresql_where=PATIENT_INCOMPLETE,
        sqlite_where=PATIENT_INCOMPLETE,
    ),
]
