"""Offline-tolerant forms in a real browser (spec/offline.md, "How it is tested").

Playwright's Python API drives Debian's chromium against a real portal process on 127.0.0.1 with
a temporary database (tests/browser/portal_process.py), which a test can stop and start again.
Each scenario ends by counting the rows and audit events it expects.
"""

from __future__ import annotations

import os
import random
import re
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.browser.portal_process import PASSWORD, PortalServer, postgres_database

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALICE = "alice@nhs.test"
BOB = "bob@nhs.test"
SAVED = "Saved on this device. It will be sent when the connection is back."

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: the browser tests cannot run in CI without it")
    pytest.skip(
        f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing (install Debian's chromium)",
        allow_module_level=True,
    )


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance):
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def server(tmp_path):
    """A portal with service BRD and two clinicians, Alice and Bob; started."""
    drop = None
    database_url = None
    if os.environ.get("PORTAL_TEST_DB") == "postgresql":
        database_url, drop = postgres_database()
    portal = PortalServer(tmp_path, database_url)
    try:
        portal.prepare({ALICE: "clinician", BOB: "clinician"})
        portal.start()
        yield portal
    finally:
        portal.close()
        if drop:
            drop()


@pytest.fixture
def context(browser, server):
    context = browser.new_context(base_url=server.url)
    yield context
    context.close()


# --- helpers -------------------------------------------------------------------------------------


def nhs_number() -> str:
    """A random NHS number with a valid check digit."""
    while True:
        digits = [random.randint(0, 9) for _ in range(9)]
        digits[0] = random.randint(4, 9)
        remainder = sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 11 - remainder
        if check == 11:
            check = 0
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def ready(page) -> None:
    """offline.js has read the device (drafts restored, status shown, first send tried)."""
    page.wait_for_function("() => document.documentElement.dataset.offlineReady === 'yes'", timeout=15000)


def settle(page) -> None:
    """No htmx request in flight."""
    page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=15000)


def controlled(page) -> None:
    """The service worker controls the page (so it can answer a reload made offline)."""
    page.wait_for_function(
        "() => navigator.serviceWorker && navigator.serviceWorker.controller !== null", timeout=15000
    )


def sign_in(page, email: str, path: str = "/") -> None:
    page.goto("/auth/sign-in?next=" + path)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/auth/sign-in).*$"))
    ready(page)


def fill_date(page, name: str, day: date) -> None:
    page.fill(f"#{name}-day", str(day.day))
    page.fill(f"#{name}-month", str(day.month))
    page.fill(f"#{name}-year", str(day.year))


def fill_registration(page, number: str) -> None:
    today = date.today()
    page.fill("#nhs_number", number)
    fill_date(page, "date_of_birth", date(1948, 3, 12))
    page.check("input[name=sex][value=Female]")
    fill_date(page, "fracture_date", today - timedelta(days=20))
    page.check("input[name=fracture_sites][value=Wrist]")


def register(page, number: str) -> int:
    """Register a patient online through the form; returns the new episode's id."""
    page.goto("/patients/new")
    ready(page)
    fill_registration(page, number)
    page.click("#register-save")
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    ready(page)
    return int(re.search(r"/episodes/(\d+)", page.url).group(1))


def status(page) -> dict[str, str]:
    return page.evaluate(
        """() => { const s = document.getElementById('connection-status');
                   return {state: s.dataset.state, waiting: s.dataset.waiting, attention: s.dataset.attention}; }"""
    )


def wait_waiting(page, count: int, timeout: float = 30000) -> None:
    page.wait_for_function(
        f"() => document.getElementById('connection-status').dataset.waiting === '{count}'",
        timeout=timeout,
    )


def patients(server, number: str) -> int:
    return server.scalar("SELECT count(*) FROM patients WHERE nhs_number = :n", n=number)


