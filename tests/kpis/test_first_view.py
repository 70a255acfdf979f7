"""Issue 22, a first view that shows something: with no period asked for, the KPI pages open on the
latest months in which every KPI has episodes due (KPI 11: fractures at least 392 days before the
as-of date), and say so. Nothing here depends on the real date: the expected months are read from
the test clock."""

from __future__ import annotations

import re
from datetime import date

import pytest

from portal import clock
from portal.kpi_pages.choices import choose_period, last_month_all_due
from tests.conftest import sign_in


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.mark.parametrize(
    ("as_of", "month"),
    [
        # 392 days before 2026-11-18 is 2025-10-22: October 2025 is not wholly due yet.
        (date(2026, 11, 18), "2025-09"),
        # 392 days before 2026-10-26 is 2025-09-29: September 2025 still has its 30th to come.
        (date(2026, 10, 26), "2025-08"),
        # 392 days before 2026-10-27 is 2025-09-30, the last day of September: all of it is due.
        (date(2026, 10, 27), "2025-09"),
        # 392 days before 2028-02-29 is 2027-02-02.
        (date(2028, 2, 29), "2027-01"),
    ],
)
def test_last_month_in_which_every_kpi_is_due(as_of, month):
    assert last_month_all_due(as_of).key == month


def test_default_period_ends_on_the_last_fully_due_month(app):
    with app.test_request_context():
        choice = choose_period({})
        assert choice.first_view
        assert choice.period.last == last_month_all_due(clock.today())
        assert choice.period.months == 12
        assert choose_period({}, default_months=24).period.months == 24
        asked = choose_period({"kind": "year", "year": "2024"})
        assert not asked.first_view and asked.period.label() == "2024"
        # An as-of date alone keeps the first view, judged on that day.
        on_day = choose_period({"as_of": "2025-03-15"})
        assert (
            on_day.first_view and on_day.period.last.key == "2024-01"
        )  # 392 days before: 2024-02-07


def test_service_page_opens_on_a_period_where_kpi_11_has_episodes_due(
    make_user, client, fixture_services, add_episode
):
    aaa = fixture_services[0]
    last = last_month_all_due(clock.today())
    # A fracture on the last day of the default period: due at 52 weeks today, by construction.
    add_episode(aaa, last.last_day, bone_therapy="Alendronate")
    sign_in(client, make_user("clinician", services=[aaa]))
    html = _text(client.get("/kpis/"))
    first = last.plus(-11)
    assert f"Showing {first.label()} to {last.label()}: the most recent 12 months" in html
    assert "every KPI has episodes due" in html
    row = re.search(r'<th scope="row"><a [^>]*>11\. Adherence.*?</tr>', html)
    assert row is not None and "no data" not in row.group(0).split("</th>", 1)[1]
    # A period asked for is shown as asked, without the note.
    asked = _text(client.get("/kpis/", query_string={"kind": "year", "year": "2024"}))
    assert "every KPI has episodes due" not in asked


def test_run_chart_page_opens_on_24_fully_due_months(make_user, client, fixture_services):
    sign_in(client, make_user("clinician", services=[fixture_services[0]]))
    last = last_month_all_due(clock.today())
    html = _text(client.get("/kpis/11"))
    assert f"Showing {last.plus(-23).label()} to {last.label()}: the most recent 24 months" in html
