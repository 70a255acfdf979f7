"""Issue 22: the annual report as a PDF made on the server (every chart in it), no lazy loading,
KPI 1's two measures labelled as what they are, and the charts' narrow rendition."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from tests.conftest import sign_in

REPORT_2024 = {"year": "2024", "as_of": "2025-03-15"}
YEAR_2024 = {"kind": "year", "year": "2024", "as_of": "2025-03-15"}


def pdf_images(reader: PdfReader) -> set[int]:
    """The distinct image objects the pages of a PDF draw (pages may share one resource
    dictionary, so an image is counted once however many pages list it)."""
    found = set()
    for page in reader.pages:
        xobjects = page["/Resources"].get_object().get("/XObject")
        for reference in (xobjects.get_object() if xobjects else {}).values():
            if reference.get_object()["/Subtype"] == "/Image":
                found.add(reference.idnum)
    return found


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def member(make_user, client, fixture_services):
    aaa, bbb, ccc = fixture_services
    user = make_user("clinician", services=[aaa])
    sign_in(client, user)
    return client


def test_annual_report_loads_every_chart_eagerly_with_a_narrow_rendition(member):
    html = _text(member.get("/kpis/report", query_string=REPORT_2024))
    assert 'loading="lazy"' not in html
    assert html.count("/chart.png?") == 2 * 11  # wide and narrow of each KPI's run chart
    assert html.count("size=narrow") == 12  # and of the curve of another fracture
    assert "/kpis/report.pdf?" in html
    # Each run chart's text alternative is on the page.
    assert len(re.findall(r'<figcaption id="chart-\d+-description"', html)) == 11
    assert "P-chart of KPI 4" in html


def test_annual_report_pdf_has_one_image_per_chart(member):
    response = member.get("/kpis/report.pdf", query_string=REPORT_2024)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert 'filename="annual-report-AAA-2024.pdf"' in response.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(response.data))
    assert len(pdf_images(reader)) == 12  # 11 run charts and the curve of another fracture
    text = re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))
    assert "FLS annual report 2024" in text
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert (round(float(width)), round(float(height))) == (595, 842)  # A4 in points


def test_pdf_of_another_services_report_is_refused(member):
    assert member.get("/kpis/report.pdf", query_string={"service": "BBB"}).status_code == 404


def test_kpi1_measures_are_labelled_on_the_service_page(member):
    html = _text(member.get("/kpis/", query_string=YEAR_2024))
    assert "KPI 1, data completeness: two measures" in html
    assert "Completeness of this service's records" in html
    assert "Services meeting KPI 1, nationally" in html
    assert "of fields complete enough" in html and "of services meet KPI 1" in html


def test_kpi1_measures_are_labelled_in_the_annual_report(member):
    html = _text(member.get("/kpis/report", query_string=REPORT_2024))
    assert "Completeness of this service's records" in html
    assert "Services meeting KPI 1, nationally" in html
    assert "of services meet KPI 1" in html


def test_kpi1_measures_are_labelled_in_the_benchmarks_and_the_csv_is_unchanged(
    client, fixture_services
):
    html = _text(client.get("/benchmarks/", query_string={"year": "2024"}))
    assert "KPI 1, data completeness: two measures" in html
    assert "of fields complete" in html
    csv_text = client.get("/benchmarks/2024.csv").get_data(as_text=True)
    assert "complete" not in csv_text and "meet" not in csv_text


@pytest.mark.parametrize(
    "url",
    [
        "/kpis/4/chart.svg",
        "/kpis/4/funnel.svg",
        "/kpis/outcomes/curve.svg",
        "/kpis/splits/service.svg",
    ],
)
def test_every_chart_has_a_narrow_rendition(member, url):
    wide = member.get(url, query_string=YEAR_2024)
    narrow = member.get(url, query_string=YEAR_2024 | {"size": "narrow"})
    assert wide.status_code == narrow.status_code == 200
    width = re.compile(rb'<svg[^>]* width="([\d.]+)pt"')
    assert float(width.search(narrow.data).group(1)) < float(width.search(wide.data).group(1)) / 2


def test_public_run_chart_page_offers_the_narrow_rendition(client, fixture_services):
    html = _text(client.get("/benchmarks/AAA/4", query_string={"year": "2024"}))
    assert '<source media="(max-width: 40.0625em)"' in html and "size=narrow" in html
    narrow = client.get(
        "/benchmarks/AAA/4/chart.svg", query_string={"year": "2024", "size": "narrow"}
    )
    assert narrow.status_code == 200
