"""A real FLS Portal server in a subprocess on 127.0.0.1, against a temporary database, that a
browser test can stop and start again on the same port (the same origin keeps the browser's
IndexedDB, service worker and cookies). Used by the offline-forms browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-9"
SECRET_KEY = "browser-test-secret-key-offline"

_RUNNER = """
import sys
from werkzeug.serving import make_server
from portal import create_app

server = make_server("127.0.0.1", int(sys.argv[1]), create_app(), threaded=True)
print("serving", flush=True)
server.serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PortalServer:
    """One portal process; `start()` and `stop()` may be called again and again."""

    def __init__(self, workdir: Path, database_url: str | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url or "sqlite:///" + str(workdir / "portal.db")
        self.process: subprocess.Popen | None = None
        self.log = open(workdir / "server.log", "ab")  # noqa: SIM115 - closed in close()
        self._engine = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("FLASK_", "PORTAL_", "DATABASE_URL", "SECRET_KEY"))
        }
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "SECRET_KEY": SECRET_KEY,
                "PORTAL_INSTANCE_PATH": str(self.workdir / "instance"),
                "FLASK_APP": "wsgi.py",
                "PYTHONPATH": str(ROOT),
            }
        )
        env.update(extra)
        return env

    def flask(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=ROOT,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def prepare(self, users: dict[str, str], service: str = "BRD") -> None:
        """Migrate and add one service with the given users (email -> role), all one password."""
        self.flask("db", "upgrade")
        self.flask(
            "services",
            "add",
            service,
            "--name",
            "Bradford FLS",
            "--nation",
            "England",
            "--expected-caseload",
            "400",
        )
        for email, role in users.items():
            self.flask(
                "users",
                "add",
                email,
                "--role",
                role,
                "--service",
                service,
                "--name",
                email.split("@")[0].capitalize(),
                stdin=PASSWORD + "\n",
            )

    def start(self, **extra_env: str) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(self.port)],
            cwd=ROOT,
            env=self.env(**extra_env),
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: see {self.workdir / 'server.log'}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as response:
                    if response.status == 204:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError("server did not answer /ping within 30 seconds")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def scalar(self, sql: str, **params):
        if self._engine is None:
            self._engine = create_engine(self.database_url)
        with self._engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def close(self) -> None:
        self.stop()
        if self._engine is not None:
            self._engine.dispose()
        self.log.close()


def postgres_database() -> tuple[str, callable]:
    """A fresh PostgreSQL database (PORTAL_TEST_DB=postgresql) and the function that drops it."""
    admin_url = os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"fls_browser_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + "/" + name, drop
