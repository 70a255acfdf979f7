"""The built front-end assets in a real browser: NHS.UK look, own origin only, strict CSP holds."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    sign_in_browser,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser

NHS_BLUE = "rgb(0, 94, 184)"


def _hosts(urls: list[str]) -> set[str]:
    return {urlsplit(url).hostname for url in urls if not url.startswith(("data:", "blob:"))}


def _assert_clean(page_log) -> None:
    assert page_log.csp_violations == []
    assert page_log.problems() == []
    assert _hosts(page_log.requests) == {"127.0.0.1"}, page_log.requests


def test_sign_in_page_has_the_nhs_look_and_stays_on_its_own_origin(page, page_log, live_server):
    response = page.goto("/auth/sign-in")
    wait_for_htmx(page)
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]

    _assert_clean(page_log)
    # Every file under its fingerprinted name (scripts/build-assets.mjs, portal/static_files.py).
    requested = {re.sub(r"\.[0-9a-f]{12}\.", ".", urlsplit(url).path) for url in page_log.requests}
    for asset in (
        "/static/dist/vendor/nhsuk.css",
        "/static/dist/vendor/htmx.min.js",
        "/static/dist/vendor/nhsuk-init.js",
        "/static/dist/vendor/offline.js",
        "/static/dist/css/portal.css",
        "/static/dist/js/portal.js",
    ):
        assert asset in requested

    header = page.locator("header.nhsuk-header")
    assert header.evaluate("el => getComputedStyle(el).backgroundColor") == NHS_BLUE
    # No web font: the page falls back to Arial / sans-serif, never a serif default.
    font = page.evaluate("() => getComputedStyle(document.body).fontFamily")
    assert font.lower().startswith("arial")
    assert page.evaluate("() => document.fonts.size") == 0

    # Our scripts ran: the body is marked and the NHS.UK components started.
    classes = page.evaluate("() => [...document.body.classList]")
    assert {"js-enabled", "nhsuk-frontend-supported"} <= set(classes)
    assert page.locator("header[data-nhsuk-header-init]").count() == 1
    assert page.evaluate("() => window.htmx.version").startswith("2.0.")
    # The offline bundle (js/offline/ with idb) ran under the CSP and read the device.
    page.wait_for_function("() => document.documentElement.dataset.offlineReady === 'yes'")


def test_signed_in_admin_page_renders_header_account_and_navigation(page, page_log, live_server):
    north = live_server.make_service("NTH", "North Fracture Liaison Service")
    south = live_server.make_service("STH", "South Fracture Liaison Service")
    admin = live_server.make_user("admin", [north, south], display_name="Ada Admin")

    sign_in_browser(page, live_server, admin)
    page.goto("/admin/users")
    wait_for_htmx(page)

    _assert_clean(page_log)
    account = page.locator("nav.nhsuk-header__account")
    assert "Ada Admin" in account.inner_text()
    # The switcher keeps its button; choosing a service alone does not submit the form.
    switch = page.locator("#service-switch")
    assert switch.locator("option").count() == 2
    switch.select_option(label="STH - South Fracture Liaison Service")
    page.wait_for_timeout(300)
    assert urlsplit(page.url).path == "/admin/users"
    with page.expect_navigation():
        page.click(".portal-service-switch button[type=submit]")
    wait_for_htmx(page)
    assert page.locator("#service-switch").input_value() == str(south.id)

    assert page.locator("#sign-out-form").count() == 1
    assert page.locator("#connection-status").count() == 1
    current = page.locator(".nhsuk-header__navigation-item--current a")
    assert current.get_attribute("aria-current") == "page"
    assert current.inner_text().strip() == "Users"
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)
    _assert_clean(page_log)


def test_narrow_screen_keeps_header_usable_without_csp_errors(page, page_log, live_server):
    admin = live_server.make_user("admin", [live_server.make_service()], display_name="Ada Admin")
    page.set_viewport_size({"width": 320, "height": 800})
    sign_in_browser(page, live_server, admin)
    wait_for_htmx(page)
    # Every navigation link is either shown or reachable through the header's "More" menu.
    links = page.locator(".nhsuk-header__navigation-list a.nhsuk-header__navigation-link")
    assert links.count() >= 4
    assert page.locator("#sign-out-form button").is_visible()
    no_horizontal_scroll = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_horizontal_scroll)
    _assert_clean(page_log)


def test_htmx_requests_carry_the_csrf_token_from_the_meta_tag(page, live_server):
    admin = live_server.make_user("admin", [live_server.make_service()])
    sign_in_browser(page, live_server, admin)
    token = page.get_attribute('meta[name="csrf-token"]', "content")

    with page.expect_request("**/csrf-token") as request_info:
        page.evaluate("() => htmx.ajax('GET', '/csrf-token', {swap: 'none'})")
    assert request_info.value.headers.get("x-csrftoken") == token


def test_error_summary_takes_focus_and_has_no_accessibility_violations(page, page_log, live_server):
    page.goto("/auth/sign-in")
    page.click("form button[type=submit]")
    wait_for_htmx(page)

    summary = page.locator(".nhsuk-error-summary")
    assert summary.count() == 1
    assert page.evaluate("() => document.activeElement.classList.contains('nhsuk-error-summary')")
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)
    assert page_log.csp_violations == []


def test_saved_message_is_an_nhs_banner_that_takes_focus(page, page_log, live_server):
    clinician = live_server.make_user("clinician", [live_server.make_service()])
    sign_in_browser(page, live_server, clinician)
    page.goto("/auth/password")
    # Confirm it is you first (issue 23), then the new password.
    page.fill("#password", clinician.password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    wait_for_htmx(page)
    assert page.url.endswith("/auth/password")
    page.fill("#password", "Ample-Orchid-Lantern-42")
    page.fill("#confirm", "Ample-Orchid-Lantern-42")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    wait_for_htmx(page)

    banner = page.locator(".nhsuk-notification-banner--success")
    assert "Your password has been changed." in banner.inner_text()
    assert page.evaluate(
        "() => document.activeElement.classList.contains('nhsuk-notification-banner--success')"
    )
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)
    _assert_clean(page_log)


def test_sign_out_returns_to_sign_in_with_a_message(page, page_log, live_server):
    clinician = live_server.make_user("clinician", [live_server.make_service()])
    sign_in_browser(page, live_server, clinician)
    with page.expect_navigation():
        page.click("#sign-out-form button")
    wait_for_htmx(page)
    assert "/auth/sign-in" in page.url
    assert "You have signed out." in page.locator(".portal-flash").inner_text()
    assert page.locator("#sign-out-form").count() == 0
    _assert_clean(page_log)
