"""Issue 19 in a real browser: the treatment plan's forms and the new stage fields at a phone's
width (390 px) and a desktop's (1280 px), axe-clean with and without errors, no sideways scroll;
the same forms with JavaScript off; a dose recorded offline waits in the outbox and is saved once.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal import clock
from tests.browser.helpers import axe_violations, describe_violations, wait_for_htmx
from tests.browser.test_journey import _register
from tests.browser.test_offline_forms import (
    ALICE,
    SAVED,
    alice_on_new_episode,
    audit_count,
    browser,  # noqa: F401  (fixture)
    controlled,
    ready,
    server,  # noqa: F401  (fixture)
    wait_waiting,
)

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280)


def _clean(page) -> None:
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)
    assert page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), "the page scrolls sideways"


def _fill_date(page, prefix: str, day: date) -> None:
    page.fill(f"#{prefix}-day", str(day.day))
    page.fill(f"#{prefix}-month", str(day.month))
    page.fill(f"#{prefix}-year", str(day.year))


@pytest.fixture
def lead(live_server, page):
    from tests.browser.helpers import sign_in_browser

    service = live_server.make_service()
    user = live_server.make_user(role="lead", services=[service])
    sign_in_browser(page, live_server, user)
    return service


@pytest.mark.parametrize("width", WIDTHS)
def test_treatment_plan_and_new_fields_are_axe_clean(live_server, page, lead, width):
    page.set_viewport_size({"width": width, "height": 900})
    _register(page, live_server)
    _clean(page)
    # The new assessment fields, saved with htmx; a very high risk shows NOGG's advice.
    page.check('input[name="nogg_risk_category"][value="Very high"]')
    page.select_option("#mobility_before_fracture", "Mobile outdoors with one aid")
    page.click("#stage-assessment-save")
    wait_for_htmx(page)
    page.reload()
    wait_for_htmx(page)
    assert "Consider anabolic treatment first (NOGG 2022)" in page.inner_text("#stage-treatment")
    # Start a drug: refused first (nothing typed), then saved.
    page.click("#treatment-plan summary:has-text('Start a drug')")
    page.click("#start-save")
    wait_for_htmx(page)
    assert page.is_visible("#treatment-plan .nhsuk-error-summary")
    _clean(page)
    page.select_option("#start-drug", "Denosumab")
    page.select_option("#start-route", "Subcutaneous")
    _fill_date(page, "start-started_on", clock.today() - timedelta(days=300))
    page.click("#start-save")
    wait_for_htmx(page)
    assert "Denosumab injection" in page.inner_text("#treatment-plan")
    page.click("#treatment-plan summary:has-text('Stop or switch')")
    _clean(page)
    page.goto(live_server.url_for("/worklists/treatment-due"))
    wait_for_htmx(page)
    assert "Denosumab injection" in page.inner_text("main")
    _clean(page)


def test_treatment_forms_work_without_javascript(live_server, _chromium):
    service = live_server.make_service()
    user = live_server.make_user(role="clinician", services=[service])
    context = _chromium.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/auth/sign-in")
        page.fill("#email", user.email)
        page.fill("#password", user.password)
        with page.expect_navigation():
            page.click("#maincontent form button[type=submit]")
        _register_without_js(page)
        page.click("#treatment-plan summary:has-text('Start a drug')")
        page.select_option("#start-drug", "Zoledronate")
        page.select_option("#start-route", "Intravenous")
        _fill_date(page, "start-started_on", clock.today() + timedelta(days=3))
        with page.expect_navigation():
            page.click("#start-save")
        assert "cannot be in the future" in page.inner_text("#start-started_on-error")
        assert page.input_value("#start-drug") == "Zoledronate"  # what was typed stays
        _fill_date(page, "start-started_on", clock.today() - timedelta(days=30))
        with page.expect_navigation():
            page.click("#start-save")
        assert page.url.endswith("#treatment-plan")
        assert "Zoledronate infusion" in page.inner_text("#treatment-plan")
    finally:
        context.close()


def _register_without_js(page) -> None:
    fracture = clock.today() - timedelta(days=200)
    page.goto("/patients/new")
    page.fill("#nhs_number", "4857773457")
    for name, day in (("date_of_birth", date(1950, 6, 15)), ("fracture_date", fracture)):
        _fill_date(page, name, day)
    page.check('input[name="sex"][value="Female"]')
    page.check('input[name="fracture_sites"][value="Wrist"]')
    with page.expect_navigation():
        page.click("#register-save")
    assert "/episodes/" in page.url


def test_a_dose_recorded_offline_is_sent_later_and_saved_once(browser, server):  # noqa: F811
    context = browser.new_context(base_url=server.url)
    try:
        page, episode = alice_on_new_episode(context)
        controlled(page)
        page.click("#treatment-plan summary:has-text('Start a drug')")
        page.select_option("#start-drug", "Denosumab")
        page.select_option("#start-route", "Subcutaneous")
        _fill_date(page, "start-started_on", clock.today() - timedelta(days=10))
        page.click("#start-save")
        page.wait_for_function("() => !document.querySelector('.htmx-request')")
        page.locator("#treatment-plan summary:has-text('Record a dose')").wait_for()
        page.click("#treatment-plan summary:has-text('Record a dose')")
        form = page.locator("form[data-offline-form*='-treatment-dose-']")
        context.set_offline(True)
        key = form.get_attribute("data-offline-form")
        day = clock.today() - timedelta(days=1)
        for part, value in (("day", day.day), ("month", day.month), ("year", day.year)):
            form.locator(f"input[name='given_on-{part}']").fill(str(value))
        form.locator("button[type=submit]").click()
        notice = page.locator(f"[data-offline-notice-for='{key}']")
        notice.wait_for()
        assert SAVED in notice.inner_text()
        context.set_offline(False)
        page.goto(f"/episodes/{episode}")
        ready(page)
        wait_waiting(page, 0)
        assert server.scalar("SELECT count(*) FROM treatment_events WHERE kind = 'dose'") == 1
        assert audit_count(server, "create", "treatment_event", ALICE) == 1
    finally:
        context.close()
