"""Migration 0010 (issue 21) up and down on a database that holds import jobs, SQLite and
PostgreSQL: uploads move into the database; a job waiting on a file on one machine's disk, which
a worker elsewhere cannot read, is discarded and its file deleted; finished jobs keep their rows."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from tests.migrations.test_migration_0008 import _run
from tests.migrations.test_migrations import _migrate
from tests.security.databases import BACKENDS, app_for, fresh_database


@pytest.fixture(params=BACKENDS)
def at_0009(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        app = app_for(url, tmp_path)
        _migrate(app, "upgrade", "0009")
        yield url, app
        from portal.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _job(job_id: int, status: str, stored_path: str | None) -> str:
    path = "NULL" if stored_path is None else f"'{stored_path}'"
    return (
        "INSERT INTO import_jobs (id, file_name, file_sha256, status, keep_valid, total_rows, "
        "processed_rows, added, updated, unchanged, refused, stored_path, runner, created_at) "
        f"VALUES ({job_id}, 'clinic.csv', '{'0' * 64}', '{status}', false, 10, 10, 0, 0, 0, 0, "
        f"{path}, 'host:1:2', '2026-11-01')"
    )


def test_0010_up_and_down_with_jobs(at_0009, tmp_path):
    url, app = at_0009
    waiting = tmp_path / "waiting.csv"
    waiting.write_text("nhs_number\n")
    _run(url, _job(1, "previewed", str(waiting)), _job(2, "applied", None))

    _migrate(app, "upgrade", "0010")
    assert not waiting.exists()
    rows = _run(
        url, "SELECT id, status, error, attempts, heartbeat_at FROM import_jobs ORDER BY id"
    )
    assert rows[0][:2] == (1, "discarded") and "upload the file again" in rows[0][2]
    assert rows[1] == (2, "applied", None, 0, None)
    _run(url, "INSERT INTO import_upload_chunks (job_id, number, data) VALUES (2, 0, 'x')")

    _migrate(app, "downgrade", "0009")
    with app.app_context():
        from portal.extensions import db

        inspector = inspect(db.engine)
        assert "import_upload_chunks" not in inspector.get_table_names()
        columns = {c["name"] for c in inspector.get_columns("import_jobs")}
        db.engine.dispose()
    assert {"stored_path", "runner"} <= columns and "attempts" not in columns
    assert _run(url, "SELECT id, status FROM import_jobs ORDER BY id") == [
        (1, "discarded"),
        (2, "applied"),
    ]
    _migrate(app, "upgrade", "head")
