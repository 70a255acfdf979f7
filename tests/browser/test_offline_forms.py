"""Offline-tolerant forms in a real browser (spec/offline.md, "How it is tested").

Playwright's Python API drives Debian's chromium against a real portal process on 127.0.0.1 with
a temporary database (tests/browser/portal_process.py), which a test can stop and start again.
Each scenario ends by counting the rows and audit events it expects.
"""

from __future__ import annotations

import os
import random
import re
from datetime import date, timedelta

import pytest

from portal import clock
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.helpers import axe_violations, describe_violations
from tests.browser.portal_process import PASSWORD, ROOT, PortalServer, postgres_database

pytestmark = pytest.mark.browser

ALICE = "alice@nhs.test"
BOB = "bob@nhs.test"
SAVED = "Saved on this device. It will be sent when the connection is back."


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def browser(_chromium):
    """Debian's chromium (tests/browser/conftest.py: skipped loudly without it, failed in CI)."""
    return _chromium


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
    """The offline script has read the device (drafts restored, status shown, first send tried)."""
    page.wait_for_function(
        "() => document.documentElement.dataset.offlineReady === 'yes'", timeout=15000
    )


def settle(page) -> None:
    """No htmx request in flight."""
    page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=15000)


def controlled(page) -> None:
    """The service worker controls the page (so it can answer a reload made offline)."""
    page.wait_for_function(
        "() => navigator.serviceWorker && navigator.serviceWorker.controller !== null",
        timeout=15000,
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
    today = clock.today()
    page.fill("#nhs_number", number)
    fill_date(page, "date_of_birth", date(1948, 3, 12))
    page.check("input[name=sex][value=Female]")
    fill_date(page, "fracture_date", today - timedelta(days=20))
    page.check("input[name=fracture_sites][value=Wrist]")


def open_registration(page, number: str) -> None:
    """The blank registration form, filled in for a new patient."""
    page.goto("/patients/new")
    ready(page)
    fill_registration(page, number)


def alice_registering(context):
    """Alice signed in, with the registration form of a new patient filled in: (page, number)."""
    page = context.new_page()
    sign_in(page, ALICE)
    number = nhs_number()
    open_registration(page, number)
    return page, number


def register(page, number: str) -> int:
    """Register a patient online through the form; returns the new episode's id."""
    open_registration(page, number)
    page.click("#register-save")
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    ready(page)
    return int(re.search(r"/episodes/(\d+)", page.url).group(1))


def alice_on_new_episode(context):
    """Alice signed in, on the page of a patient she has just registered: (page, episode id)."""
    page = context.new_page()
    sign_in(page, ALICE)
    episode = register(page, nhs_number())
    page.goto(f"/episodes/{episode}")
    ready(page)
    return page, episode


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
    page, episode = alice_on_new_episode(context)
    controlled(page)

    form = page.locator("form[data-offline-form$='-assessment']")
    context.set_offline(True)
    form.locator("#height_cm").fill("162")
    form.locator("#weight_kg").fill("58")
    form.locator("button[type=submit]").click()
    notice = page.locator("[data-offline-notice=saved]")
    notice.wait_for()
    assert SAVED in notice.inner_text()
    assert (
        notice.locator("[data-offline-waiting-count]").inner_text()
        == "1 save waiting on this device."
    )
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

    page.route(
        "**/patients/new",
        lambda route: (
            lose_the_answer(route) if route.request.method == "POST" else route.continue_()
        ),
    )
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
    page, number = alice_registering(context)
    server.stop()
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    assert status(page)["waiting"] == "1"
    server.start()
    # Sent by the timer once /ping answers again (no `online` event: the network never went away).
    wait_waiting(page, 0, timeout=60000)
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1


def test_browser_closed_with_a_save_waiting_sends_it_once_when_reopened(browser, server, tmp_path):
    profile = tmp_path / "profile"
    number = nhs_number()

    def launch():
        return browser.browser_type.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, base_url=server.url
        )

    context = launch()
    page = context.new_page()
    sign_in(page, ALICE)
    open_registration(page, number)
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


