"""A formula in a service's name never reaches a spreadsheet live (issue 23, finding 7): the public
benchmarks CSV, anonymous and downloadable by anyone, neutralises every text cell."""

from __future__ import annotations

import csv
import io

FORMULA = '=HYPERLINK("http://evil.example/","Click for your figures")'


def test_a_service_named_as_a_formula_is_text_in_the_public_benchmarks_csv(
    client, db, fixture_services
):
    aaa, _bbb, _ccc = fixture_services
    aaa.name = FORMULA
    db.session.commit()
    response = client.get("/benchmarks/2024.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    names = {r["service_name"] for r in rows if r["service_code"] == "AAA"}
    assert names == {"'" + FORMULA}
    # Numbers stay numbers.
    aaa1 = next(r for r in rows if r["service_code"] == "AAA" and r["kpi"] == "1")
    assert aaa1["numerator"].isdigit() and aaa1["year"] == "2024"
    assert not any(
        cell.startswith(("=", "+", "@", "\t", "\r")) for row in rows for cell in row.values()
    )
