"""The pages of issue 20: outcomes on the service's KPI pages and report, funnel plots (signed in
and public), where a service sits, the outlier policy, splits, missed patients and the page for
patients and families; who sees what, suppression, CSV and images, and the cache."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest

from tests.conftest import sign_in

YEAR_2024 = {"kind": "year", "year": "2024", "as_of": "2025-03-15"}


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def services(make_service, add_episode):
    """AAA (40 episodes in 2024, 2 spine fractures: far below the others), BBB and eight more
    services of 30 episodes with 9 spine fractures each, CCC (3 episodes, 1 spine: small)."""
    aaa, bbb, ccc = make_service("AAA"), make_service("BBB"), make_service("CCC")
    start = date(2024, 1, 10)
    for i in range(40):
        add_episode(
            aaa,
            start + timedelta(days=i * 7),
            commit=False,
            fracture_sites="Spine" if i < 2 else "Wrist",
            death_day=200 if i % 10 == 0 else None,
        )
    for service in [bbb] + [make_service(f"D0{n}") for n in range(1, 9)]:
        for i in range(30):
            add_episode(
                service,
                start + timedelta(days=i * 9),
                commit=False,
                fracture_sites="Spine" if i < 9 else "Hip" if i >= 27 else "Wrist",
                sex="Male" if i % 3 == 0 else "Female",
            )
    for i in range(3):
        add_episode(
            ccc,
            start + timedelta(days=i),
            commit=False,
            fracture_sites="Spine" if i == 0 else "Wrist",
        )
    from portal.extensions import db

    db.session.commit()
    return aaa, bbb, ccc


@pytest.fixture
def member(make_user, client, services):
    aaa, bbb, ccc = services
    user = make_user("lead", services=[aaa])
    sign_in(client, user)
    return client, aaa


def test_service_page_says_where_the_service_sits_and_shows_outcomes(member):
    client, _ = member
    html = _text(client.get("/kpis/", query_string=YEAR_2024))
    assert "Funnel plot</th>" in html
    # KPI 3 of AAA: 2 of 40 against 84 of 313 nationally: far below.
    row = re.search(r"3\. Spine fractures.*?</tr>", html).group(0)
    assert "Alarm: below the 99.8% limit" in row
    assert "/kpis/3/funnel?" in row
    assert "Outcomes: another fracture, and deaths" in html
    assert "Another fracture within 12 months" in html and "Died within 30 days" in html


def test_outcomes_page_curve_and_csv(member):
    client, aaa = member
    response = client.get("/kpis/outcomes", query_string=YEAR_2024)
    assert response.status_code == 200
    html = _text(response)
    assert "Number at risk" in html
    assert "Cumulative incidence of another fracture" in html
    image = client.get("/kpis/outcomes/curve.png", query_string=YEAR_2024)
    assert image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")
    assert client.get("/kpis/outcomes/curve.svg", query_string=YEAR_2024).mimetype == (
        "image/svg+xml"
    )
    rows = list(
        csv.DictReader(
            io.StringIO(client.get("/kpis/outcomes/data.csv", query_string=YEAR_2024).text)
        )
    )
    assert [r["service_code"] for r in rows] == ["AAA"] * 4 + ["ALL"] * 4
    # AAA, as of 2025-03-15: followed a year, those diagnosed by 2024-03-15 (10 of them); of
    # those, the first died on day 200.
    year = next(r for r in rows if r["service_code"] == "AAA" and r["measure"] == "mortality_1y")
    assert (year["patients"], year["events"]) == ("10", "1")


def test_signed_in_funnel_shows_every_point_with_the_users_highlighted(member):
    client, _ = member
    response = client.get("/kpis/3/funnel", query_string=YEAR_2024)
    assert response.status_code == 200
    html = _text(response)
    assert "AAA (yours)" in html and "CCC" in html  # the small service too, signed in
    assert "Limits used:" in html
    assert "Your service AAA" in html
    rows = list(
        csv.DictReader(io.StringIO(client.get("/kpis/3/funnel.csv", query_string=YEAR_2024).text))
    )
    assert [r["service_code"] for r in rows][:3] == ["AAA", "BBB", "CCC"]
    assert len(rows) == 11
    assert client.get("/kpis/3/funnel.svg", query_string=YEAR_2024).mimetype == "image/svg+xml"
    assert client.get("/kpis/2/funnel", query_string=YEAR_2024).status_code == 404
    assert client.get("/kpis/12/funnel").status_code == 404
    # Another service's highlight is refused like its figures.
    assert client.get("/kpis/3/funnel", query_string={"service": "BBB"}).status_code == 404


def test_public_funnel_follows_the_suppression_rule(client, services):
    response = client.get("/benchmarks/funnel/3", query_string={"year": "2024"})
    assert response.status_code == 200
    html = _text(response)
    assert "1 service(s) with fewer than 5 in the denominator are not shown" in html
    assert "(yours)" not in html
    rows = list(
        csv.DictReader(
            io.StringIO(client.get("/benchmarks/funnel/3.csv", query_string={"year": "2024"}).text)
        )
    )
    assert "CCC" not in [r["service_code"] for r in rows] and len(rows) == 10
    # CCC still counts for the target: (2 + 9 x 9 + 1) / 313.
    assert rows[0]["target"] == "26.84"
    image = client.get("/benchmarks/funnel/3.png", query_string={"year": "2024"})
    assert image.data.startswith(b"\x89PNG")
    assert client.get("/benchmarks/funnel/1").status_code == 404


def test_outlier_policy_lists_the_users_alerts_and_alarms(make_user, client, services, clock):
    # The last complete year is 2024 as of March 2025.
    clock.move_to("2025-03-15 10:00")
    sign_in(client, make_user("lead", services=[services[0]]))
    html = _text(client.get("/kpis/outliers"))
    assert "beyond the 95% control limit" in html and "beyond the 99.8% control limit" in html
    assert "Current alerts and alarms, 2024" in html
    table = re.search(r"<table.*</table>", html).group(0)
    assert "AAA" in table and "KPI 3: Spine fractures" in table and "Alarm" in table
    assert "BBB" not in table  # not the user's service
    public = _text(client.get("/benchmarks/outlier-policy"))
    assert "beyond the 99.8% control limit" in public


def test_splits_signed_in_and_public(member, client):
    signed_in, _ = member
    html = _text(signed_in.get("/kpis/splits", query_string=YEAR_2024 | {"split": "site"}))
    assert "Who is left behind" in html and "Spine (not hip)" in html
    assert "Your service" in html and "National" in html
    assert signed_in.get(
        "/kpis/splits/service.png", query_string=YEAR_2024 | {"split": "age"}
    ).data.startswith(b"\x89PNG")
    data = signed_in.get("/kpis/splits/national.csv", query_string=YEAR_2024).text
    assert data.startswith("measure,part,numerator,denominator,value")
    signed_in.post("/auth/sign-out")
    public = _text(client.get("/benchmarks/BBB/splits", query_string={"year": "2024"}))
    # BBB's men: 10 episodes; its other/not known sex: none.
    assert "fewer than 5" in public
    national = client.get(
        "/benchmarks/ALL/splits.csv", query_string={"year": "2024", "split": "sex"}
    )
    assert national.status_code == 200


def test_hip_fractures_are_recorded_by_an_admin_and_audited(make_user, client, services, db):
    from portal.models import AuditEvent, HipFractureCount, Service

    aaa = services[0]
    version = aaa.data_version
    admin = make_user("admin")
    sign_in(client, admin)
    page = client.get("/kpis/hip-fractures")
    assert page.status_code == 200 and "not yet known" in page.text
    refused = client.post(
        "/kpis/hip-fractures", data={"service": "AAA", "year": "2024", "hip_fractures": "-3"}
    )
    assert "cannot be below 0" in refused.text and 'value="-3"' in refused.text
    saved = client.post(
        "/kpis/hip-fractures", data={"service": "AAA", "year": "2024", "hip_fractures": "100"}
    )
    assert saved.status_code == 302
    row = db.session.query(HipFractureCount).one()
    assert (row.year, row.hip_fractures) == (2024, 100)
    event = db.session.query(AuditEvent).filter_by(entity_type="hip_fracture_count").one()
    assert event.user_id == admin.id and event.changes["hip_fractures"] == [None, 100]
    db.session.expire_all()  # the request wrote through its own session
    assert db.session.get(Service, aaa.id).data_version == version + 1


def test_only_admins_record_hip_fractures(signed_in):
    client, _, _ = signed_in("lead")
    assert client.get("/kpis/hip-fractures").status_code == 403
    assert (
        client.post(
            "/kpis/hip-fractures", data={"service": "BRD", "year": "2024", "hip_fractures": "5"}
        ).status_code
        == 403
    )


def test_missed_patients_on_the_benchmarks_table(client, services, db):
    from portal.audit.actor import Actor
    from portal.kpi_pages.missed_patients import record_hip_fractures

    aaa = services[0]
    html = _text(client.get("/benchmarks/", query_string={"year": "2024"}))
    assert "not yet known" in html
    assert "Predicted caseload = hip fractures a year x 5" in html
    record_hip_fractures(Actor.command_line(), aaa, 2024, 100)
    db.session.commit()
    html = _text(client.get("/benchmarks/", query_string={"year": "2024"}))
    # 100 hips x 5 = 500 predicted; x 0.8 x 0.5 x 0.8 = 160 expected; none on treatment at
    # 12 months: 160 missed.
    row = re.search(r"<tr[^>]*>\s*<th scope=\"row\">AAA</th>.*?</tr>", html).group(0)
    assert "<td>100</td><td>500</td><td>160</td><td>0</td><td>160</td>" in row.replace(" ", "")


def test_page_for_patients_is_plain(client, services):
    import textstat

    benchmarks = _text(client.get("/benchmarks/", query_string={"year": "2024"}))
    assert "/benchmarks/AAA/for-patients?year=2024" in benchmarks
    response = client.get("/benchmarks/AAA/for-patients", query_string={"year": "2024"})
    assert response.status_code == 200
    main = re.search(r"<main.*?</main>", response.get_data(as_text=True), re.S).group(0)
    words = re.sub(r"<[^>]+>", " ", main)
    words = re.sub(r"\s+", " ", words)
    assert "KPI" not in words
    assert "ask your GP" in words
    assert textstat.flesch_reading_ease(words) >= 60, words
    small = _text(client.get("/benchmarks/CCC/for-patients", query_string={"year": "2024"}))
    assert "Too few people to give a fair figure." in small
    assert client.get("/benchmarks/ALL/for-patients").status_code == 404


def test_a_funnel_is_computed_once_per_data_version(client, services, db, monkeypatch):
    from kpis import funnel

    made = []
    real = funnel.funnel

    def counting(points):
        made.append(len(points))
        return real(points)

    monkeypatch.setattr("portal.kpi_pages.comparison.funnel", counting)
    client.get("/benchmarks/funnel/4", query_string={"year": "2024"})
    client.get("/benchmarks/funnel/4.csv", query_string={"year": "2024"})
    assert len(made) == 1
    aaa = services[0]
    aaa.data_version += 1
    db.session.commit()
    client.get("/benchmarks/funnel/4", query_string={"year": "2024"})
    assert len(made) == 2


def test_annual_report_has_outcomes_and_positions(member):
    client, _ = member
    html = _text(client.get("/kpis/report", query_string={"year": "2024", "as_of": "2025-03-15"}))
    assert "Outcomes: another fracture, and deaths" in html
    assert "below the 99.8% limit" in html