def assessment(page):
    return page.locator("form[data-offline-form$='-assessment']")


def answered(page, action):
    """Run action (a click) and wait for the answer to the save it makes, then for htmx."""
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/stages/" in r.url, timeout=30000
    ) as response:
        action()
    settle(page)
    return response.value.status


def test_double_click_and_the_same_form_in_two_tabs_save_once(context, server):
    page, number = alice_registering(context)
    page.dblclick("#register-save")
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    episode = int(re.search(r"/episodes/(\d+)", page.url).group(1))
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1

    first, second = page, context.new_page()
    for tab in (first, second):
        tab.goto(f"/episodes/{episode}")
        ready(tab)
        assessment(tab).locator("#height_cm").fill("171")
        assessment(tab).locator("#weight_kg").fill("66")
    # Both tabs press Save at once: the second waits for the first and reuses its submission.
    press = "() => document.querySelector(\"form[data-offline-form$='-assessment'] button[type=submit]\").click()"
    with first.expect_response(lambda r: r.request.method == "POST") as first_answer:
        with second.expect_response(lambda r: r.request.method == "POST") as second_answer:
            first.evaluate(press)
            second.evaluate(press)
    assert first_answer.value.status == 200 and second_answer.value.status == 200
    settle(first)
    settle(second)
    assert server.scalar("SELECT height_cm FROM episodes WHERE id = :id", id=episode) == 171
    assert audit_count(server, "update", "episode") == 1
    assert server.scalar("SELECT count(*) FROM submissions") == 2
    for tab in (first, second):
        assert status(tab)["waiting"] == "0"


def test_session_expired_offline_is_sent_as_the_same_user_never_another(context, server):
    server.stop()
    server.start(IDLE_TIMEOUT_MINUTES="1")
    page, number = alice_registering(context)
    context.set_offline(True)
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    page.wait_for_timeout(62_000)  # the idle limit passes while the ward has no network
    context.set_offline(False)
    page.locator("#connection-status [data-offline-sign-in]").wait_for(timeout=30000)
    assert status(page)["waiting"] == "1"
    assert patients(server, number) == 0

    # Another user signs in on this browser: they neither see nor send Alice's save.
    sign_in(page, BOB, "/waiting")
    page.wait_for_timeout(1500)
    assert status(page)["waiting"] == "0"
    assert page.locator("[data-offline-item]").count() == 0
    assert (
        "Nothing is waiting on this device."
        in page.locator("[data-offline-list-status]").inner_text()
    )
    assert patients(server, number) == 0
    page.click("#sign-out-form button")
    page.wait_for_url(re.compile(r"/auth/sign-in"))

    sign_in(page, ALICE)
    wait_waiting(page, 0)
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient", ALICE) == 1
    assert audit_count(server, "create", "patient", BOB) == 0


def test_two_users_edit_one_stage_see_both_values_and_untouched_fields_merge(browser, server):
    alice_context = browser.new_context(base_url=server.url)
    bob_context = browser.new_context(base_url=server.url)
    alice, bob = alice_context.new_page(), bob_context.new_page()
    sign_in(alice, ALICE)
    episode = register(alice, nhs_number())
    sign_in(bob, BOB, f"/episodes/{episode}")
    alice.goto(f"/episodes/{episode}")
    ready(alice)

    assessment(alice).locator("#height_cm").fill("150")
    assert answered(alice, assessment(alice).locator("button[type=submit]").click) == 200
    assert server.scalar("SELECT height_cm FROM episodes WHERE id = :id", id=episode) == 150

    assessment(bob).locator("#height_cm").fill("160")
    assessment(bob).locator("#weight_kg").fill("61")
    assert answered(bob, assessment(bob).locator("button[type=submit]").click) == 409
    conflict = bob.locator("#choose-height_cm")
    conflict.wait_for()
    assert "160" in conflict.inner_text() and "150" in conflict.inner_text()
    assert bob.locator("#choose-weight_kg").count() == 0  # only Bob changed it: merged
    bob.check("#choose-height_cm-yours")
    assert answered(bob, assessment(bob).locator("button[type=submit]").click) == 200
    assert bob.locator("#choose-height_cm").count() == 0
    assert server.scalar("SELECT height_cm FROM episodes WHERE id = :id", id=episode) == 160
    assert server.scalar("SELECT weight_kg FROM episodes WHERE id = :id", id=episode) == 61
    assert audit_count(server, "update", "episode", ALICE) == 1
    assert audit_count(server, "update", "episode", BOB) == 1
    alice_context.close()
    bob_context.close()


