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
