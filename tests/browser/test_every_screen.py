"""Issue 22: every page at a phone's width (390 px) and a desktop's (1,280 px): the document never
scrolls sideways (wide tables scroll inside their own labelled region) and axe finds nothing.
Also the episode page's stages as a sequence (complete ones folded, the next one open) with and
without JavaScript, and the plain session-ended message."""

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


def _check(page, url: str, width: int) -> list[str]:
    """What is wrong with one page at one width (empty when nothing)."""
    response = page.goto(url)
    wait_for_htmx(page)
    problems = []
    if response is None or response.status != 200:
        return [f"{url} at {width} px: answered {response and response.status}"]
    overflow = page.evaluate(
        """() => ({scroll: document.documentElement.scrollWidth,
                   client: document.documentElement.clientWidth})"""
    )
    if overflow["scroll"] > overflow["client"]:
        problems.append(
            f"{url} at {width} px: the page is {overflow['scroll']} px wide "
            f"(window {overflow['client']} px)"
        )
    # A region that scrolls must be reachable by keyboard and named for screen readers.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('table')]
                 .filter(t => t.closest('[data-offline-table]') === null || !t.hidden)
                 .filter(t => { const r = t.closest('.portal-table-scroll');
                                return t.classList.contains('nhsuk-table') && (!r ||
                                  r.getAttribute('role') !== 'region' || !r.getAttribute('aria-label')
                                  || r.tabIndex !== 0); }).length"""
    )
    if unlabelled:
        problems.append(f"{url} at {width} px: {unlabelled} table(s) outside a labelled region")
    violations = axe_violations(page)
    if violations:
        problems.append(f"{url} at {width} px:\n{describe_violations(violations)}")
    return problems


def _check_all(page, server, urls, width) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    problems = []
    for url in urls:
        problems += _check(page, server.url_for(url), width)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width", WIDTHS)
def test_public_pages_fit_and_are_axe_clean(live_server, page, width):
    live_server.make_service()
    _check_all(
        page,
        live_server,
        [
            "/auth/sign-in",
            "/offline",
            "/benchmarks/",
            "/benchmarks/BRD/1",
            "/benchmarks/BRD/for-patients",
            "/benchmarks/BRD/splits",
            "/benchmarks/funnel/3",
            "/benchmarks/outlier-policy",
        ],
        width,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_nurses_and_leads_pages_fit_and_are_axe_clean(live_server, page, width):
    service = live_server.make_service()
    lead = live_server.make_user(role="lead", services=[service])
    patient_id, episode_id = named_patient_100_days_on(
        live_server, service, admitted="No", fracture_type="Clinical"
    )
    sign_in_browser(page, live_server, lead)
    _check_all(
        page,
        live_server,
        [
            "/",
            "/patients/find",
            "/patients/find?family_name=bronte",
            "/patients/new",
            f"/patients/{patient_id}",
            f"/patients/{patient_id}/episodes/new",
            f"/episodes/{episode_id}",
            f"/episodes/{episode_id}/history",
            "/worklists",
            "/worklists/awaiting-assessment",
            "/worklists/followup16",
            "/worklists/followup16/print",
            "/worklists/treatment-due",
            "/waiting",
            "/service/settings",
            "/records/",
            "/audit/",
            "/auth/password",
            "/auth/sessions",
            "/auth/two-factor",
        ],
        width,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_kpi_pages_fit_and_are_axe_clean(live_server, page, width):
    service = live_server.make_service()
    lead = live_server.make_user(role="lead", services=[service])
    named_patient_100_days_on(live_server, service, admitted="No", fracture_type="Clinical")
    sign_in_browser(page, live_server, lead)
    _check_all(
        page,
        live_server,
        [
            "/kpis/",
            "/kpis/1",
            "/kpis/3/funnel",
            "/kpis/outcomes",
            "/kpis/splits",
            "/kpis/outliers",
            "/kpis/report",
        ],
        width,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_admins_pages_fit_and_are_axe_clean(live_server, page, width):
    service = live_server.make_service()
    admin = live_server.make_user(role="admin", services=[service])
    named_patient_100_days_on(live_server, service, admitted="No", fracture_type="Clinical")
    sign_in_browser(page, live_server, admin)
    _check_all(
        page,
        live_server,
        [
            "/admin/users",
            "/admin/users/new",
            f"/admin/users/{admin.id}",
            "/admin/services",
            "/admin/services/new",
            f"/admin/services/{service.id}",
            "/episodes/deleted",
            "/kpis/hip-fractures",
            "/audit/",
            "/audit/?date_from=2020-01-01",
        ],
        width,
    )


def test_the_episode_page_shows_the_stages_as_a_sequence(live_server, page):
    service = live_server.make_service()
    nurse = live_server.make_user(role="clinician", services=[service])
    _patient_id, episode_id = named_patient_100_days_on(
        live_server, service, admitted="No", fracture_type="Clinical"
    )
    sign_in_browser(page, live_server, nurse)
    page.goto(live_server.url_for(f"/episodes/{episode_id}"))
    wait_for_htmx(page)

    stages = page.locator("nav.portal-stage-list li")
    assert stages.first.inner_text().startswith("1. Identification")
    current = page.locator("nav.portal-stage-list a[aria-current=step]")
    assert current.count() == 1
    assert "Next to do" in current.locator("xpath=..").inner_text()
    # Complete stages are folded; the next is open.
    fold = page.locator("#stage-identification details.portal-stage__fold")
    assert fold.count() == 1
    assert not fold.evaluate("el => el.open")
    next_stage = current.get_attribute("href")
    assert page.locator(f"{next_stage} details.portal-stage__fold").count() == 0
    assert page.locator(f"{next_stage} form button[type=submit]").is_visible()
    # The stage list jumps to a folded stage and opens it.
    page.click("nav.portal-stage-list a[href='#stage-identification']")
    page.wait_for_function(
        "() => document.querySelector('#stage-identification details').open === true"
    )
    assert page.locator("#stage-identification form button[type=submit]").is_visible()
    # The waiting list will name the stage, the patient and the fracture.
    title = page.locator("#stage-identification form").get_attribute("data-offline-title")
    assert title.startswith("Identification (stage 1 of 5), Zoë Brontë, NHS number 999 590 8301")


def test_a_folded_stage_opens_without_javascript(live_server, _chromium):
    service = live_server.make_service()
    nurse = live_server.make_user(role="clinician", services=[service])
    _patient_id, episode_id = named_patient_100_days_on(
        live_server, service, admitted="No", fracture_type="Clinical"
    )
    context = _chromium.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/auth/sign-in")
        page.fill("#email", nurse.email)
        page.fill("#password", nurse.password)
        with page.expect_navigation():
            page.click("#maincontent form button[type=submit]")
        page.goto(f"/episodes/{episode_id}")
        form = page.locator("#stage-identification form")
        assert not form.is_visible()
        page.click("#stage-identification summary")
        assert form.is_visible()
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        assert "Identification saved." in page.inner_text("#maincontent")
    finally:
        context.close()


def test_a_form_sent_after_the_session_ended_says_so_plainly(live_server, page):
    service = live_server.make_service()
    nurse = live_server.make_user(role="clinician", services=[service])
    _patient_id, episode_id = named_patient_100_days_on(
        live_server, service, admitted="No", fracture_type="Clinical"
    )
    sign_in_browser(page, live_server, nurse)
    page.goto(live_server.url_for(f"/episodes/{episode_id}"))
    wait_for_htmx(page)
    page.wait_for_function("() => document.documentElement.dataset.offlineReady === 'yes'")
    # Signed out elsewhere (another tab, or the session cookie gone) while the form is open.
    page.context.clear_cookies()
    form = page.locator("form[data-offline-form$='-followup16']")
    form.locator("button[type=submit]").click()
    notice = page.locator("[data-offline-notice]").first
    notice.wait_for()
    text = notice.inner_text()
    assert "Your session has ended" in text
    assert "kept on this device" in text
    assert "Sign in again" in text or "sign in again" in text
    for wording in ("CSRF", "token", "400", "401", "status"):
        assert wording not in text
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_remaining_pages_fit_and_are_axe_clean(live_server, page, width, tmp_path):
    """The pages reached from others rather than from the menu: a letter, the treatment plan,
    deleting an episode, the other worklists, re-authentication and an import's own page."""
    from tests.records_csv import csv_text, nhs_number, row

    service = live_server.make_service()
    lead = live_server.make_user(role="lead", services=[service])
    _, episode_id = named_patient_100_days_on(
        live_server, service, admitted="No", fracture_type="Clinical"
    )
    sign_in_browser(page, live_server, lead)
    page.set_viewport_size({"width": width, "height": 900})

    page.goto(live_server.url_for(f"/episodes/{episode_id}"))
    wait_for_htmx(page)
    with page.expect_navigation():
        page.click("button[name=kind][value=gp]")
    letter = page.url.removeprefix(live_server.url)

    path = tmp_path / "episodes.csv"
    cells = [row(service_code="BRD", nhs_number=nhs_number(n)) for n in range(2, 7)]
    path.write_text(csv_text(cells), encoding="utf-8")
    page.goto(live_server.url_for("/records/"))
    page.set_input_files("#file", str(path))
    with page.expect_navigation():
        page.click("text=Check the file")
    page.wait_for_selector("#count-added", timeout=120_000)
    job = page.url.removeprefix(live_server.url)

    _check_all(
        page,
        live_server,
        [
            letter,
            job,
            f"/episodes/{episode_id}/treatment",
            f"/episodes/{episode_id}/delete",
            "/worklists/due-soon",
            "/worklists/dxa-not-done",
            "/worklists/followup52",
            "/worklists/incomplete",
            "/auth/confirm",
        ],
        width,
    )