def test_one_submission_replayed_ten_times_makes_one_row(context, server):
    page, number = alice_registering(context)
    statuses = page.evaluate(
        """async () => {
            const form = document.querySelector('form[data-offline-form=register-patient]');
            const body = new URLSearchParams(new FormData(form)).toString();
            const id = form.querySelector('[name=submission_id]').value;
            const token = document.querySelector('meta[name=csrf-token]').content;
            const send = () => fetch(form.getAttribute('hx-post'), {
                method: 'POST', body, credentials: 'same-origin',
                headers: {'Content-Type': 'application/x-www-form-urlencoded', 'HX-Request': 'true',
                          'Idempotency-Key': id, 'X-CSRFToken': token}}).then(r => r.status);
            const first = await Promise.all([send(), send(), send(), send(), send()]);
            const rest = [];
            for (let i = 0; i < 5; i++) { rest.push(await send()); }
            return first.concat(rest);
        }"""
    )
    assert len(statuses) == 10
    assert all(code < 300 for code in statuses), statuses
    assert patients(server, number) == 1
    assert server.scalar("SELECT count(*) FROM submissions") == 1
    assert audit_count(server, "create", "patient") == 1


def test_without_javascript_the_form_saves_and_shows_its_errors(browser, server):
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/auth/sign-in")
    page.fill("input[name=email]", ALICE)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.goto("/patients/new")
    number = nhs_number()
    fill_registration(page, number)
    page.fill("#nhs_number", "12345")
    page.click("#register-save")
    error = page.locator("#nhs_number-error")
    error.wait_for()
    assert error.inner_text().strip()
    assert page.locator(".nhsuk-error-summary").count() == 1
    assert page.input_value("#postcode") == "" and page.input_value("#date_of_birth-year") == "1948"
    assert patients(server, number) == 0

    page.fill("#nhs_number", number)
    page.click("#register-save")
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1
    context.close()


def test_a_draft_comes_back_after_reload_and_can_be_discarded(context, server):
    page, episode = alice_on_new_episode(context)
    assessment(page).locator("#height_cm").fill("158")
    page.wait_for_timeout(1000)  # kept on the device a moment after typing stops

    page.reload()
    ready(page)
    notice = page.locator("[data-offline-notice=restored]")
    assert "Unsaved changes restored" in notice.inner_text()
    assert assessment(page).locator("#height_cm").input_value() == "158"

    page.goto("/waiting")
    ready(page)
    assert page.locator("[data-offline-item]").get_attribute("data-state") == "draft"

    page.goto(f"/episodes/{episode}")
    ready(page)
    page.click("[data-offline-discard]")
    assert assessment(page).locator("#height_cm").input_value() == ""
    page.wait_for_timeout(300)
    page.reload()
    ready(page)
    assert page.locator("[data-offline-notice=restored]").count() == 0
    assert server.scalar("SELECT height_cm FROM episodes WHERE id = :id", id=episode) is None
    assert audit_count(server, "update", "episode") == 0


def device_records(page) -> dict[str, int]:
    """What the offline script keeps in this browser: items, keys, the service worker's pages."""
    return page.evaluate(
        """async () => {
            const db = await new Promise((resolve, reject) => {
                const request = indexedDB.open('fls-portal-offline');
                request.onsuccess = () => resolve(request.result);
                request.onerror = () => reject(request.error);
            });
            const count = (name) => new Promise((resolve) => {
                const request = db.transaction(name).objectStore(name).count();
                request.onsuccess = () => resolve(request.result);
            });
            const result = {items: await count('items'), keys: await count('keys')};
            db.close();
            result.pages = [];
            for (const name of await caches.keys()) {
                if (name.startsWith('fls-portal-pages-')) {
                    const cache = await caches.open(name);
                    for (const request of await cache.keys()) {
                        result.pages.push(new URL(request.url).pathname);
                    }
                }
            }
            result.pages.sort();
            return result;
        }"""
    )


