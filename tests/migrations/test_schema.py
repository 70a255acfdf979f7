"""The first migration builds the whole schema, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from portal.models import Base


def test_migrated_database_matches_the_models(app, db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migration_created_every_table(app, db):
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "services",
        "users",
        "user_services",
        "patients",
        "episodes",
        "audit_events",
        "submissions",
        "import_jobs",
        "alembic_version",
    } <= tables


def test_database_enforces_what_it_can(app, db, make_service):
    """Unique NHS number per service, allowed values and foreign keys, below the application."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    service = make_service()
    insert_patient = text(
        "INSERT INTO patients (service_id, nhs_number, date_of_birth, sex, version, created_at, updated_at) "
        "VALUES (:s, :n, '1950-01-01', :sex, 1, '2024-01-01', '2024-01-01')"
    )
    with db.engine.begin() as conn:
        conn.execute(insert_patient, {"s": service.id, "n": "9434765919", "sex": "Female"})
    for params in (
        {"s": service.id, "n": "9434765919", "sex": "Female"},  # duplicate within the service
        {"s": service.id, "n": "9876543210", "sex": "Robot"},  # not an allowed value
        {"s": 999999, "n": "9876543210", "sex": "Male"},  # no such service
    ):
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(insert_patient, params)
