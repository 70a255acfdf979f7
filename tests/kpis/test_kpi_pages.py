"""The KPI pages: who sees which service's figures, the public pages' suppression and bands, CSV
downloads, the annual report, and the cache (a chart is drawn once per change of the data)."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.conftest import sign_in

YEAR_2024 = {"kind": "year", "year": "2024", "as_of": "2025-03-15"}


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def _row(html: str, heading: str) -> str:
    """The table row whose heading cell starts with `heading`."""
    match = re.search(
        r"<tr[^>]*>\s*<th scope=\"row\">[^<]*<a[^>]*>" + re.escape(heading) + r".*?</tr>", html
    )
    if match is None:
        match = re.search(
            r"<tr[^>]*>\s*<th scope=\"row\">" + re.escape(heading) + r".*?</tr>", html
        )
    assert match, f"no row {heading!r}"
    return match.group(0)


@pytest.fixture
def member(make_user, client, fixture_services):
    aaa, bbb, ccc = fixture_services
    user = make_user("clinician", services=[aaa])
    sign_in(client, user)
    return client, aaa, bbb


def test_service_page_shows_every_kpi_with_band_national_and_change(member):
    client, aaa, _ = member
    response = client.get("/kpis/", query_string=YEAR_2024)
    assert response.status_code == 200
    html = _text(response)
    assert "AAA Fracture Liaison Service" in html
    assert html.count("portal-kpi-band--") >= 11
    # KPI 3: 4 / 40 = 10.0%, amber (word and colour); national 5 / 43 = 11.6%; 2023 had no data.
    row = _row(html, "3. Spine fractures")
    assert "<td>10.0%</td>" in row
    assert 'portal-kpi-band--amber">Amber<' in row
    assert "<td>4</td> <td>40</td>" in row
    assert "<td>11.6%</td>" in row
    # KPI 2's denominator 600 for the year.
    assert "<td>40</td> <td>600</td>" in _row(html, "2. Identification")
    assert response.headers["Cache-Control"] == "no-store"


def test_change_from_previous_period(member, add_episode, db):
    client, aaa, _ = member
    from datetime import date

    # 2023 holds the fixture's spine fracture of 31 December; with this wrist fracture, 1 of 2
    # -> 50%; 2024: 10%: change -40.0 points.
    add_episode(aaa, date(2023, 5, 1), fracture_sites="Wrist")
    row = _row(_text(client.get("/kpis/", query_string=YEAR_2024)), "3. Spine fractures")
    assert "\u221240.0" in row  # the minus sign


def test_member_cannot_see_another_services_figures(member, db):
    client, _, bbb = member
    response = client.get("/kpis/", query_string={"service": "BBB", **YEAR_2024})
    assert response.status_code == 404
    from portal.models import AuditEvent

    assert db.session.query(AuditEvent).filter_by(action="permission_denied").count() == 1
    assert client.get("/kpis/3/chart.svg", query_string={"service": "BBB"}).status_code == 404


def test_admin_sees_every_services_figures(make_user, client, fixture_services):
    admin = make_user("admin")
    sign_in(client, admin)
    response = client.get("/kpis/", query_string={"service": "bbb", **YEAR_2024})
    assert response.status_code == 200
    html = _text(response)
    assert "BBB Fracture Liaison Service" in html
    assert '<td>70.6% <span class="nhsuk-body-s">of fields complete enough</span></td>' in _row(
        html, "1. Data completeness"
    )


def test_bad_period_keeps_what_was_typed_and_says_why(member):
    client, _, _ = member
    response = client.get(
        "/kpis/", query_string={"kind": "months", "from": "2024-13", "to": "2024-12"}
    )
    assert response.status_code == 200
    html = _text(response)
    assert "There is a problem with the period" in html
    assert "month must be 01 to 12" in html
    assert 'value="2024-13"' in html


def test_run_chart_page_has_image_text_alternative_table_and_csv(member):
    client, _, _ = member
    response = client.get("/kpis/4", query_string=YEAR_2024)
    assert response.status_code == 200
    html = _text(response)
    assert "/kpis/4/chart.svg?" in html and "/kpis/4/chart.png?" in html
    assert "P-chart of KPI 4" in html
    assert "How to read this chart" in html
    data = client.get("/kpis/4/data.csv", query_string=YEAR_2024)
    assert data.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(data.get_data(as_text=True))))
    assert [r["month"] for r in rows][:2] == ["2024-01", "2024-02"]
    # Signed-in users see every value, small months included.
    assert all(r["denominator"] != "fewer than 5" for r in rows)
    assert sum(int(r["denominator"]) for r in rows) == 37  # KPI 4's denominator for the year
    image = client.get("/kpis/4/chart.png", query_string=YEAR_2024)
    assert image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")
    assert client.get("/kpis/12", query_string=YEAR_2024).status_code == 404
    assert client.get("/kpis/4/chart.gif").status_code == 404


def test_kpi_pages_need_sign_in(client, fixture_services):
    response = client.get("/kpis/")
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]
    assert client.get("/kpis/4/chart.svg").status_code == 302


def test_public_benchmarks_suppress_small_denominators_and_band(client, fixture_services):
    response = client.get("/benchmarks/", query_string={"year": "2024"})
    assert response.status_code == 200
    html = _text(response)
    national = re.search(r'<tr class="portal-benchmarks__national">.*?</tr>', html).group(0)
    assert "11.6%" in national  # KPI 3: 5 / 43
    aaa = re.search(r"<tr> <th scope=\"row\">AAA .*?</tr>", html).group(0)
    assert '10.0%</a><br><span class="portal-kpi-band portal-kpi-band--amber">Amber' in aaa
    bbb = re.search(r"<tr> <th scope=\"row\">BBB .*?</tr>", html).group(0)
    # BBB has 3 episodes: every KPI but 1 (17 fields) and 2 (caseload 100) is suppressed.
    assert bbb.count("fewer than 5") == 9
    assert "70.6%" in bbb and "3.0%" in bbb
    assert "CCC" not in html  # no episode in 2024
    assert html.index("National</th>") < html.index(">AAA ")
    assert "Benchmarks" in html  # the navigation link for everyone


def test_public_benchmarks_sort_by_a_kpi(client, fixture_services):
    html = _text(
        client.get("/benchmarks/", query_string={"year": "2024", "sort": "kpi2", "order": "desc"})
    )
    # KPI 2: AAA 6.7%, BBB 3.0%: descending puts AAA first.
    assert html.index(">AAA ") < html.index(">BBB ")
    html = _text(client.get("/benchmarks/", query_string={"year": "2024", "sort": "kpi2"}))
    assert html.index(">BBB ") < html.index(">AAA ")
    assert 'aria-sort="ascending"' in html


def test_public_benchmarks_csv(client, fixture_services):
    response = client.get("/benchmarks/2024.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0]["service_code"] == "ALL"
    bbb3 = next(r for r in rows if r["service_code"] == "BBB" and r["kpi"] == "3")
    assert (bbb3["numerator"], bbb3["denominator"], bbb3["value"], bbb3["band"]) == (
        "",
        "",
        "fewer than 5",
        "none",
    )
    aaa3 = next(r for r in rows if r["service_code"] == "AAA" and r["kpi"] == "3")
    assert (aaa3["numerator"], aaa3["denominator"], aaa3["value"], aaa3["band"]) == (
        "4",
        "40",
        "10.0",
        "amber",
    )


def test_public_run_chart_suppresses_small_months(client, fixture_services):
    response = client.get("/benchmarks/AAA/3", query_string={"year": "2024"})
    assert response.status_code == 200
    html = _text(response)
    assert "fewer than 5 in the denominator are not shown" in html
    data = client.get("/benchmarks/AAA/3/data.csv", query_string={"year": "2024"})
    rows = list(csv.DictReader(io.StringIO(data.get_data(as_text=True))))
    small = [r for r in rows if r["denominator"] == "fewer than 5"]
    assert small and all(r["numerator"] == "" and r["value"] == "" for r in small)
    assert all(int(r["denominator"]) >= 5 for r in rows if r not in small)
    national = client.get("/benchmarks/ALL/3", query_string={"year": "2024"})
    assert national.status_code == 200
    assert client.get("/benchmarks/ZZZ/3").status_code == 404
    assert client.get("/benchmarks/AAA/3/chart.svg", query_string={"year": "2024"}).mimetype == (
        "image/svg+xml"
    )


def test_a_second_request_for_a_chart_does_not_draw_it_again(
    client, fixture_services, monkeypatch, db
):
    from kpis import charts

    drawn = []
    real = charts.render

    def counting(chart, fmt, size=charts.WIDE):
        drawn.append((chart.kpi.number, fmt))
        return real(chart, fmt, size)

    monkeypatch.setattr(charts, "render", counting)
    url = "/benchmarks/AAA/4/chart.png"
    first = client.get(url, query_string={"year": "2024"})
    second = client.get(url, query_string={"year": "2024"})
    assert first.data == second.data
    assert drawn == [(4, "png")]
    # A change of any service's data (the chart carries the national line) draws it again.
    aaa, bbb, _ = fixture_services
    bbb.data_version += 1
    db.session.commit()
    client.get(url, query_string={"year": "2024"})
    assert drawn == [(4, "png"), (4, "png")]


def test_figures_are_computed_once_per_data_version(client, fixture_services, db, monkeypatch):
    from kpis import counting

    queries = []
    real = counting.aggregate_periods

    def counting_queries(conn, periods, as_of, service_ids=None, by_month=False):
        queries.append(None if service_ids is None else sorted(service_ids))
        return real(conn, periods, as_of, service_ids, by_month)

    monkeypatch.setattr(counting, "aggregate_periods", counting_queries)
    first = _text(client.get("/benchmarks/", query_string={"year": "2024"}))
    assert queries == [None]  # one grouped query over every service
    client.get("/benchmarks/", query_string={"year": "2024", "sort": "kpi5"})
    assert queries == [None]  # same figures, sorted differently
    # A change in AAA: only AAA is counted again; BBB's counts are kept.
    aaa, _, _ = fixture_services
    aaa.data_version += 1
    db.session.commit()
    again = _text(client.get("/benchmarks/", query_string={"year": "2024"}))
    assert queries == [None, [aaa.id]]
    table = re.compile(r"<table.*</table>")
    assert table.search(again).group(0) == table.search(first).group(0)


def test_annual_report_with_recommendations_and_print_stylesheet(member):
    client, _, _ = member
    response = client.get("/kpis/report", query_string={"year": "2024", "as_of": "2025-03-15"})
    assert response.status_code == 200
    html = _text(response)
    assert "FLS annual report 2024" in html
    assert re.search(r"css/kpis(\.[0-9a-f]{12})?\.css", html)  # fingerprinted once built
    # KPI 6 (falls) is red for AAA: its recommendations are there; KPI 4 is green: none.
    assert "What would move the amber and red KPIs" in html
    assert "KPI 6: Falls risk assessment" in html
    assert "falls service" in html
    assert "KPI 4: FLS assessment within 90 days <span" not in html
    assert html.count("/kpis/") >= 11  # a run chart per KPI


def test_navigation_links(client, member):
    signed_in_client, _, _ = member
    html = _text(signed_in_client.get("/"))
    assert 'href="/kpis/"' in html and 'href="/benchmarks/"' in html


def test_admin_without_a_service_sees_the_first_and_can_choose(make_user, client, fixture_services):
    sign_in(client, make_user("admin"))
    html = _text(client.get("/kpis/", query_string=YEAR_2024))
    assert "Key performance indicators: AAA Fracture Liaison Service" in html
    assert '<option value="BBB"' in html and '<option value="CCC"' in html
    assert client.get("/kpis/", query_string={"service": "ZZZ"}).status_code == 404