def test_sign_out_asks_when_something_waits_then_clears_the_device(context, server):
    page, episode = alice_on_new_episode(context)
    controlled(page)
    assessment(page).locator("#weight_kg").fill("59")
    page.wait_for_timeout(1000)
    before = device_records(page)
    assert before["items"] >= 1 and before["keys"] == 1
    assert before["pages"] == ["/offline", "/patients/new"]  # the blank form, kept for Alice

    page.click("#sign-out-form button")
    question = page.locator("[data-offline-sign-out]")
    question.wait_for()
    assert "1 form has unsaved changes" in question.inner_text()
    assert "/episodes/" in page.url  # still signed in until the user answers
    page.click("[data-offline-confirm-sign-out]")
    page.wait_for_url(re.compile(r"/auth/sign-in"))
    ready(page)
    after = device_records(page)
    assert after["items"] == 0 and after["keys"] == 0
    assert "/patients/new" not in after["pages"]  # at most the anonymous offline page again
    assert server.scalar("SELECT weight_kg FROM episodes WHERE id = :id", id=episode) is None
    assert server.scalar("SELECT count(*) FROM audit_events WHERE action = 'sign_out'") == 1


def test_a_save_refused_when_sent_later_needs_attention_with_the_servers_reason(context, server):
    page, number = alice_registering(context)
    page.fill("#nhs_number", "12345")
    context.set_offline(True)
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    context.set_offline(False)
    page.wait_for_function(
        "() => document.getElementById('connection-status').dataset.attention === '1'",
        timeout=30000,
    )
    # The form shows the server's answer as if it had been sent at once.
    page.locator("#nhs_number-error").wait_for()
    assert status(page)["waiting"] == "0"

    page.goto("/waiting")
    ready(page)
    row = page.locator("[data-offline-item]")
    assert row.get_attribute("data-state") == "attention"
    assert "NHS number" in row.locator("[data-offline-reason]").inner_text()
    assert patients(server, number) == 0

    open_registration(page, number)
    page.click("#register-save")
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    ready(page)
    assert status(page)["attention"] == "0"
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1


def test_items_kept_over_seven_days_are_flagged_at_sign_in_and_never_dropped(context, server):
    page, number = alice_registering(context)
    context.set_offline(True)
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    # Eight days pass on the device.
    page.evaluate(
        """async () => {
            const db = await new Promise((resolve) => {
                const request = indexedDB.open('fls-portal-offline');
                request.onsuccess = () => resolve(request.result);
            });
            const store = db.transaction('items', 'readwrite').objectStore('items');
            await new Promise((resolve) => {
                store.getAll().onsuccess = (event) => {
                    for (const item of event.target.result) {
                        item.createdAt -= 8 * 24 * 3600 * 1000;
                        store.put(item);
                    }
                    store.transaction.oncomplete = resolve;
                };
            });
            db.close();
        }"""
    )
    page.close()  # (an open tab would send it at the `online` event)
    context.set_offline(False)
    fresh = context.new_page()  # a new tab: its first page is like the first after sign-in
    fresh.goto("/")
    ready(fresh)
    flag = fresh.locator("[data-offline-stale]")
    assert flag.get_attribute("data-offline-stale") == "1"
    assert "more than 7 days" in flag.inner_text()
    wait_waiting(fresh, 0)
    assert patients(server, number) == 1


