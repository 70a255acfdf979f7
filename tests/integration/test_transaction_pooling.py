"""DATABASE_TRANSACTION_POOLING (README, "Production"): behind a PgBouncer in transaction pooling,
psycopg prepares no statement on the server; without it psycopg keeps its default."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from portal import create_app
from tests.security.databases import fresh_database


@pytest.mark.postgres
@pytest.mark.parametrize(("setting", "threshold"), [("true", None), ("", 5)])
def test_psycopg_prepares_nothing_behind_transaction_pooling(
    tmp_path, monkeypatch, setting, threshold
):
    monkeypatch.setenv("DATABASE_TRANSACTION_POOLING", setting)
    with fresh_database("postgresql", tmp_path) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "pooling"})
        from portal.extensions import db

        with app.app_context():
            try:
                with db.engine.connect() as connection:
                    assert connection.execute(text("SELECT 1")).scalar_one() == 1
                    driver = connection.connection.driver_connection
                    assert driver.prepare_threshold == threshold
            finally:
                db.engine.dispose()


def test_sqlite_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_TRANSACTION_POOLING", "true")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/p.db", "SECRET_KEY": "x"})
    connect_args = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("connect_args", {})
    assert "prepare_threshold" not in connect_args
