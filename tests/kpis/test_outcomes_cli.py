"""`flask outcomes export` and `flask kpis funnel` on the database (spec/outcomes.md, cli.md):
index episodes, refractures and deaths as the contract counts them, rows, order and exit codes."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, datetime, timedelta

import pytest

from kpis.export import FUNNEL_HEADER, OUTCOME_HEADER

_numbers = itertools.count(4500000000)


@pytest.fixture
def add_patient(db):
    """add_patient(service, first_fracture, later=(days, ...), deleted=(days, ...), death=days):
    one patient with an episode at each day offset from the first fracture."""
    from portal.models import Episode, Patient

    def add(service, first: date, later=(), deleted=(), death=None, sites="Wrist"):
        patient = Patient(
            service_id=service.id,
            nhs_number=str(next(_numbers)),
            date_of_birth=date(1940, 3, 1),
            sex="Female",
            date_of_death=None if death is None else first + timedelta(days=death),
        )
        db.session.add(patient)
        db.session.flush()
        for offset, gone in [
            (0, False),
            *((d, False) for d in later),
            *((d, True) for d in deleted),
        ]:
            episode = Episode(
                service_id=service.id,
                patient_id=patient.id,
                fracture_date=first + timedelta(days=offset),
                fracture_sites=sites,
            )
            if gone:
                episode.deleted_at = datetime(2025, 1, 1)
                episode.deleted_reason = "entered twice"
            db.session.add(episode)
        db.session.commit()
        return patient

    return add


def _rows(result) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result.output)))


def _export(runner, *args):
    return runner.invoke(args=["outcomes", "export", *args], catch_exceptions=False)


@pytest.fixture
def outcome_services(make_service, add_patient):
    """AAA: 6 index patients in 2024 showing each rule; BBB: 1; CCC: none in 2024."""
    aaa = make_service("AAA")
    bbb = make_service("BBB")
    make_service("CCC")
    first = date(2024, 3, 1)
    # 1: an episode 30 days after is the same event; one 31 days after is a refracture.
    add_patient(aaa, first, later=(30, 31))
    # 2: only 1-30 days later: no refracture; dies on day 200.
    add_patient(aaa, first, later=(1, 15), death=200)
    # 3: a refracture on the day of death counts as a refracture (day 100).
    add_patient(aaa, first, later=(100,), death=100)
    # 4: a deleted later episode counts nowhere; a deleted earlier one neither: its index is
    #    2024-03-01 (the live one), even though a deleted episode lies a year before.
    add_patient(aaa, first, deleted=(50, -365))
    # 5: first live episode before the period (2023-12-01): not in 2024's cohort, even with a
    #    later episode in 2024.
    add_patient(aaa, date(2023, 12, 1), later=(120,))
    # 6: death after the as-of date and an episode after it: not yet observed.
    add_patient(aaa, date(2024, 12, 1), later=(500,), death=600)
    # 7: death within 30 days.
    add_patient(aaa, date(2024, 6, 1), death=10)
    add_patient(bbb, date(2024, 5, 5))
    return aaa, bbb


AS_OF = "2025-06-30"


def test_outcomes_export_rows_and_order(runner, outcome_services):
    result = _export(runner, "--from", "2024-01", "--to", "2024-12", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == ",".join(OUTCOME_HEADER)
    rows = _rows(result)
    assert [(r["service_code"], r["measure"]) for r in rows] == [
        (code, measure)
        for code in ("AAA", "BBB", "ALL")
        for measure in ("refracture_12m", "refracture_24m", "mortality_30d", "mortality_1y")
    ]
    assert {r["period_start"] for r in rows} == {"2024-01-01"}
    assert {r["period_end"] for r in rows} == {"2024-12-31"}
    aaa = {r["measure"]: r for r in rows if r["service_code"] == "AAA"}
    # AAA's index patients: 1, 2, 3, 4, 6, 7 (patient 5's index lies in 2023).
    # T (as of 2025-06-30): 1: refracture at 31; 2: death at 200; 3: refracture at 100;
    # 4: censored at 486; 6: censored at 211; 7: death at 10.
    # Times: 10 death (n 6): S 5/6; 31 refr (n 5): CIF 5/6 x 1/5 = 1/6, S 4/6; 100 refr (n 4):
    # CIF 1/6 + 4/6 x 1/4 = 1/3, S 3/6; 200 death (n 3); 211 censored; at risk at 365: patient 4.
    assert aaa["refracture_12m"] == {
        **aaa["refracture_12m"],
        "patients": "6",
        "events": "2",
        "at_risk": "1",
        "value": "33.3",
    }
    assert (aaa["refracture_24m"]["at_risk"], aaa["refracture_24m"]["value"]) == ("0", "")
    assert aaa["refracture_24m"]["events"] == "2"
    # Mortality at 30 days: followed 30 days: all 6; died within 30: patient 7.
    assert (aaa["mortality_30d"]["patients"], aaa["mortality_30d"]["events"]) == ("6", "1")
    assert aaa["mortality_30d"]["at_risk"] == "" and aaa["mortality_30d"]["value"] == "16.7"
    # At 1 year: fracture_date + 365 <= as-of: patients 1, 2, 3, 4, 7 (6 is too recent); deaths
    # within a year: 2 (day 200), 3 (day 100), 7.
    assert (aaa["mortality_1y"]["patients"], aaa["mortality_1y"]["events"]) == ("5", "3")
    assert aaa["mortality_1y"]["value"] == "60.0"
    national = {r["measure"]: r for r in rows if r["service_code"] == "ALL"}
    assert national["refracture_12m"]["patients"] == "7"
    assert national["mortality_30d"]["patients"] == "7"


def test_outcomes_export_one_service_even_without_patients(runner, outcome_services):
    result = _export(
        runner, "--from", "2024-01", "--to", "2024-12", "--as-of", AS_OF, "--service", "ccc"
    )
    assert result.exit_code == 0
    rows = _rows(result)
    assert [
        (r["service_code"], r["patients"], r["events"], r["at_risk"], r["value"]) for r in rows
    ] == [
        ("CCC", "0", "0", "0", ""),
        ("CCC", "0", "0", "0", ""),
        ("CCC", "0", "0", "", ""),
        ("CCC", "0", "0", "", ""),
    ]


def test_outcomes_export_national_rows_always_written(runner, make_service):
    make_service("AAA")
    result = _export(runner, "--from", "2019-01", "--to", "2019-12", "--as-of", AS_OF)
    assert result.exit_code == 0
    rows = _rows(result)
    assert [r["service_code"] for r in rows] == ["ALL"] * 4
    assert [r["patients"] for r in rows] == ["0"] * 4


def test_index_after_the_as_of_date_is_not_counted(runner, outcome_services):
    result = _export(runner, "--from", "2024-01", "--to", "2024-12", "--as-of", "2024-06-01")
    aaa = [r for r in _rows(result) if r["service_code"] == "AAA"]
    # Index on or before 2024-06-01: patients 1-4 (2024-03-01) and 7 (2024-06-01).
    assert aaa[0]["patients"] == "5"


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--from", "2024-13", "--to", "2024-12"], "month must be 01 to 12"),
        (["--from", "2024-05", "--to", "2024-01"], "is after"),
        (["--from", "2024-01", "--to", "2024-12", "--service", "ZZZ"], "Unknown service"),
        (["--from", "2024-01", "--to", "2024-12", "--as-of", "2024-02-30"], "not a date"),
    ],
)
def test_outcomes_export_refuses_bad_values(runner, make_service, args, reason):
    result = runner.invoke(args=["outcomes", "export", *args])
    assert result.exit_code == 1
    assert reason in result.stderr and result.stdout == ""


def test_usage_errors_exit_2(runner):
    assert runner.invoke(args=["outcomes", "export", "--from", "2024-01"]).exit_code == 2
    assert runner.invoke(args=["outcomes", "export", "--bogus"]).exit_code == 2
    assert (
        runner.invoke(args=["kpis", "funnel", "--from", "2024-01", "--to", "2024-02"]).exit_code
        == 2
    )


# --- flask kpis funnel --------------------------------------------------------------------------


def _funnel(runner, *args):
    return runner.invoke(args=["kpis", "funnel", *args], catch_exceptions=False)


def test_funnel_rows_in_code_order(runner, make_service, add_episode):
    north, south = make_service("NTH"), make_service("STH")
    make_service("EMP")
    for i in range(10):
        add_episode(
            south,
            date(2024, 1, 5) + timedelta(days=i),
            fracture_sites="Spine" if i < 5 else "Wrist",
        )
    for i in range(4):
        add_episode(
            north,
            date(2024, 2, 5) + timedelta(days=i),
            fracture_sites="Spine" if i < 1 else "Wrist",
        )
    result = _funnel(runner, "--kpi", "3", "--from", "2024-01", "--to", "2024-12", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ",".join(FUNNEL_HEADER)
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["service_code"] for r in rows] == ["NTH", "STH"]  # EMP has no denominator
    north_row = rows[0]
    # p0 = 6 / 14 = 42.857...%: target 42.86; NTH 1 of 4 = 25.00.
    assert (north_row["numerator"], north_row["denominator"], north_row["value"]) == (
        "1",
        "4",
        "25.00",
    )
    assert north_row["target"] == "42.86" == rows[1]["target"]
    assert north_row["tau2"] == rows[1]["tau2"]
    assert north_row["flag"] in ("within", "below_95", "below_998")
    for row in rows:
        assert (
            float(row["lower998"])
            <= float(row["lower95"])
            <= float(row["upper95"])
            <= float(row["upper998"])
        )
        assert all(
            len(row[c].split(".")[1]) == 2 for c in ("value", "target", "lower95", "upper998")
        )


def test_funnel_with_no_point_is_the_header_alone(runner, make_service):
    make_service("AAA")
    result = _funnel(runner, "--kpi", "11", "--from", "2024-01", "--to", "2024-12")
    assert result.exit_code == 0
    assert result.output == ",".join(FUNNEL_HEADER) + "\n"


@pytest.mark.parametrize("kpi", ["2", "12", "0", "abc", "-3", "3.5"])
def test_funnel_refuses_a_kpi_outside_3_to_11(runner, kpi):
    result = runner.invoke(
        args=["kpis", "funnel", "--kpi", kpi, "--from", "2024-01", "--to", "2024-12"]
    )
    assert result.exit_code == 1
    assert "3 to 11" in result.stderr and result.stdout == ""


def test_funnel_refuses_a_bad_period(runner):
    result = runner.invoke(
        args=["kpis", "funnel", "--kpi", "4", "--from", "2024-12", "--to", "2024-01"]
    )
    assert result.exit_code == 1 and "after" in result.stderr
