"""The portal's tables as the KPI engine sees them: SQLAlchemy Core names only.

`kpis/` must not import `portal.models` (that would start Flask), so it names the few tables and
columns it reads here. tests/unit/test_kpi_schema.py holds these names against the migrated schema.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Integer, String, column, table
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeEngine

from kpis.dataset import AUDITED_FIELDS

# Columns of each table the engine reads, with their types (so dates bind and read as dates).
_DATES = {
    "fracture_date",
    "identification_date",
    "assessment_date",
    "dxa_date",
    "followup16_date",
    "date_of_death",
    "date_of_birth",
}
_INTEGERS = {"id", "service_id", "patient_id", "expected_caseload", "data_version"}


def _type(name: str) -> type[TypeEngine[Any]]:
    if name in _DATES:
        return Date
    if name in _INTEGERS:
        return Integer
    if name == "active":
        return Boolean
    if name == "deleted_at":
        return DateTime
    return String


SERVICE_COLUMNS = ("id", "code", "name", "nation", "expected_caseload", "active", "data_version")
PATIENT_COLUMNS = (
    "id",
    "service_id",
    "date_of_birth",
    "sex",
    "postcode",
    "care_home_resident",
    "date_of_death",
)
EPISODE_COLUMNS = (
    "id",
    "service_id",
    "patient_id",
    "fracture_date",
    "identification_date",
    "admitted",
    "fracture_sites",
    "assessment_date",
    "previous_fracture",
    "smoker",
    "on_bone_therapy_at_fracture",
    "dxa_status",
    "dxa_date",
    "falls_assessed",
    "falls_referred",
    "bone_therapy",
    "calcium_vitd",
    "followup16_done",
    "followup16_date",
    "therapy16",
    "strength_balance16",
    "followup52_done",
    "therapy52",
    "deleted_at",
)


def _table(name: str, columns: tuple[str, ...]) -> TableClause:
    return table(name, *(column(c, _type(c)) for c in columns))


services: TableClause = _table("services", SERVICE_COLUMNS)
patients: TableClause = _table("patients", PATIENT_COLUMNS)
episodes: TableClause = _table("episodes", EPISODE_COLUMNS)

# Audited fields kept on the patient rather than the episode.
PATIENT_AUDITED_FIELDS = tuple(f for f in AUDITED_FIELDS if f in PATIENT_COLUMNS)

TABLES = {"services": services, "patients": patients, "episodes": episodes}