def audit_count(server, action: str, entity_type: str, user: str | None = None) -> int:
    sql = "SELECT count(*) FROM audit_events a WHERE a.action = :action AND a.entity_type = :entity"
    if user is None:
        return server.scalar(sql, action=action, entity=entity_type)
    return server.scalar(
        sql + " AND a.user_id = (SELECT id FROM users WHERE email = :email)",
        action=action,
        entity=entity_type,
        email=user,
    )


# --- scenarios -----------------------------------------------------------------------------------


def test_offline_save_waits_reload_shows_offline_page_then_saved_once(context, server):
    page = context.new_page()
    sign_in(page, ALICE)
    episode = register(page, nhs_number())
    page.goto(f"/episodes/{episode}")
    ready(page)
    controlled(page)

    form = page.locator("form[data-offline-form$='-assessment']")
    context.set_offline(True)
    form.locator("#height_cm").fill("162")
    form.locator("#weight_kg").fill("58")
    form.locator("button[type=submit]").click()
    notice = page.locator("[data-offline-notice=saved]")
    notice.wait_for()
    assert SAVED in notice.inner_text()
    assert notice.locator("[data-offline-waiting-count]").inner_text() == "1 save waiting on this device."
    assert status(page) == {"state": "offline", "waiting": "1", "attention": "0"}

    page.reload()
    ready(page)
    assert "No connection to the server" in page.locator("h1").inner_text()
    row = page.locator("[data-offline-item]")
    assert row.count() == 1
    assert row.get_attribute("data-state") == "waiting"
    # The offline page came from the service worker: nothing of the patient's page is in it.
    assert "162" not in page.content().split("data-offline-rows")[0]

    context.set_offline(False)
    page.goto(f"/episodes/{episode}")
    ready(page)
    wait_waiting(page, 0)
    assert server.scalar("SELECT height_cm FROM episodes WHERE id = :id", id=episode) == 162
    assert server.scalar("SELECT count(*) FROM submissions") == 2  # registration + assessment
    assert audit_count(server, "update", "episode") == 1


def test_response_lost_after_commit_is_retried_and_saved_once(browser, server):
    # page.route does not see requests that pass a service worker: this context has none.
    context = browser.new_context(base_url=server.url, service_workers="block")
    page = context.new_page()
    sign_in(page, ALICE)
    number = nhs_number()
    page.goto("/patients/new")
    ready(page)
    lost = []

    def lose_the_answer(route):
        if not lost:
            response = route.fetch()  # the server commits...
            lost.append(response.status)
            route.abort("connectionreset")  # ...and its answer never arrives
        else:
            route.continue_()

    page.route("**/patients/new", lambda route: lose_the_answer(route) if route.request.method == "POST" else route.continue_())
    fill_registration(page, number)
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    assert lost == [200] or lost == [204] or lost and lost[0] < 400
    assert patients(server, number) == 1
    page.click("[data-offline-send-now]")
    wait_waiting(page, 0)
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1
    assert server.scalar("SELECT count(*) FROM submissions") == 1
    context.close()


def test_server_stopped_during_save_then_restarted_saves_once(context, server):
    page = context.new_page()
    sign_in(page, ALICE)
    number = nhs_number()
    page.goto("/patients/new")
    ready(page)
    fill_registration(page, number)
    server.stop()
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    assert status(page)["waiting"] == "1"
    server.start()
    # Sent by the timer once /ping answers again (no `online` event: the network never went away).
    wait_waiting(page, 0, timeout=60000)
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1


def test_browser_closed_with_a_save_waiting_sends_it_once_when_reopened(playwright_instance, server, tmp_path):
    profile = tmp_path / "profile"
    number = nhs_number()

    def launch():
        return playwright_instance.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, base_url=server.url
        )

    context = launch()
    page = context.new_page()
    sign_in(page, ALICE)
    page.goto("/patients/new")
    ready(page)
    fill_registration(page, number)
    context.set_offline(True)
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    context.close()
    assert patients(server, number) == 0

    context = launch()
    page = context.pages[0] if context.pages else context.new_page()
    page.goto("/")
    ready(page)
    wait_waiting(page, 0)
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient", ALICE) == 1
    context.close()
