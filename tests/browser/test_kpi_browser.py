"""KPI pages in a real browser: public benchmarks and run charts, the service page and a run chart,
with the strict CSP, images that load, and no accessibility violations (axe)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    sign_in_browser,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser


def _episodes(server, service, count: int, year: int = 2024) -> None:
    from portal.extensions import db
    from portal.models import Episode, Patient

    with server.app.app_context():
        for number in range(count):
            fracture_date = date(year, 1, 3) + timedelta(days=(number * 11) % 360)
            patient = Patient(
                service_id=service.id,
                nhs_number=str(4100000000 + service.id * 1000 + number),
                date_of_birth=date(1945, 2, 1),
                sex="Female",
                postcode="LS1 4AB",
                care_home_resident="No",
            )
            db.session.add(patient)
            db.session.flush()
            db.session.add(
                Episode(
                    service_id=service.id,
                    patient_id=patient.id,
                    fracture_date=fracture_date,
                    fracture_sites="Spine" if number % 4 == 0 else "Wrist",
                    assessment_date=fracture_date + timedelta(days=20 + number % 90),
                    falls_assessed="Yes" if number % 3 else "No",
                    bone_therapy="Alendronate" if number % 2 else "Not appropriate",
                )
            )
        db.session.commit()


def _assert_clean(page_log) -> None:
    assert page_log.problems() == [], page_log.problems()


def _images_loaded(page) -> bool:
    return page.evaluate(
        "() => [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)"
    )


def test_public_benchmarks_and_run_chart(page, page_log, live_server):
    north = live_server.make_service("NTH", "North Fracture Liaison Service")
    south = live_server.make_service("STH", "South Fracture Liaison Service")
    _episodes(live_server, north, 60)
    _episodes(live_server, south, 3)

    page.goto(live_server.url_for("/benchmarks/?year=2024"))
    wait_for_htmx(page)
    table = page.locator("table.portal-benchmarks")
    assert table.locator("tbody tr").count() == 3
    assert table.locator("tbody tr").first.inner_text().startswith("National")
    assert "fewer than 5" in table.locator("tbody tr").nth(2).inner_text()  # STH, 3 episodes
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)

    with page.expect_navigation():
        page.click("th[scope=col] >> text=KPI 3")
    wait_for_htmx(page)
    assert "sort=kpi3" in page.url

    with page.expect_navigation():
        page.click("tr:has-text('NTH') td >> nth=2 >> a")  # KPI 3 of NTH
    wait_for_htmx(page)
    assert page.locator("h1").inner_text().startswith("KPI 3")
    page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
    assert _images_loaded(page)
    assert "months shown" in page.locator("figcaption").inner_text()
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)
    _assert_clean(page_log)


def test_service_kpi_page_and_run_chart_for_a_lead(page, page_log, live_server):
    # A code of its own: the live server's figure cache outlives the tables emptied between tests.
    east = live_server.make_service("EST", "East Fracture Liaison Service")
    _episodes(live_server, east, 40)
    lead = live_server.make_user("lead", [east])
    sign_in_browser(page, live_server, lead)

    page.click(".nhsuk-header__navigation-link >> text=KPIs")
    wait_for_htmx(page)
    page.check("#period-kind-year")
    page.select_option("#period-year", "2024")
    with page.expect_navigation():
        page.click("form.portal-period-picker button[type=submit]")
    wait_for_htmx(page)
    rows = page.locator("table.portal-kpi-table tbody tr")
    assert rows.count() == 11
    assert "Spine fractures" in rows.nth(2).inner_text()
    assert rows.nth(2).locator(".portal-kpi-band").count() == 1
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)

    with page.expect_navigation():
        rows.nth(3).locator("th a").click()
    wait_for_htmx(page)
    assert page.locator("h1").inner_text() == "KPI 4: FLS assessment within 90 days"
    page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
    assert _images_loaded(page)
    assert page.locator("table.nhsuk-table tbody tr").count() == 12
    _assert_clean(page_log)
