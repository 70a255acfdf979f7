"""The pages of issue 20 in a real browser: at a phone's width (390 px) and a desktop's (1280 px)
the document never scrolls sideways (wide tables scroll in their own box), images load under the
strict CSP, and axe finds no accessibility violation."""

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

WIDTHS = (390, 1280)
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def _episodes(server, service, count: int, spine_every: int) -> None:
    from portal.extensions import db
    from portal.models import Episode, Patient

    with server.app.app_context():
        for number in range(count):
            fracture_date = date(2024, 1, 3) + timedelta(days=(number * 11) % 360)
            patient = Patient(
                service_id=service.id,
                nhs_number=str(4200000000 + service.id * 1000 + number),
                date_of_birth=date(1930 + number % 40, 2, 1),
                sex="Female" if number % 3 else "Male",
                care_home_resident="Yes" if number % 7 == 0 else "No",
                date_of_death=fracture_date + timedelta(days=90) if number % 9 == 0 else None,
            )
            db.session.add(patient)
            db.session.flush()
            db.session.add(
                Episode(
                    service_id=service.id,
                    patient_id=patient.id,
                    fracture_date=fracture_date,
                    fracture_sites="Spine"
                    if number % spine_every == 0
                    else "Hip"
                    if number % 5 == 0
                    else "Wrist",
                    assessment_date=fracture_date + timedelta(days=20 + number % 90),
                    bone_therapy="Alendronate" if number % 2 else "Not appropriate",
                )
            )
            if number % 6 == 0:
                db.session.add(
                    Episode(
                        service_id=service.id,
                        patient_id=patient.id,
                        fracture_date=fracture_date + timedelta(days=120),
                        fracture_sites="Wrist",
                    )
                )
        db.session.commit()


def _check(page, page_log, url: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        # A chart is a <picture>: a new width fetches the other rendition; let it arrive rather
        # than cut it off by leaving (the fetch starts a moment after the resize).
        page.wait_for_load_state("networkidle")
        page.wait_for_function("() => [...document.images].every(i => i.complete)")
        page.goto(url, timeout=60_000)
        wait_for_htmx(page)
        # Lazy images (the annual report's run charts) load now, so none is cut off by leaving.
        page.evaluate(
            "() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })"
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"{url} scrolls sideways at {width} px"
    violations = axe_violations(page)
    assert violations == [], f"{url}: " + describe_violations(violations)
    assert page_log.problems() == [], page_log.problems()


def test_public_pages_of_issue_20(page, page_log, live_server):
    north = live_server.make_service("ONO", "North Fracture Liaison Service")
    south = live_server.make_service("OSO", "South Fracture Liaison Service")
    _episodes(live_server, north, 60, 4)
    _episodes(live_server, south, 45, 2)
    for url in (
        "/benchmarks/?year=2024",
        "/benchmarks/funnel/3?year=2024",
        "/benchmarks/ALL/splits?year=2024&split=age",
        "/benchmarks/ONO/splits?year=2024&split=site",
        "/benchmarks/ONO/for-patients?year=2024",
        "/benchmarks/outlier-policy",
    ):
        _check(page, page_log, live_server.url_for(url))
    # The page for patients is one click from the benchmarks table.
    page.goto(live_server.url_for("/benchmarks/?year=2024"))
    with page.expect_navigation():
        page.click("tr:has-text('ONO') >> text=In plain words")
    assert page.locator("h1").inner_text().endswith("for patients and families")


def test_signed_in_pages_of_issue_20(page, page_log, live_server):
    east = live_server.make_service("OEA", "East Fracture Liaison Service")
    west = live_server.make_service("OWE", "West Fracture Liaison Service")
    _episodes(live_server, east, 50, 3)
    _episodes(live_server, west, 40, 5)
    lead = live_server.make_user("lead", [east])
    sign_in_browser(page, live_server, lead)
    year = "kind=year&year=2024&as_of=2025-06-30"
    for url in (
        f"/kpis/?{year}",
        f"/kpis/outcomes?{year}",
        f"/kpis/4/funnel?{year}",
        f"/kpis/splits?{year}&split=sex",
        "/kpis/outliers",
        "/kpis/report?year=2024&as_of=2025-06-30",
    ):
        _check(page, page_log, live_server.url_for(url))


def test_admin_records_hip_fractures(page, page_log, live_server):
    live_server.make_service("OHP", "Hip Fracture Liaison Service")
    admin = live_server.make_user("admin")
    sign_in_browser(page, live_server, admin)
    _check(page, page_log, live_server.url_for("/kpis/hip-fractures"))
    page.select_option("#service", "OHP")
    page.fill("#hip_fractures", "420")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    wait_for_htmx(page)
    assert "Saved OHP's hip fractures" in page.locator("main").inner_text()
    assert page_log.problems() == [], page_log.problems()
