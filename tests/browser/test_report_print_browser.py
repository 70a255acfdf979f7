"""Issue 22: the annual report printed by Chromium (page.pdf(), as "Save as PDF" does) on A4 has
every chart, without scrolling first: no chart waits for lazy loading. Also the narrow chart
rendition a phone is served."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.browser.helpers import sign_in_browser, wait_for_htmx
from tests.browser.test_kpi_browser import _episodes

pytestmark = pytest.mark.browser


def _images(reader: PdfReader) -> set[int]:
    """The distinct image objects the pages draw (the report's charts are PNG images)."""
    found = set()
    for page in reader.pages:
        xobjects = page["/Resources"].get_object().get("/XObject")
        for reference in (xobjects.get_object() if xobjects else {}).values():
            if reference.get_object()["/Subtype"] == "/Image":
                found.add(reference.idnum)
    return found


def test_printing_the_annual_report_gives_every_chart(page, live_server):
    west = live_server.make_service("WST", "West Fracture Liaison Service")
    _episodes(live_server, west, 40)
    lead = live_server.make_user("lead", [west])
    sign_in_browser(page, live_server, lead)
    # Twelve charts drawn for the first time (then kept): more than the default 10 s on a busy
    # 2-core machine.
    page.goto(live_server.url_for("/kpis/report?year=2024&as_of=2025-03-15"), timeout=60_000)
    wait_for_htmx(page)
    # Straight to print, without scrolling: every chart must already be there.
    page.emulate_media(media="print")
    assert page.locator("img[loading=lazy]").count() == 0
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    first = reader.pages[0].mediabox
    assert abs(float(first.width) - 595.3) < 1 and abs(float(first.height) - 841.9) < 1  # A4
    charts = page.locator("figure.portal-report-chart img")
    assert charts.count() == 12
    assert page.evaluate(
        "() => [...document.querySelectorAll('figure.portal-report-chart img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert len(_images(reader)) == 12  # 11 run charts and the curve of another fracture


def test_a_phone_gets_the_narrow_chart(_chromium, live_server):
    north = live_server.make_service("NRW", "Narrow Fracture Liaison Service")
    _episodes(live_server, north, 40)
    context = _chromium.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, device_scale_factor=2
    )
    page = context.new_page()
    try:
        page.goto(live_server.url_for("/benchmarks/NRW/4?year=2024"))
        page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
        chosen = page.evaluate("() => document.querySelector('figure img').currentSrc")
        assert "size=narrow" in chosen
        width = page.evaluate(
            "() => document.querySelector('figure img').getBoundingClientRect().width"
        )
        assert width <= 390
    finally:
        context.close()


# NHS.UK lists and tables bleed 2 px either side by design (margin: -2px): allowed.
PRINTED_WIDER_THAN_THE_PAGE = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll('main *')]
    .filter(e => e.getBoundingClientRect().right > width + 2)
    .map(e => `${e.tagName}.${e.className} right ${Math.round(e.getBoundingClientRect().right)} of ${width} in ${e.closest('[id]')?.id}`).slice(0, 3);
}"""


def test_kpi_page_and_worklist_print_cleanly(page, live_server):
    from datetime import date

    from portal.extensions import db
    from portal.models import Episode, Patient

    east = live_server.make_service("PRT", "Print Fracture Liaison Service")
    _episodes(live_server, east, 30)
    with live_server.app.app_context():
        patient = Patient(
            service_id=east.id,
            nhs_number="9434765919",
            date_of_birth=date(1950, 1, 1),
            sex="Female",
            postcode="LS1 4AB",
            care_home_resident="No",
        )
        db.session.add(patient)
        db.session.flush()
        db.session.add(
            Episode(service_id=east.id, patient_id=patient.id, fracture_date=date(2024, 3, 1))
        )
        db.session.commit()
    lead = live_server.make_user("lead", [east])
    sign_in_browser(page, live_server, lead)
    page.set_viewport_size({"width": 794, "height": 1123})  # an A4 page at 96 dpi
    for url in ("/kpis/?kind=year&year=2024&as_of=2025-03-15", "/worklists/awaiting-assessment"):
        page.goto(live_server.url_for(url), timeout=60_000)
        wait_for_htmx(page)
        page.emulate_media(media="print")
        # What is for the screen only (forms, the period picker, breadcrumbs) is not printed.
        for selector in ("main form", ".nhsuk-breadcrumb", ".nhsuk-header__navigation"):
            printed = page.locator(selector).evaluate_all(
                "els => els.filter(e => e.getClientRects().length > 0).map(e => e.outerHTML.slice(0, 120))"
            )
            assert printed == [], f"{selector} is printed on {url}: {printed}"
        assert page.evaluate(PRINTED_WIDER_THAN_THE_PAGE) == [], url
        pdf = PdfReader(io.BytesIO(page.pdf(format="A4")))
        assert len(pdf.pages) >= 1
        page.emulate_media(media="screen")
