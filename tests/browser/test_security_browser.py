"""In a real browser (security.md): no Content-Security-Policy violation on the main pages, second
factor enrolment with the server-made QR code, and the idle-timeout warning with "Stay signed in"."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pyotp
import pytest

from portal import clock
from tests.browser.helpers import sign_in_browser, wait_for_htmx

pytestmark = pytest.mark.browser


def _patient_with_episode(server, service) -> tuple[int, int]:
    from portal.extensions import db
    from portal.models import Episode, Patient

    with server.app.app_context():
        patient = Patient(
            service_id=service.id,
            nhs_number="9434765919",
            date_of_birth=date(1944, 2, 2),
            sex="Female",
        )
        db.session.add(patient)
        db.session.flush()
        episode = Episode(
            service_id=service.id,
            patient_id=patient.id,
            fracture_date=clock.today() - timedelta(days=30),
            fracture_sites="Hip",
        )
        db.session.add(episode)
        db.session.commit()
        return patient.id, episode.id


def test_no_csp_violation_on_the_main_pages(page, page_log, live_server):
    service = live_server.make_service("BRD")
    lead = live_server.make_user(role="lead", services=[service])
    patient_id, episode_id = _patient_with_episode(live_server, service)
    sign_in_browser(page, live_server, lead)
    paths = [
        "/",
        "/patients/find",
        "/patients/new",
        f"/patients/{patient_id}",
        f"/episodes/{episode_id}",
        f"/episodes/{episode_id}/history",
        "/worklists",
        "/kpis/",
        "/records/",
        "/audit/",
        "/auth/password",
        "/auth/two-factor",
    ]
    for path in paths:
        page.goto(live_server.url_for(path))
        wait_for_htmx(page)
        assert page_log.csp_violations == [], (path, page_log.csp_violations)
    # The public pages, signed out.
    page.context.clear_cookies()
    for path in ("/auth/sign-in", "/benchmarks/"):
        page.goto(live_server.url_for(path))
        page.wait_for_load_state("load")
        assert page_log.csp_violations == [], (path, page_log.csp_violations)
    assert page_log.page_errors == []
    # Every request stayed on the portal's own origin.
    assert all(url.startswith(live_server.url) for url in page_log.requests), page_log.requests


def test_admin_enrols_a_second_factor_in_the_browser(page, page_log, live_server):
    admin = live_server.make_user(role="admin", second_factor=False)
    sign_in_browser(page, live_server, admin)
    # Enrolling asks for the password again first (issue 23: a borrowed session cannot enrol).
    assert "/auth/confirm" in page.url
    page.fill("#password", admin.password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.url.endswith("/auth/two-factor")
    qr = page.locator("img.portal-qr")
    qr.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", qr.element_handle())
    secret = re.sub(r"\s", "", page.locator(".portal-secret").inner_text())
    page.fill("#code", pyotp.TOTP(secret).now())
    with page.expect_navigation():
        page.click("form button[type=submit]:has-text('Turn on')")
    codes = page.locator(".portal-recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.goto(live_server.url_for("/admin/users"))
    assert page.url.endswith("/admin/users")
    assert page_log.csp_violations == [] and page_log.page_errors == []


def test_idle_warning_stay_signed_in_then_signed_out(page, page_log, live_server):
    app = live_server.app
    saved = app.config["IDLE_TIMEOUT"], app.config["SESSION_WARNING_SECONDS"]
    app.config["IDLE_TIMEOUT"] = timedelta(seconds=8)
    app.config["SESSION_WARNING_SECONDS"] = 5
    try:
        service = live_server.make_service("BRD")
        nurse = live_server.make_user(role="clinician", services=[service])
        sign_in_browser(page, live_server, nurse)
        warning = page.locator("#session-timeout-warning")
        assert warning.is_hidden()
        warning.wait_for(state="visible", timeout=6_000)
        assert "signed out in" in warning.inner_text()
        page.click("[data-session-stay]")
        warning.wait_for(state="hidden", timeout=3_000)
        stayed_at = time.monotonic()
        ended = page.locator("#session-ended")
        ended.wait_for(state="visible", timeout=12_000)
        assert time.monotonic() - stayed_at >= 7  # the stay reset the timer
        page.reload()
        assert "/auth/sign-in" in page.url
    finally:
        app.config["IDLE_TIMEOUT"], app.config["SESSION_WARNING_SECONDS"] = saved
    assert page_log.csp_violations == [] and page_log.page_errors == []
