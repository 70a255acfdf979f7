"""The pages issue 23 added, in a real browser at a phone's width (390 px) and a desk's (1280 px),
checked by axe-core: "Confirm it is you" and "Where you are signed in"; ending another session
signs that browser out at its next page."""

from __future__ import annotations

import pytest

from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    sign_in_browser,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280)


def _check_widths(page, what: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        violations = axe_violations(page)
        assert violations == [], f"{what} at {width}px:\n{describe_violations(violations)}"
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{what} scrolls sideways at {width}px"


def test_confirm_it_is_you_then_end_another_session(_chromium, page, page_log, live_server):
    service = live_server.make_service("BRD")
    lead = live_server.make_user(role="lead", services=[service])
    other_context = _chromium.new_context(base_url=live_server.url, service_workers="block")
    other = other_context.new_page()
    try:
        sign_in_browser(other, live_server, lead)
        sign_in_browser(page, live_server, lead)

        page.goto(live_server.url_for("/auth/sessions"))
        wait_for_htmx(page)
        assert page.locator("h1").inner_text() == "Where you are signed in"
        assert page.locator("text=This browser").count() == 1
        _check_widths(page, "Where you are signed in")

        with page.expect_navigation():
            page.click("main form[action$='/end'] button")
        assert "/auth/confirm" in page.url
        assert page.locator("h1").inner_text() == "Confirm it is you"
        _check_widths(page, "Confirm it is you")
        page.fill("#password", "not my password at all")
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        assert page.locator(".nhsuk-error-summary").count() == 1
        _check_widths(page, "Confirm it is you, with an error")
        page.fill("#password", lead.password)
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        assert page.url.endswith("/auth/sessions")
        with page.expect_navigation():
            page.click("main form[action$='/end'] button")
        assert "That session has ended" in page.locator("body").inner_text()

        other.goto(live_server.url_for("/worklists"))
        assert "/auth/sign-in" in other.url
        assert page_log.csp_violations == [] and page_log.page_errors == []
    finally:
        other_context.close()
