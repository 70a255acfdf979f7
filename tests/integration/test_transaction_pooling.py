"""DATABASE_TRANSACTION_POOLING (README, "Production"): behind a PgBouncer in transaction pooling,
psycopg prepares no statement on the server; without it psycopg keeps its default. The portal is
migrated and queried through a real PgBouncer (Debian's package; skipped loudly without it,
except under CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from deploy.cluster import free_port
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


@pytest.mark.postgres
@pytest.mark.parametrize(("setting", "jit"), [("", "off"), ("on", "on")])
def test_postgresql_jit_is_off_for_the_portal_unless_asked_for(tmp_path, monkeypatch, setting, jit):
    """DATABASE_JIT (README): the portal's connections ask PostgreSQL for no JIT compilation."""
    monkeypatch.setenv("DATABASE_JIT", setting)
    monkeypatch.delenv("DATABASE_TRANSACTION_POOLING", raising=False)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    with fresh_database("postgresql", tmp_path) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "jit"})
        from portal.extensions import db

        with app.app_context():
            try:
                with db.engine.connect() as connection:
                    assert connection.execute(text("SHOW jit")).scalar_one() == jit
            finally:
                db.engine.dispose()


@pytest.mark.postgres
def test_server_options_in_the_database_url_are_kept(tmp_path, monkeypatch):
    """A DATABASE_URL with its own `options` keeps them (the portal does not replace them with
    its JIT setting)."""
    monkeypatch.delenv("DATABASE_JIT", raising=False)
    monkeypatch.delenv("DATABASE_TRANSACTION_POOLING", raising=False)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    with fresh_database("postgresql", tmp_path) as url:
        given = f"{url}?options=-c%20statement_timeout%3D12345"
        app = create_app({"SQLALCHEMY_DATABASE_URI": given, "SECRET_KEY": "jit"})
        from portal.extensions import db

        with app.app_context():
            try:
                with db.engine.connect() as connection:
                    timeout = connection.execute(text("SHOW statement_timeout")).scalar_one()
                    assert timeout == "12345ms"
            finally:
                db.engine.dispose()


def test_sqlite_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_TRANSACTION_POOLING", "true")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/p.db", "SECRET_KEY": "x"})
    connect_args = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("connect_args", {})
    assert "prepare_threshold" not in connect_args


def _pgbouncer_or_skip() -> str:
    program = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.access(program, os.X_OK):
        message = "PGBOUNCER NOT INSTALLED (apt-get install -y pgbouncer): pooling test not run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return program


@contextmanager
def _pgbouncer(database_url: str) -> Iterator[str]:
    """A PgBouncer in transaction pooling with one server connection, in front of the database
    of `database_url`; yields the URL that goes through it."""
    target = make_url(database_url)
    folder = Path(tempfile.mkdtemp(prefix="fls-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{target.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"portal = host={target.host} port={target.port or 5432} dbname={target.database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 1\n"
    )
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    # PgBouncer will not run as root: as root, it runs as the postgres user.
    command = [_pgbouncer_or_skip(), str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
        yield target.set(host="127.0.0.1", port=port, database="portal").render_as_string(
            hide_password=False
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


def _two_clients_take_turns(app) -> None:
    """Two connections of the pool, one server connection behind PgBouncer: each runs the same
    query in transaction after transaction, enough times for psycopg to prepare it."""
    from portal.extensions import db

    with app.app_context():
        try:
            with db.engine.connect() as first, db.engine.connect() as second:
                for turn in range(8):
                    for connection in (first, second):
                        with connection.begin():
                            found = connection.execute(
                                text("SELECT count(*) FROM services WHERE id > :n"), {"n": turn}
                            ).scalar_one()
                            assert found == 0
        finally:
            db.engine.dispose()


@pytest.mark.postgres
def test_the_portal_works_through_pgbouncer_in_transaction_pooling(tmp_path, monkeypatch):
    from flask_migrate import upgrade

    with fresh_database("postgresql", tmp_path) as url, _pgbouncer(url) as pooled:
        monkeypatch.setenv("DATABASE_TRANSACTION_POOLING", "true")
        app = create_app({"SQLALCHEMY_DATABASE_URI": pooled, "SECRET_KEY": "pooling"})
        with app.app_context():
            upgrade()  # the migrations run through PgBouncer too
        _two_clients_take_turns(app)

        # Without the setting the portal asks for JIT off as a startup option, which this
        # PgBouncer refuses (hence the README's ALTER DATABASE) ...
        monkeypatch.setenv("DATABASE_TRANSACTION_POOLING", "")
        refused = create_app({"SQLALCHEMY_DATABASE_URI": pooled, "SECRET_KEY": "pooling"})
        with pytest.raises(DBAPIError, match="unsupported startup parameter"):
            _two_clients_take_turns(refused)
        # ... and with psycopg's defaults alone its prepared statements collide on the shared
        # server connection: the setting is what makes it work.
        monkeypatch.setenv("DATABASE_JIT", "on")
        default = create_app({"SQLALCHEMY_DATABASE_URI": pooled, "SECRET_KEY": "pooling"})
        with pytest.raises(DBAPIError, match="prepared statement"):
            _two_clients_take_turns(default)
