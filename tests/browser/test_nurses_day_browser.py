"""Issue 18 in a real browser: the pages of the nurse's day (find a patient and its results, a
worklist and its print view, the episode with its contact attempts and letters, a draft and a
final letter, the lead's settings) are axe-clean at a phone's width (390 px) and a desktop's
(1280 px); the contact attempt and letter forms work with JavaScript off and keep what was typed
when refused."""

from __future__ import annotations

import pytest

from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    named_patient_100_days_on,
    sign_in_browser,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280)


def _clean(page) -> None:
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_of_the_nurses_day_are_axe_clean(live_server, page, width):
    service = live_server.make_service()
    lead = live_server.make_user(role="lead", services=[service])
    _, episode_id = named_patient_100_days_on(live_server, service)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_browser(page, live_server, lead)

    page.goto(live_server.url_for("/patients/find"))
    _clean(page)
    page.fill("#family_name", "bronte")
    with page.expect_navigation():
        page.click("#find-save")
    assert "1 patient found" in page.inner_text("#search-results")
    assert "999 590 8301" in page.inner_text("#search-results")
    _clean(page)

    for url in ("/worklists/followup16", "/worklists/due-soon", "/worklists/followup16/print"):
        page.goto(live_server.url_for(url))
        wait_for_htmx(page)
        _clean(page)
    assert "Zoë Brontë" in page.inner_text("main")

    page.goto(live_server.url_for(f"/episodes/{episode_id}"))
    wait_for_htmx(page)
    _clean(page)
    with page.expect_navigation():
        page.click("button[name=kind][value=gp]")
    assert "/letters/" in page.url
    _clean(page)
    with page.expect_navigation():
        page.click("button[name=action][value=final]")
    assert "Final" in page.inner_text("h1")
    _clean(page)

    page.goto(live_server.url_for("/service/settings"))
    _clean(page)


def test_contact_attempt_and_letter_forms_without_javascript(live_server, _chromium):
    service = live_server.make_service()
    nurse = live_server.make_user(role="clinician", services=[service])
    _, episode_id = named_patient_100_days_on(live_server, service)
    context = _chromium.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/auth/sign-in")
        page.fill("#email", nurse.email)
        page.fill("#password", nurse.password)
        with page.expect_navigation():
            page.click("#maincontent form button[type=submit]")
        page.goto(f"/episodes/{episode_id}")
        page.fill("#note", "Rang the landline")
        with page.expect_navigation():
            page.click("#contact-save")  # no method or outcome chosen
        assert "Choose how" in page.inner_text("#method-error")
        assert page.input_value("#note") == "Rang the landline"
        page.check('input[name="method"][value="Telephone"]')
        page.check('input[name="outcome"][value="No answer"]')
        with page.expect_navigation():
            page.click("#contact-save")
        assert "Contact attempt recorded." in page.inner_text("#maincontent")
        assert "Rang the landline" in page.inner_text("#contact-attempts")

        with page.expect_navigation():
            page.click("button[name=kind][value=patient]")
        page.fill("#body", "")
        with page.expect_navigation():
            page.click("#letter-save")
        assert "needs its text" in page.inner_text("#body-error")
        page.fill("#body", "Dear Zoë,\nWe will call you soon.")
        with page.expect_navigation():
            page.click("button[name=action][value=final]")
        assert "Final" in page.inner_text("h1")
    finally:
        context.close()