def test_blank_registration_form_opens_offline_and_each_use_is_its_own_save(context, server):
    page = context.new_page()
    sign_in(page, ALICE)
    page.goto("/patients/new")
    ready(page)
    controlled(page)
    page.reload()  # now fetched through the service worker, which keeps this blank form
    ready(page)
    first, second = nhs_number(), nhs_number()

    context.set_offline(True)
    ids = []
    for number in (first, second):
        page.goto("/patients/new")  # from the worker's cache: the same page, the same id in it
        ready(page)
        assert page.locator("h1").inner_text() == "Register a patient"
        ids.append(page.input_value("input[name=submission_id]"))
        fill_registration(page, number)
        page.click("#register-save")
        page.locator("[data-offline-notice=saved]").wait_for()
    assert ids[0] != ids[1]  # the second use got a fresh id: two patients, not one refused
    assert status(page)["waiting"] == "2"

    context.set_offline(False)
    page.goto("/")
    ready(page)
    wait_waiting(page, 0)
    assert patients(server, first) == 1 and patients(server, second) == 1
    assert audit_count(server, "create", "patient") == 2


def test_open_from_the_offline_list_puts_a_waiting_save_back_in_its_form(context, server):
    page, number = alice_registering(context)
    controlled(page)
    page.reload()  # the blank form, now kept by the service worker
    ready(page)
    fill_registration(page, number)
    context.set_offline(True)
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()

    page.goto("/waiting")  # needs the network: the offline page answers, listing the save
    ready(page)
    assert "No connection to the server" in page.locator("h1").inner_text()
    page.click("[data-offline-item] [data-offline-open]")
    page.wait_for_url(re.compile(r"/patients/new"))
    ready(page)
    assert page.locator("[data-offline-notice=reopened]").count() == 1
    assert page.input_value("#nhs_number") == number
    assert status(page)["waiting"] == "0"  # back in the form as a draft: nothing sent twice

    context.set_offline(False)
    page.click("#register-save")
    page.wait_for_url(re.compile(r"/episodes/\d+"))
    assert patients(server, number) == 1
    assert audit_count(server, "create", "patient") == 1


def test_one_stuck_save_never_blocks_the_others_and_an_expired_token_is_renewed(browser, server):
    # page.route does not see requests that pass a service worker: this context has none.
    context = browser.new_context(base_url=server.url, service_workers="block")
    page, stuck = alice_registering(context)
    server.stop()
    page.click("#register-save")
    page.locator("[data-offline-notice=saved]").wait_for()
    # A second patient from the same page: a new form render, as after a reload.
    other = nhs_number()
    page.evaluate(
        "() => { document.querySelector('[name=submission_id]').value = crypto.randomUUID(); }"
    )
    page.fill("#nhs_number", other)
    page.click("#register-save")
    page.wait_for_function(
        "() => document.getElementById('connection-status').dataset.waiting === '2'"
    )
    server.start()

    answers = []

    def judge(route):
        body = route.request.post_data or ""
        if stuck in body:
            answers.append(503)
            route.fulfill(status=503, body="busy")  # the first (oldest) save keeps failing
        elif not answers.count(400):
            answers.append(400)  # the token expired meanwhile: renewed and sent once more
            route.fulfill(
                status=400,
                content_type="application/json",
                body='{"error": "csrf", "reason": "The CSRF token has expired."}',
            )
        else:
            answers.append("sent")
            route.continue_()

    page.route(
        "**/patients/new",
        lambda route: judge(route) if route.request.method == "POST" else route.continue_(),
    )
    with page.expect_navigation(url=re.compile(r"/episodes/\d+")):
        page.click("[data-offline-send-now]")
    ready(page)
    assert answers == [503, 400, "sent"]
    assert patients(server, other) == 1
    assert patients(server, stuck) == 0
    wait_waiting(page, 1)  # kept, to be tried again: nothing is dropped

    page.unroute("**/patients/new")
    page.goto("/waiting")
    ready(page)
    assert page.locator("[data-offline-item]").get_attribute("data-state") == "waiting"
    page.click("[data-offline-send-now]")
    wait_waiting(page, 0)
    assert patients(server, stuck) == 1
    assert audit_count(server, "create", "patient") == 2
    context.close()


