"""The patient journey in a real browser: register a patient, fill all five stages with htmx,
meet an error and fix it, check the database; axe-core on the registration page, the episode page
and a worklist."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal import clock
from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    sign_in_browser,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser

FRACTURE = clock.today() - timedelta(days=400)
NHS = "4857773457"


def _date(page, name, day):
    page.fill(f"#{name}-day", str(day.day))
    page.fill(f"#{name}-month", str(day.month))
    page.fill(f"#{name}-year", str(day.year))


def _choose(page, name, value):
    page.check(f'input[name="{name}"][value="{value}"]')


def _save(page, stage):
    page.click(f"#stage-{stage}-save")
    wait_for_htmx(page)


def _focused_id(page):
    return page.evaluate(
        "() => document.activeElement && (document.activeElement.id || document.activeElement.className)"
    )


@pytest.fixture
def clinician(live_server, page):
    service = live_server.make_service()
    user = live_server.make_user(role="clinician", services=[service])
    sign_in_browser(page, live_server, user)
    return service


def _register(page, live_server):
    page.goto(live_server.url_for("/patients/find"))
    page.fill("#nhs_number", "485 777 3457")
    with page.expect_navigation():
        page.click("#maincontent form button[type=submit]")
    with page.expect_navigation():
        page.click("text=Register this patient")
    wait_for_htmx(page)
    assert page.input_value("#nhs_number") == NHS
    _date(page, "date_of_birth", date(1950, 6, 15))
    _choose(page, "sex", "Female")
    page.fill("#postcode", "ls1 4ap")
    _choose(page, "care_home_resident", "No")
    _date(page, "fracture_date", FRACTURE)
    _date(page, "identification_date", FRACTURE + timedelta(days=2))
    _choose(page, "admitted", "Yes")
    page.check('input[name="fracture_sites"][value="Hip"]')
    with page.expect_navigation():
        page.click("#register-save")
    wait_for_htmx(page)
    assert "/episodes/" in page.url


def test_register_and_fill_every_stage_with_an_error_fixed(live_server, page, page_log, clinician):
    _register(page, live_server)
    episode_url = page.url

    # Assessment: DXA reason appears only when DXA is not recommended.
    assert page.is_hidden("#dxa_not_recommended_reason")
    _choose(page, "dxa_status", "Not recommended")
    assert page.is_visible("#dxa_not_recommended_reason")
    assert page.is_hidden("#dxa_date")
    _date(page, "assessment_date", FRACTURE + timedelta(days=20))
    page.fill("#height_cm", "300")
    page.fill("#weight_kg", "61.5")
    for name, value in [
        ("previous_fracture", "No"),
        ("parental_hip_fracture", "Not known"),
        ("smoker", "Never"),
        ("on_bone_therapy_at_fracture", "No"),
        ("dxa_not_recommended_reason", "Treat without DXA"),
        ("falls_assessed", "Yes"),
        ("falls_referred", "No"),
    ]:
        _choose(page, name, value)
    _save(page, "assessment")
    # The error: in the summary (focused) and beside the field, with everything typed kept.
    assert page.is_visible("#stage-assessment .nhsuk-error-summary")
    assert _focused_id(page).startswith("nhsuk-error-summary")
    assert "Height (cm)" in page.inner_text("#height_cm-error")
    assert page.input_value("#weight_kg") == "61.5"
    assert page.is_checked('input[name="dxa_not_recommended_reason"][value="Treat without DXA"]')
    assert page.is_visible("#dxa_not_recommended_reason")
    page.click("#stage-assessment .nhsuk-error-summary a")
    assert page.evaluate("() => document.activeElement.id") == "height_cm"
    page.fill("#height_cm", "165")
    _save(page, "assessment")
    assert page.is_visible("#stage-assessment .portal-saved")
    assert "portal-saved" in _focused_id(page)
    assert "Complete" in page.inner_text("#stage-assessment-title")

    # Treatment.
    page.check('input[name="bone_therapy"][value="Alendronate"]')
    _choose(page, "calcium_vitd", "Yes")
    _save(page, "treatment")
    assert page.is_visible("#stage-treatment .portal-saved")

    # Monitoring at 12-16 weeks: the date appears only when the contact was done.
    assert page.is_hidden("#followup16_date")
    _choose(page, "followup16_done", "Yes")
    assert page.is_visible("#followup16_date")
    _date(page, "followup16_date", FRACTURE + timedelta(days=100))
    page.select_option("#therapy16", "Alendronate")
    _choose(page, "strength_balance16", "Yes")
    _save(page, "followup16")
    assert page.is_visible("#stage-followup16 .portal-saved")

    # Follow-up at 12 months.
    _choose(page, "followup52_done", "Yes")
    _date(page, "followup52_date", FRACTURE + timedelta(days=360))
    page.select_option("#therapy52", "Alendronate")
    _choose(page, "refracture", "No")
    _save(page, "followup52")
    assert page.is_visible("#stage-followup52 .portal-saved")

    # Identification: a correction. Complete since registration, it is folded (issue 22): the
    # nurse opens it from the list of stages.
    page.click("nav.portal-stage-list a[href='#stage-identification']")
    _choose(page, "admitted", "No")
    _save(page, "identification")
    assert page.is_visible("#stage-identification .portal-saved")

    page.goto(episode_url)
    wait_for_htmx(page)
    assert page.locator(".portal-status--complete").count() == 10
    assert not page_log.problems(), page_log.problems()
    assert not page_log.csp_violations

    from portal.extensions import db
    from portal.models import AuditEvent, Episode, Patient, Submission

    with live_server.app.app_context():
        patient = db.session.query(Patient).one()
        episode = db.session.query(Episode).one()
        assert patient.nhs_number == NHS and patient.postcode == "LS1 4AP"
        assert episode.height_cm == 165 and episode.weight_kg == 61.5
        assert episode.dxa_not_recommended_reason == "Treat without DXA"
        assert episode.bone_therapy == "Alendronate" and episode.therapy52 == "Alendronate"
        assert episode.followup16_date == FRACTURE + timedelta(days=100)
        assert episode.followup52_date == FRACTURE + timedelta(days=360)
        assert episode.admitted == "No"
        assert episode.version == 6
        assert db.session.query(Submission).count() == 6  # registration + five stage saves
        assert db.session.query(AuditEvent).filter_by(action="update").count() == 5


def test_no_axe_violation_on_registration_episode_and_worklist(live_server, page, clinician):
    page.goto(live_server.url_for("/patients/new"))
    wait_for_htmx(page)
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)
    # An error state too.
    page.click("#register-save")
    wait_for_htmx(page)
    assert page.is_visible(".nhsuk-error-summary")
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)

    _register(page, live_server)
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)

    page.goto(live_server.url_for("/worklists/incomplete"))
    wait_for_htmx(page)
    assert page.locator("table tbody tr").count() == 1
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)


def test_without_javascript_forms_post_redirect_and_show_errors(live_server, _chromium):
    """JavaScript off: every dependent field is shown, saves post and redirect, errors come back
    on the page beside the field with what was typed."""
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
        page.goto("/patients/new")
        page.fill("#nhs_number", NHS)
        _date(page, "date_of_birth", date(1950, 6, 15))
        _choose(page, "sex", "Male")
        _date(page, "fracture_date", FRACTURE)
        page.check('input[name="fracture_sites"][value="Spine"]')
        with page.expect_navigation():
            page.click("#register-save")
        assert "/episodes/" in page.url
        assert page.is_visible("#dxa_not_recommended_reason")  # nothing hidden without JS
        _date(page, "followup16_date", FRACTURE - timedelta(days=1))
        _choose(page, "followup16_done", "Yes")
        with page.expect_navigation():
            page.click("#stage-followup16-save")
        assert "cannot be before the fracture was diagnosed" in page.inner_text(
            "#followup16_date-error"
        )
        assert page.input_value("#followup16_date-day") == str((FRACTURE - timedelta(days=1)).day)
        _date(page, "followup16_date", FRACTURE + timedelta(days=90))
        with page.expect_navigation():
            page.click("#stage-followup16-save")
        assert page.url.endswith("#stage-followup16")
        assert "Monitoring at 12-16 weeks saved." in page.inner_text("#maincontent")
    finally:
        context.close()

    from portal.extensions import db
    from portal.models import Episode

    with live_server.app.app_context():
        episode = db.session.query(Episode).one()
        assert episode.followup16_done == "Yes"
        assert episode.followup16_date == FRACTURE + timedelta(days=90)


def test_worklist_filtered_by_nhs_number_keeps_the_number_out_of_every_address(
    live_server, page, clinician
):
    """Filter a worklist by part of an NHS number, sort it and page it with htmx: the number is
    posted each time and never appears in the address bar or any request's URL."""
    from portal.extensions import db
    from portal.models import Episode, Patient

    with live_server.app.app_context():
        for n in range(55):
            patient = Patient(
                service_id=clinician.id,
                nhs_number=f"{7310000000 + n * 7}",
                date_of_birth=date(1945, 1, 1),
                sex="Female",
            )
            db.session.add(patient)
            db.session.flush()
            db.session.add(
                Episode(
                    service_id=clinician.id,
                    patient_id=patient.id,
                    fracture_date=clock.today() - timedelta(days=100 + n),
                    fracture_sites="Wrist",
                )
            )
        db.session.commit()
    prefix = "7310"
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(live_server.url_for("/worklists/awaiting-assessment"))
    page.fill("#nhs", prefix)
    page.click("#worklist-filters button[type=submit]")
    wait_for_htmx(page)
    assert "55 episodes, page 1 of 2" in page.inner_text("#worklist-table")

    page.click("#worklist-table th >> text=NHS number")  # ascending by number
    wait_for_htmx(page)
    page.click("#worklist-table th >> text=NHS number")  # then descending
    wait_for_htmx(page)
    # The NHS number is the second column (after the name), shown 3-3-4.
    first = page.inner_text("#worklist-table tbody tr:first-child td:nth-child(2)")
    number = f"{7310000000 + 54 * 7}"
    assert first == f"{number[:3]} {number[3:6]} {number[6:]}"

    page.click("#worklist-table .nhsuk-pagination__link--next")
    wait_for_htmx(page)
    table = page.inner_text("#worklist-table")
    assert "55 episodes, page 2 of 2" in table
    assert page.inner_text("#worklist-table tbody tr:last-child td:nth-child(2)") == "731 000 0000"
    assert page.input_value("#nhs") == prefix

    assert prefix not in page.url
    assert [url for url in requested if prefix in url] == []
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)
