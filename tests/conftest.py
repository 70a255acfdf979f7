"""Test fixtures: a migrated database (SQLite by default, PostgreSQL with PORTAL_TEST_DB=postgresql),
a test client that sends the real CSRF token, and factories.

The real protections stay on: CSRF, sign-in and service scoping are never disabled here.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp
import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
TEST_PASSWORD = "correct-horse-battery-9"
IN_CI = os.environ.get("CI") == "true"
# The day the suite runs as (Europe/London): fixed, so no test depends on the real date. CI runs
# the suite a second time as of 29 February 2028 (PORTAL_TEST_TODAY=2028-02-29).
TEST_TODAY = date.fromisoformat(os.environ.get("PORTAL_TEST_TODAY") or "2026-11-18")
# Queued tasks run at once in the process that queues them (Huey's immediate mode), unless a test
# starts a real worker (tests/queue_workers.py). Set before anything imports portal.background.
os.environ.setdefault("PORTAL_QUEUE_IMMEDIATE", "1")


@pytest.fixture(autouse=True)
def clock(request):
    """Every test but the browser and cluster ones (whose servers keep the real time) runs on
    TEST_TODAY at 10:00 in London, the clock then moving on as usual. A test sets another time
    with `clock.move_to(...)` (time-machine); portal.clock reads it like the system clock."""
    if request.node.get_closest_marker("browser") or request.node.get_closest_marker("cluster"):
        yield None
        return
    moment = datetime.combine(TEST_TODAY, time(10, 0), tzinfo=ZoneInfo("Europe/London"))
    with time_machine.travel(moment, tick=True) as traveller:
        yield traveller


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """One fresh database per test run, so runs never collide."""
    from tests.security.databases import fresh_database

    backend = os.environ.get("PORTAL_TEST_DB", "sqlite")
    with fresh_database(backend, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def _migrated(database_url, tmp_path_factory):
    """Migrate the test database to head once per run, through Alembic as production does."""
    from flask_migrate import upgrade

    from portal import create_app

    app = create_app(_test_config(database_url, tmp_path_factory.mktemp("instance")))
    with app.app_context():
        upgrade()
        from portal.extensions import db

        db.engine.dispose()
    return database_url


def _test_config(database_url: str, instance: Path) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key",
        "SERVER_NAME": None,
        "RATELIMIT_ENABLED": False,
    }


class CSRFClient(FlaskClient):
    """A test client that sends the real CSRF token with every state-changing request,
    as a browser with the form (or htmx with its header) would."""

    def csrf_token(self) -> str:
        response = self.get("/csrf-token")
        return response.get_json()["csrf_token"]

    def open(self, *args, **kwargs):
        method = (kwargs.get("method") or "GET").upper()
        send_csrf = kwargs.pop("csrf", True)
        if send_csrf and method in ("POST", "PUT", "PATCH", "DELETE"):
            headers = dict(kwargs.pop("headers", None) or {})
            if "X-CSRFToken" not in headers:
                headers["X-CSRFToken"] = self.csrf_token()
            kwargs["headers"] = headers
        # Each request gets its own application context (and so its own `g` and database
        # session), as in production; the test's own context stays untouched.
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def app(_migrated, tmp_path):
    from portal import create_app
    from portal.extensions import db

    app = create_app(_test_config(_migrated, tmp_path))
    app.test_client_class = CSRFClient
    with app.app_context():
        yield app
        db.session.remove()
        _empty_tables(db)
        db.engine.dispose()


def _empty_tables(db) -> None:
    from portal.models import Base

    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def db(app):
    from portal.extensions import db

    return db


@pytest.fixture
def client(app) -> CSRFClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- factories --------------------------------------------------------------------------------


@pytest.fixture
def make_service(db):
    from portal.models import Service

    def make(code="BRD", name=None, nation="England", expected_caseload=1200, active=True):
        service = Service(
            code=code,
            name=name or f"{code} Fracture Liaison Service",
            nation=nation,
            expected_caseload=expected_caseload,
            active=active,
            data_version=0,
        )
        db.session.add(service)
        db.session.commit()
        return service

    return make


@pytest.fixture
def make_user(db):
    from portal.accounts.users import hash_password
    from portal.models import User

    hashed = hash_password(TEST_PASSWORD)

    def make(
        role="clinician", services=(), email=None, active=True, password=None, second_factor=None
    ):
        # Admins must have a second factor (security.md): a test admin has one unless the test
        # is about enrolling it (second_factor=False).
        if second_factor is None:
            second_factor = role == "admin"
        user = User(
            email=email or f"{role}-{uuid.uuid4().hex[:6]}@nhs.test",
            display_name=f"Test {role}",
            role=role,
            active=active,
            password_hash=hash_password(password) if password else hashed,
            session_version=1,
            totp_secret=pyotp.random_base32(32) if second_factor else None,
        )
        user.services = list(services)
        db.session.add(user)
        db.session.commit()
        return user

    return make


def sign_in(client: CSRFClient, user, password: str = TEST_PASSWORD):
    response = client.post(
        "/auth/sign-in", data={"email": user.email, "password": password}, follow_redirects=False
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    if response.headers["Location"].endswith("/auth/second-factor"):
        response = _second_factor(client, user)
    return response


def _second_factor(client: CSRFClient, user):
    """The second sign-in step with the code the user's app shows now."""
    from sqlalchemy import update

    from portal.extensions import db
    from portal.models import User

    # A code works once; tests sign the same user in several times within one 30-second step, so
    # the helper forgets the last used step (the refusal of a reused code has its own tests).
    db.session.execute(update(User).where(User.id == user.id).values(totp_last_step=None))
    db.session.commit()
    secret = db.session.scalar(select(User.totp_secret).where(User.id == user.id))
    response = client.post("/auth/second-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response


def confirm_identity(client: CSRFClient, user, password: str = TEST_PASSWORD, next_url: str = "/"):
    """Confirm it is you (security.md: asked before changes to how one signs in): the password,
    and the current code of the user's app where a second factor is enrolled."""
    from sqlalchemy import update

    from portal.extensions import db
    from portal.models import User

    data = {"password": password}
    secret = db.session.scalar(select(User.totp_secret).where(User.id == user.id))
    if secret:
        # As in sign_in: the same 30-second step may already have been used by this test.
        db.session.execute(update(User).where(User.id == user.id).values(totp_last_step=None))
        db.session.commit()
        data["code"] = pyotp.TOTP(secret).now()
    response = client.post(f"/auth/confirm?next={next_url}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response


@pytest.fixture
def signed_in(client, make_service, make_user):
    """A client signed in as a clinician of service BRD: returns (client, user, service)."""

    def make(role="clinician", service=None):
        service = service or make_service()
        user = make_user(role=role, services=[service])
        sign_in(client, user)
        return client, user, service

    return make


def csrf_from_html(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "page carries no CSRF meta tag"
    return match.group(1)
