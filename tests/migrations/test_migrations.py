"""Migrations (security.md, "Keeping data"): up to head on an empty SQLite and PostgreSQL
database, the models and the migrated schema agree (what `flask db check` checks), down to base
and up again, and on a database that holds data nothing is lost."""

from __future__ import annotations

from datetime import date

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, inspect, select, text

from portal.audit.actor import Actor
from tests.conftest import TEST_PASSWORD
from tests.security.databases import BACKENDS, app_for, fresh_database


def _migrate(app, command: str, revision: str = "head") -> None:
    from flask_migrate import downgrade, upgrade

    from portal.extensions import db

    with app.app_context():
        (upgrade if command == "upgrade" else downgrade)(revision=revision)
        db.engine.dispose()


def _differences(url: str) -> list:
    from portal.models import Base

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_db(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        app = app_for(url, tmp_path)
        yield url, app
        from portal.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_one_head_and_a_linear_history():
    from portal.operations.backups import MIGRATIONS_DIRECTORY

    script = ScriptDirectory(str(MIGRATIONS_DIRECTORY))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert all(len(r._all_down_revisions) <= 1 for r in revisions)


def test_upgrade_to_head_on_an_empty_database_matches_the_models(empty_db):
    from portal.models import Base
    from portal.operations.backups import MIGRATIONS_DIRECTORY

    url, app = empty_db
    _migrate(app, "upgrade")
    assert _revision(url) == ScriptDirectory(str(MIGRATIONS_DIRECTORY)).get_current_head()
    assert {t.name for t in Base.metadata.sorted_tables} <= _tables(url)
    assert _differences(url) == []


def test_downgrade_to_base_and_up_again(empty_db):
    url, app = empty_db
    _migrate(app, "upgrade")
    _migrate(app, "downgrade", "base")
    assert _tables(url) <= {"alembic_version"}
    _migrate(app, "upgrade")
    assert _differences(url) == []


def test_each_step_down_and_up_keeps_the_data(empty_db):
    """With rows present: every migration down one step and up again loses nothing it keeps."""
    from portal.accounts import second_factor
    from portal.accounts import users as accounts
    from portal.admin import service_directory
    from portal.audit import events as audit
    from portal.extensions import db
    from portal.models import Patient
    from portal.operations import backups as backup

    url, app = empty_db
    _migrate(app, "upgrade")
    with app.app_context():
        service = service_directory.add_service(
            Actor.command_line(), "BRD", "Bradford FLS", "England", "1200"
        )
        user = accounts.create_user(
            Actor.command_line(),
            "nurse@nhs.test",
            "Nurse",
            "clinician",
            [service],
            password=TEST_PASSWORD,
        )
        user.totp_secret = second_factor.new_secret()
        second_factor.regenerate_recovery_codes(Actor.command_line(), user)
        for n in range(25):
            patient = Patient(
                service_id=service.id,
                nhs_number=f"{9100000000 + n}",
                date_of_birth=date(1940, 1, 1 + n),
                sex="Female",
            )
            db.session.add(patient)
            audit.record(
                Actor.command_line(), "create", patient, {"nhs_number": (None, patient.nhs_number)}
            )
        db.session.commit()
        db.engine.dispose()

    rows_at_head = _rows_of(url)
    script = ScriptDirectory(str(backup.MIGRATIONS_DIRECTORY))
    for revision in script.walk_revisions():
        if revision.down_revision is None:
            continue
        _migrate(app, "downgrade", revision.down_revision)
        # Tables the step down keeps hold exactly the same rows, in the columns it keeps (a
        # column it brings back, as 0006 does the old sign-in counters, is not compared).
        for name, rows in _rows_of(url).items():
            kept = set(rows[0]) if rows else set()
            at_head = set(rows_at_head[name][0]) if rows_at_head[name] else set()
            head = [{k: v for k, v in row.items() if k in kept} for row in rows_at_head[name]]
            rows = [{k: v for k, v in row.items() if k in at_head} for row in rows]
            assert rows == head, (revision.revision, name)
        _migrate(app, "upgrade")  # back to the head, so the next step down starts from it
    # A table a step down dropped comes back empty, and a column it dropped comes back empty;
    # everything else is untouched.
    dropped_columns: dict[str, set[str]] = {}
    for name, rows in _rows_of(url).items():
        if not rows:
            continue
        assert len(rows) == len(rows_at_head[name]), name
        for row, head in zip(rows, rows_at_head[name], strict=True):
            for column, value in row.items():
                if value != head[column]:
                    assert value is None, (name, column, head[column])
                    dropped_columns.setdefault(name, set()).add(column)
    assert dropped_columns in ({}, {"audit_events": {"operator"}}), dropped_columns
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Patient.__table__)) == 25
    engine.dispose()
    assert _differences(url) == []


def _rows_of(url: str) -> dict[str, list[dict]]:
    """Every row of every table the database has, column by column, in primary-key order."""
    from sqlalchemy import MetaData

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            metadata = MetaData()
            metadata.reflect(connection)
            return {
                name: [
                    dict(row._mapping)
                    for row in connection.execute(
                        select(table).order_by(*(table.primary_key.columns or table.columns))
                    )
                ]
                for name, table in metadata.tables.items()
                if name != "alembic_version"
            }
    finally:
        engine.dispose()