def test_a_new_service_worker_version_never_strands_a_draft(context, server):
    page, episode = alice_on_new_episode(context)
    controlled(page)
    assessment(page).locator("#height_cm").fill("149")
    page.wait_for_timeout(1000)
    static_caches = (
        "async () => (await caches.keys()).filter((n) => n.startsWith('fls-portal-static-'))"
    )
    before = page.evaluate(static_caches)
    assert len(before) == 1

    # A release changes a static file: /sw.js names a new cache version and the browser updates.
    portal_js = ROOT / "portal" / "static" / "js" / "portal.js"
    stat = portal_js.stat()
    os.utime(portal_js, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        page.evaluate(
            "async () => { await (await navigator.serviceWorker.getRegistration()).update(); }"
        )
        page.wait_for_function(
            f"async () => {{ const names = await ({static_caches})(); return names.length === 1 && names[0] !== {before[0]!r}; }}",
            timeout=30000,
        )
    finally:
        os.utime(portal_js, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    page.reload()
    ready(page)
    assert "Unsaved changes restored" in page.locator("[data-offline-notice=restored]").inner_text()
    assert assessment(page).locator("#height_cm").input_value() == "149"


# What an earlier release made on the device, with the browser's own APIs: the database layout
# and a draft sealed as it sealed them (AES-GCM under the user's device key, the user and item id
# as associated data).
OLD_DATABASE = """() => new Promise((resolve, reject) => {
    const request = indexedDB.open('fls-portal-offline', 1);
    request.onupgradeneeded = () => {
        request.result.createObjectStore('keys', {keyPath: 'user'});
        request.result.createObjectStore('items', {keyPath: 'id'}).createIndex('user', 'user');
    };
    request.onsuccess = () => { request.result.close(); resolve(); };
    request.onerror = () => reject(request.error);
})"""

OLD_DRAFT = """async ({height}) => {
    const form = document.querySelector("form[data-offline-form$='-assessment']");
    const fields = [];
    new FormData(form).forEach((value, name) => {
        if (name !== 'csrf_token') fields.push([name, name === 'height_cm' ? height : value]);
    });
    const answer = await (await fetch('/device-key', {headers: {Accept: 'application/json'}})).json();
    const base64 = answer.key.replace(/-/g, '+').replace(/_/g, '/');
    const raw = Uint8Array.from(atob(base64 + '='.repeat((4 - base64.length % 4) % 4)), (c) => c.charCodeAt(0));
    const key = await crypto.subtle.importKey('raw', raw, {name: 'AES-GCM'}, false, ['encrypt']);
    const id = crypto.randomUUID();
    const user = String(answer.user);
    const payload = {
        formKey: form.dataset.offlineForm, pageUrl: location.pathname, action: form.getAttribute('hx-post'),
        title: 'Assessment', fields, submissionId: form.querySelector('[name=submission_id]').value,
    };
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const data = await crypto.subtle.encrypt(
        {name: 'AES-GCM', iv, additionalData: new TextEncoder().encode('fls-portal|' + user + '|' + id)},
        key, new TextEncoder().encode(JSON.stringify(payload)));
    const now = Date.now();
    const record = {id, user, kind: 'draft', state: 'draft', createdAt: now, updatedAt: now,
                    attempts: 0, nextAttemptAt: 0, iv, data, generation: answer.generation};
    const db = await new Promise((resolve) => {
        const request = indexedDB.open('fls-portal-offline');
        request.onsuccess = () => resolve(request.result);
    });
    const layout = {
        version: db.version,
        stores: [...db.objectStoreNames],
        keyPaths: [...db.objectStoreNames].map((name) => db.transaction(name).objectStore(name).keyPath),
        indexes: [...db.transaction('items').objectStore('items').indexNames],
    };
    await new Promise((resolve, reject) => {
        const tx = db.transaction('items', 'readwrite');
        tx.objectStore('items').put(record);
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
    });
    db.close();
    return layout;
}"""


def test_a_draft_kept_by_an_earlier_release_is_restored(context, server):
    first = context.new_page()
    first.goto("/static/css/portal.css")  # this origin, without the offline script
    first.evaluate(OLD_DATABASE)
    first.close()
    page, episode = alice_on_new_episode(context)
    layout = page.evaluate(OLD_DRAFT, {"height": "171"})
    # The script opened the database as it was: the same version, stores, keys and index.
    assert layout == {
        "version": 1,
        "stores": ["items", "keys"],
        "keyPaths": ["id", "user"],
        "indexes": ["user"],
    }

    page.reload()
    ready(page)
    assert "Unsaved changes restored" in page.locator("[data-offline-notice=restored]").inner_text()
    assert assessment(page).locator("#height_cm").input_value() == "171"
    assert server.scalar("SELECT height_cm FROM episodes WHERE id = :id", id=episode) is None


def test_sign_out_says_so_when_the_device_cannot_delete_what_it_keeps(context, server):
    """Clearing is tried twice; when both fail the user is told, before the session ends, that
    the encrypted work is still on this computer, and signs out from that warning."""
    page, episode = alice_on_new_episode(context)
    controlled(page)
    assessment(page).locator("#weight_kg").fill("61")
    page.wait_for_timeout(1000)
    # The browser refuses every deletion from now on (a broken profile, a locked database).
    page.evaluate(
        """() => {
            IDBObjectStore.prototype.delete = function () {
                throw new DOMException('refused', 'UnknownError');
            };
        }"""
    )
    page.click("#sign-out-form button")
    page.locator("[data-offline-sign-out]").wait_for()
    page.click("[data-offline-confirm-sign-out]")
    warning = page.locator("[data-offline-not-cleared]")
    warning.wait_for()
    assert "could not delete your unsent work" in warning.inner_text()
    assert "/episodes/" in page.url  # the session ends only once the user has read it
    assert server.scalar("SELECT count(*) FROM audit_events WHERE action = 'sign_out'") == 0
    warning.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/auth/sign-in"))
    assert server.scalar("SELECT count(*) FROM audit_events WHERE action = 'sign_out'") == 1


# --- the header's states (issue 22) --------------------------------------------------------------
# Every state of the connection status (online, offline, saves waiting, saves needing attention)
# passes axe; the "1 waiting" link was #005eb8 on the header's #004b93 (1.35:1) and no test saw it.


def _header_clean(page, expected: dict[str, str]) -> None:
    page.wait_for_function(
        """(want) => { const s = document.getElementById('connection-status');
                       return Object.entries(want).every(([k, v]) => s.dataset[k] === v); }""",
        arg=expected,
        timeout=30000,
    )
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)
    # Every link in the status reads at 4.5:1 or more against the header (checked by axe above,
    # and here by the colour itself: white, never the NHS blue of a link on white).
    colours = page.evaluate(
        """() => [...document.querySelectorAll('#connection-status a')]
                 .map(a => getComputedStyle(a).color)"""
    )
    assert all(colour == "rgb(255, 255, 255)" for colour in colours), colours


def test_every_state_of_the_header_passes_axe(context, server):
    page, _episode = alice_on_new_episode(context)
    _header_clean(page, {"state": "online", "waiting": "0", "attention": "0"})
    assert "Online" in page.inner_text("#connection-status")

    context.set_offline(True)
    _header_clean(page, {"state": "offline", "waiting": "0"})
    assert "Offline" in page.inner_text("#connection-status")

    # One save waiting on the device: the "1 waiting" link in the header.
    form = page.locator("form[data-offline-form$='-assessment']")
    form.locator("#height_cm").fill("162")
    form.locator("button[type=submit]").click()
    page.locator("[data-offline-notice=saved]").wait_for()
    _header_clean(page, {"state": "offline", "waiting": "1"})
    assert page.locator("#connection-status a.portal-connection__waiting").inner_text() == (
        "1 waiting"
    )

    # A second save the server will refuse: sent when back online, it needs attention.
    followup = page.locator("form[data-offline-form$='-followup16']")
    followup.locator("input[name=followup16_done][value=Yes]").check()
    followup.locator("#followup16_date-day").fill("31")
    followup.locator("#followup16_date-month").fill("2")
    followup.locator("#followup16_date-year").fill("2020")
    followup.locator("button[type=submit]").click()
    wait_waiting(page, 2)
    context.set_offline(False)
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    _header_clean(page, {"state": "online", "waiting": "0", "attention": "1"})
    assert "1 need attention" in page.inner_text("#connection-status")
