"""Migration 0009 (issue 19) with data, on SQLite and PostgreSQL: an episode of 0007 keeps every
value on the way up; the new columns and the treatment plan hold data; on the way down the new
columns and tables go, an alfacalcidol follow-up answer (unknown before 0009) is cleared, and
everything else stays."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, text

from tests.migrations.test_migrations import _migrate, _tables, empty_db  # noqa: F401

EPISODE = {
    "id": 1,
    "service_id": 1,
    "patient_id": 1,
    "fracture_date": date(2024, 3, 1),
    "fracture_sites": "Spine",
    "therapy16": "Denosumab",
    "therapy52": "Alendronate",
    "smoker": "Never",
}


def _kept(row, leave_out=()) -> dict[str, str]:
    """The episode's first values as text (SQLite reads dates back as text, PostgreSQL not)."""
    return {k: str(row[k]) for k in EPISODE if k not in leave_out}


def _run(url: str, sql: str, **params):
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return result.mappings().all() if result.returns_rows else None
    finally:
        engine.dispose()


def test_0009_up_and_down_with_data(empty_db):  # noqa: F811
    url, app = empty_db
    _migrate(app, "upgrade", "0007")
    _run(
        url,
        "INSERT INTO services (id, code, name, nation, expected_caseload, active, data_version) "
        "VALUES (1, 'BRD', 'Bradford FLS', 'England', 1200, true, 1)",
    )
    _run(
        url,
        "INSERT INTO patients (id, service_id, nhs_number, date_of_birth, sex, version, "
        "created_at, updated_at) VALUES (1, 1, '9100000000', '1940-01-01', 'Female', 1, "
        "'2024-03-01', '2024-03-01')",
    )
    columns = ", ".join(EPISODE)
    _run(
        url,
        f"INSERT INTO episodes ({columns}, version, created_at, updated_at) "
        f"VALUES ({', '.join(':' + c for c in EPISODE)}, 1, '2024-03-01', '2024-03-01')",
        **EPISODE,
    )
    _migrate(app, "upgrade", "0009")
    (row,) = _run(url, "SELECT * FROM episodes")
    assert _kept(row) == _kept(EPISODE)
    assert row["nogg_risk_category"] is None and row["audit_complete_at"] is None
    _run(
        url,
        "UPDATE episodes SET nogg_risk_category = 'Very high', falls_two_or_more = 'Yes', "
        "refracture = 'Yes', refracture_count = 2, refracture1_site = 'Hip', "
        "refracture1_date = '2024-09-01', therapy52 = 'Alfacalcidol'",
    )
    _run(
        url,
        "INSERT INTO treatment_courses (id, service_id, episode_id, drug, route, started_on, "
        "no_follow_on_confirmed, version, created_at) VALUES (1, 1, 1, 'Denosumab', "
        "'Subcutaneous', '2024-04-01', false, 1, '2024-04-01')",
    )
    _run(
        url,
        "INSERT INTO treatment_events (id, service_id, course_id, kind, event_date, created_at) "
        "VALUES (1, 1, 1, 'dose', '2024-10-01', '2024-10-01')",
    )
    with pytest.raises(Exception, match="(?i)check"):
        _run(url, "UPDATE episodes SET nogg_risk_category = 'Extreme'")

    _migrate(app, "downgrade", "0007")
    assert not {"treatment_courses", "treatment_events"} & _tables(url)
    (row,) = _run(url, "SELECT * FROM episodes")
    assert "nogg_risk_category" not in row and row["therapy52"] is None
    assert _kept(row, ("therapy52",)) == _kept(EPISODE, ("therapy52",))
    _migrate(app, "upgrade", "0009")
    (row,) = _run(url, "SELECT * FROM episodes")
    assert row["therapy16"] == "Denosumab" and row["refracture_count"] is None
