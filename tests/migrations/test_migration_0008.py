"""Migration 0008 (issue 18) up and down on a database that holds data, SQLite and PostgreSQL:
patients, episodes and services keep every row; the direct-care fields, contact attempts and
letters come and go; the hospital number is unique within a service."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from tests.migrations.test_migrations import _migrate
from tests.security.databases import BACKENDS, app_for, fresh_database


@pytest.fixture(params=BACKENDS)
def at_0007(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        app = app_for(url, tmp_path)
        _migrate(app, "upgrade", "0007")
        yield url, app
        from portal.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _run(url: str, *statements: str) -> list:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            result = None
            for statement in statements:
                result = connection.execute(text(statement))
            return list(result) if result is not None and result.returns_rows else []
    finally:
        engine.dispose()


def test_0008_up_and_down_with_data(at_0007):
    url, app = at_0007
    _run(
        url,
        "INSERT INTO services (id, code, name, nation, expected_caseload, active, data_version) "
        "VALUES (1, 'BRD', 'Bradford FLS', 'England', 900, true, 4)",
        "INSERT INTO patients (id, service_id, nhs_number, date_of_birth, sex, version, "
        "created_at, updated_at) VALUES (1, 1, '9995908301', '1940-02-01', 'Female', 1, "
        "'2026-01-01', '2026-01-01')",
        "INSERT INTO episodes (id, service_id, patient_id, fracture_date, followup16_done, "
        "version, created_at, updated_at) VALUES (1, 1, 1, '2026-01-05', 'No', 1, "
        "'2026-01-06', '2026-01-06')",
    )
    _migrate(app, "upgrade", "0008")
    assert _run(url, "SELECT attempts_before_lost, data_version FROM services") == [(3, 4)]
    assert _run(url, "SELECT nhs_number, given_name FROM patients") == [("9995908301", None)]
    _run(
        url,
        "UPDATE patients SET given_name = 'Zoë', family_name = 'Brontë', "
        "family_name_search = 'bronte', hospital_number = 'RXH1' WHERE id = 1",
        "INSERT INTO contact_attempts (service_id, episode_id, purpose, made_on, method, "
        "outcome, created_at) VALUES (1, 1, 'followup16', '2026-04-20', 'Telephone', "
        "'No answer', '2026-04-20')",
        "INSERT INTO letters (service_id, episode_id, kind, state, recipient, heading, body, "
        "signature, version, created_at, updated_at) VALUES (1, 1, 'gp', 'final', 'GP', 'H', "
        "'B', 'S', 1, '2026-02-01', '2026-02-01')",
    )
    with pytest.raises(IntegrityError):
        _run(
            url,
            "INSERT INTO patients (service_id, nhs_number, date_of_birth, sex, version, "
            "hospital_number, created_at, updated_at) VALUES (1, '9995908302', '1940-02-01', "
            "'Male', 1, 'RXH1', '2026-01-01', '2026-01-01')",
        )
    _migrate(app, "downgrade", "0007")
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        patient_columns = {c["name"] for c in inspect(engine).get_columns("patients")}
    finally:
        engine.dispose()
    assert "contact_attempts" not in tables and "letters" not in tables
    assert "given_name" not in patient_columns
    assert _run(url, "SELECT nhs_number, date_of_birth IS NOT NULL FROM patients") == [
        ("9995908301", True)
    ]
    assert _run(url, "SELECT followup16_done FROM episodes") == [("No",)]
    _migrate(app, "upgrade", "0008")
    assert _run(url, "SELECT hospital_number, attempts_before_lost FROM patients, services") == [
        (None, 3)
    ]
