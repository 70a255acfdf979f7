"""Browser fixtures: the real portal on 127.0.0.1 and Debian's chromium driven by Playwright.

- `live_server`: the app served by werkzeug in a thread on a free port, on its own temporary SQLite
  database migrated to head through Alembic, with a job-queue worker process (scripts/worker)
  running its imports. CSRF, sign-in and service scoping stay on (only the
  per-address rate limit is off, as in tests/conftest.py, so many sign-ins from 127.0.0.1 are
  fine). Tables are emptied after each test. `live_server.make_service(...)`,
  `live_server.make_user(...)` add data; `live_server.url_for(path)` builds a URL.
- `page`: a fresh browser context and page; `page_log` records console errors, page errors, CSP
  violations, failed requests and every URL requested.
- In tests/browser/helpers.py: `sign_in_browser(page, live_server, user)`, `wait_for_htmx(page)`,
  `axe_violations(page)`, `describe_violations(violations)`.

Without /usr/bin/chromium the tests skip with a loud reason, except in CI (CI=true), where they
fail. They need the built assets: `npm ci && npm run build`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from huey.storage import SqliteStorage

from tests.browser.helpers import BROWSER_PASSWORD, unavailable
from tests.queue_workers import real_queue, start_worker, stop

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
VENDOR = ROOT / "portal" / "static" / "vendor"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# --- the live server ------------------------------------------------------------------------


@dataclass(frozen=True)
class BrowserUser:
    """A user made on the live server, with the password a browser signs in with."""

    id: int
    email: str
    role: str
    display_name: str
    password: str
    # Admins need a second factor (security.md); the browser helper types the current code.
    totp_secret: str | None = None


@dataclass
class LiveServer:
    """The portal served on 127.0.0.1 for the browser; helpers add data through its app."""

    app: object
    host: str
    port: int
    queue_name: str
    queue_file: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    def make_service(self, code: str = "BRD", name: str | None = None, **values):
        from portal.extensions import db
        from portal.models import Service

        with self.app.app_context():
            service = Service(
                code=code,
                name=name or f"{code} Fracture Liaison Service",
                nation=values.pop("nation", "England"),
                expected_caseload=values.pop("expected_caseload", 1200),
                active=values.pop("active", True),
                data_version=0,
                **values,
            )
            db.session.add(service)
            db.session.commit()
            db.session.refresh(service)
            db.session.expunge(service)
            return service

    def make_user(
        self,
        role: str = "clinician",
        services=(),
        email: str | None = None,
        display_name: str | None = None,
        password: str = BROWSER_PASSWORD,
        second_factor: bool | None = None,
    ):
        """A user of the given services (Service objects or codes) who can sign in at once.

        Admins get a second factor unless `second_factor=False` (a test of enrolling it)."""
        import pyotp

        from portal.accounts.users import hash_password
        from portal.extensions import db
        from portal.models import Service, User

        with self.app.app_context():
            members = [
                db.session.get(Service, s.id)
                if isinstance(s, Service)
                else db.session.query(Service).filter_by(code=s).one()
                for s in services
            ]
            user = User(
                email=email or f"{role}-{uuid.uuid4().hex[:6]}@nhs.test",
                display_name=display_name or f"Test {role.capitalize()}",
                role=role,
                active=True,
                password_hash=hash_password(password),
                session_version=1,
                totp_secret=pyotp.random_base32(32)
                if (role == "admin" if second_factor is None else second_factor)
                else None,
            )
            user.services = members
            db.session.add(user)
            db.session.commit()
            return BrowserUser(
                id=user.id,
                email=user.email,
                role=user.role,
                display_name=user.display_name,
                password=password,
                totp_secret=user.totp_secret,
            )

    def empty_tables(self) -> None:
        from portal.extensions import db
        from portal.models import Base

        with self.app.app_context():
            db.session.remove()
            with db.engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())


@pytest.fixture(scope="session")
def _live_server(tmp_path_factory) -> Iterator[LiveServer]:
    from flask_migrate import upgrade
    from werkzeug.serving import make_server

    from portal import create_app

    if not all((VENDOR / name).exists() for name in ("nhsuk.css", "htmx.min.js", "offline.js")):
        unavailable(f"front-end assets not built in {VENDOR}: run `npm ci && npm run build`")

    instance = tmp_path_factory.mktemp("live-instance")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(instance / "portal-browser.db"),
            "SECRET_KEY": "browser-test-" + uuid.uuid4().hex,
            "RATELIMIT_ENABLED": False,
            # TESTING stays off: the server behaves as it does for a user (CSRF and sign-in on).
        }
    )
    with app.app_context():
        upgrade()
    # Imports run on a real worker process (scripts/worker), its queue in the instance folder,
    # as with scripts/dev; each test queues into it (live_server).
    queue_name = "fls-browser-" + uuid.uuid4().hex[:8]
    worker = start_worker(app.config["SQLALCHEMY_DATABASE_URI"], instance, name=queue_name)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(
            app=app,
            host="127.0.0.1",
            port=server.server_port,
            queue_name=queue_name,
            queue_file=instance / "queue.db",
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        stop(worker)
        from portal.extensions import db

        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def live_server(_live_server) -> Iterator[LiveServer]:
    """The running portal; whatever a test adds is removed afterwards. While the test runs, this
    process's queue is the live worker's (other tests run queued tasks at once)."""
    with real_queue(SqliteStorage, _live_server.queue_name, filename=str(_live_server.queue_file)):
        yield _live_server
    _live_server.empty_tables()


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _chromium():
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageLog:
    """What the page did: every request, and everything that went wrong."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def csp_violations(self) -> list[str]:
        return [text for text in self.console_errors if "Content Security Policy" in text]

    def problems(self) -> list[str]:
        return self.console_errors + self.page_errors + self.failed_requests


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(_chromium, live_server, page_log):
    """A fresh context (no cookies) and page; base_url is the live server."""
    # No service worker here: page.route cannot see what passes one (offline tests make their own).
    context = _chromium.new_context(
        base_url=live_server.url, locale="en-GB", service_workers="block"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()

    def on_console(message):
        # Chromium also logs every 4xx/5xx answer as a console error; those are judged from the
        # responses below, where an expected htmx 422 or 409 can be told apart.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            page_log.console_errors.append(message.text)

    def on_response(response):
        # A document, stylesheet, script or image that fails is a fault; htmx answers (a 422 form
        # swap, a 409 conflict) are the page working, so tests of those judge them themselves.
        if response.status >= 400 and response.request.resource_type not in ("fetch", "xhr"):
            page_log.failed_requests.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: page_log.page_errors.append(str(error)))
    page.on("request", lambda request: page_log.requests.append(request.url))

    def on_request_failed(request) -> None:
        # The portal's scripts fetch in the background (/device-key, /ping); a navigation aborts
        # those on purpose, which is not a fault. Anything else that fails to load is.
        aborted = "ERR_ABORTED" in (request.failure or "")
        if aborted and request.resource_type in ("fetch", "xhr"):
            return
        page_log.failed_requests.append(f"{request.failure} {request.url}")

    page.on("requestfailed", on_request_failed)
    page.on("response", on_response)
    try:
        yield page
    finally:
        context.close()
