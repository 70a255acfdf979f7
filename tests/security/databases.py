"""Fresh, separate databases for tests that create, wipe and migrate whole databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def _postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


BACKENDS = ("sqlite", "postgresql")


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of `backend`, dropped afterwards; PostgreSQL skipped loudly if absent
    (failed under CI)."""
    if backend == "sqlite":
        yield "sqlite:///" + str(tmp_path / f"fresh-{uuid.uuid4().hex[:6]}.db")
        return
    admin_url = _postgres_admin_url()
    name = f"fls_fresh_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # pragma: no cover - depends on the machine
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL NOT AVAILABLE at {admin_url}: {error}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def app_for(url: str, instance: Path):
    from portal import create_app

    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "test-secret-key",
            "RATELIMIT_ENABLED": False,
        }
    )


def migrated_app(url: str, instance: Path):
    """An app on `url` with the schema brought to head (as `flask db upgrade`)."""
    from flask_migrate import upgrade

    from portal.extensions import db

    app = app_for(url, instance)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return app


def figures_of(url: str) -> dict:
    """Every table's row count and checksum (the backup manifest's figures)."""
    from portal.operations import backups as backup

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return backup.table_figures(connection)
    finally:
        engine.dispose()
