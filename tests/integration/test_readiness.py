"""/health and /ready (README, "Production"): public, what a load balancer asks of each instance.
/health asks nothing of the database; /ready answers 503 when the database, Redis (when
configured) or the migrations are not as this code needs them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from portal.operations import readiness

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def test_health_and_ready_answer_without_sign_in(app, client):
    app.config["REDIS_URL"] = None
    assert client.get("/health").get_json() == {"status": "ok"}
    answer = client.get("/ready")
    assert answer.status_code == 200
    assert answer.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"},
    }
    assert answer.headers["Cache-Control"] == "no-store"


def test_health_asks_nothing_of_the_database(app, client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise AssertionError("/health reached the database")

    from portal.extensions import db

    with app.app_context():
        monkeypatch.setattr(db.engine, "connect", unreachable)
        monkeypatch.setattr(db.session, "execute", unreachable)
        assert client.get("/health").status_code == 200


def test_not_ready_when_the_database_does_not_answer(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/missing-folder/portal.db")
    found = readiness.readiness(engine, None)
    assert not found.ready
    assert found.checks["database"].startswith("the database does not answer")
    assert "migrations" not in found.checks


def test_not_ready_when_redis_does_not_answer(app, client):
    # Nothing listens on port 1 of this machine.
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.get_json()["status"] == "not ready"
    assert answer.get_json()["checks"]["redis"].startswith("Redis does not answer")
    assert answer.get_json()["checks"]["database"] == "ok"


def _engine_at(tmp_path, revision: str | None):
    engine = create_engine(f"sqlite:///{tmp_path}/portal.db")
    with engine.begin() as connection:
        if revision is not None:
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            connection.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
    return engine


def test_migrations_behind_head_are_not_ready(tmp_path):
    head = readiness._scripts(MIGRATIONS).get_current_head()
    assert head is not None
    assert readiness.migrations_state(_engine_at(tmp_path, "0001")) == (
        f"the database is at 0001, not at {head}"
    )


def test_no_migrations_is_not_ready(tmp_path):
    assert readiness.migrations_state(_engine_at(tmp_path, None)) == (
        "the database has no migrations applied"
    )


def test_a_revision_of_a_later_release_keeps_the_old_code_ready(tmp_path):
    """Expand/contract: the deploy migrates before the new code starts, so the old instances
    meet a revision they do not know and must keep taking requests."""
    assert readiness.migrations_state(_engine_at(tmp_path, "9999_a_later_release")) == "ok"
