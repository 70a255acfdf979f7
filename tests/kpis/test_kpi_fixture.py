"""The KPI engine and `flask kpis export` on a fixture built around every edge of spec/kpis.md,
with every expected figure worked out by hand below.

As-of 2025-03-15, period 2024-01..2024-12. Cut-offs (fracture_date on or before):
due at 90 days 2024-12-15, at 16 weeks (112 days) 2024-11-23, at 52 weeks (392 days) 2024-02-17.
"""

from __future__ import annotations

from datetime import date

import pytest

from kpis import counting, engine
from kpis.periods import Period

# The fixture itself (fixture_services, tests/kpis/conftest.py) carries a comment on every episode.
AS_OF = date(2025, 3, 15)
YEAR = Period.parse("2024-01", "2024-12")


# (numerator, denominator, value, band) of KPIs 1-11, worked out by hand from the comments above.
EXPECTED_AAA = [
    # 17 fields counted; 4 more than 20% missing (care home 9/40, smoker 20/40, calcium 40/40,
    # followup52_done 2 of the 5 due at 52 weeks); postcode 8/40 is not; followup16_done and
    # strength_balance16 are empty only in the 7 episodes not due at 16 weeks. 13/17, meets.
    ("13", "17", "76.5", "green"),
    ("40", "600", "6.7", "red"),  # 40 / (600 x 12 / 12)
    ("4", "40", "10.0", "amber"),  # 9, 11, 24, 31: exactly 10% is amber
    ("35", "37", "94.6", "green"),  # due: 40 less 30-32; late 18, never 19
    ("3", "6", "50.0", "amber"),  # recommended and due: 20-23, 27, 29; in time: 20, 23, 29
    ("4", "40", "10.0", "red"),  # 14, 15, 16, 32
    ("11", "40", "27.5", "red"),  # 1-4, 6-9, 13, 26, 31
    ("2", "30", "6.7", "red"),  # 33 due at 16 w, less Hip 7 and 10, less 8 (died day 111); 9, 12
    ("5", "8", "62.5", "amber"),  # 1, 2, 3, 4, 6, 7, 9, 13; contact in time: 1, 4, 6, 7, 9
    ("6", "8", "75.0", "amber"),  # on a drug: 1, 2, 4, 6, 9, 13
    ("1", "3", "33.3", "red"),  # 1, 2, 4 (3 died on day 391); on a drug: 1
]
EXPECTED_BBB = [
    ("12", "17", "70.6", "red"),  # 5 fields 100% missing: does not meet
    ("3", "100", "3.0", "red"),
    ("1", "3", "33.3", "green"),  # above 20%
    ("3", "3", "100.0", "green"),
    ("0", "0", "", "none"),  # no DXA recommended
    ("1", "3", "33.3", "red"),
    ("2", "3", "66.7", "green"),  # 50% or more, no amber
    ("1", "2", "50.0", "amber"),  # non-hip: 1st, 2nd
    ("1", "2", "50.0", "amber"),  # drug: 1st, 3rd
    ("1", "2", "50.0", "amber"),
    ("1", "2", "50.0", "amber"),
]
EXPECTED_NATIONAL = [
    ("1", "2", "50.0", "amber"),  # AAA meets, BBB does not; CCC has no episode
    ("43", "700", "6.1", "red"),  # CCC's caseload is not pooled
    ("5", "43", "11.6", "amber"),
    ("38", "40", "95.0", "green"),
    ("3", "6", "50.0", "amber"),
    ("5", "43", "11.6", "red"),
    ("13", "43", "30.2", "red"),
    ("3", "32", "9.4", "red"),
    ("6", "10", "60.0", "amber"),
    ("7", "10", "70.0", "amber"),
    ("2", "5", "40.0", "red"),
]


def _as_text(figures):
    return [(str(f.numerator), f.denominator_text, f.value_text, f.band) for f in figures]


def test_report_matches_hand_worked_figures(db, fixture_services):
    aaa, bbb, ccc = fixture_services
    with db.engine.connect() as conn:
        report = engine.report(conn, YEAR, AS_OF)
    assert [row.code for row in report.rows] == ["AAA", "BBB"]  # CCC has no episode
    assert _as_text(report.rows[0].figures) == EXPECTED_AAA
    assert _as_text(report.rows[1].figures) == EXPECTED_BBB
    assert _as_text(report.national.figures) == EXPECTED_NATIONAL


def test_export_csv_is_exactly_the_contract(runner, fixture_services):
    result = runner.invoke(
        args=["kpis", "export", "--from", "2024-01", "--to", "2024-12", "--as-of", "2025-03-15"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "service_code,period_start,period_end,kpi,numerator,denominator,value,band"
    expected = []
    for code, figures in (("AAA", EXPECTED_AAA), ("BBB", EXPECTED_BBB), ("ALL", EXPECTED_NATIONAL)):
        for kpi, (n, d, v, b) in enumerate(figures, start=1):
            expected.append(f"{code},2024-01-01,2024-12-31,{kpi},{n},{d},{v},{b}")
    assert lines[1:] == expected


def test_export_of_one_service_without_episodes_and_fractional_kpi2(runner, fixture_services):
    result = runner.invoke(
        args=[
            "kpis",
            "export",
            "--from",
            "2024-01",
            "--to",
            "2024-01",
            "--as-of",
            "2025-03-15",
            "--service",
            "ccc",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[1:]
    assert len(lines) == 11  # no national rows with --service
    assert lines[0] == "CCC,2024-01-01,2024-01-31,1,0,0,,none"
    # 50 x 1 / 12 = 4.1666... shown as 4.17; the value uses the unrounded denominator.
    assert lines[1] == "CCC,2024-01-01,2024-01-31,2,0,4.17,0.0,red"
    assert all(line.endswith(",0,0,,none") for line in lines[2:])


def test_kpi2_value_uses_the_unrounded_denominator(runner, fixture_services):
    # BBB in January: 3 episodes / (100 / 12 = 8.333...) = 36.0%, not 3 / 8.33 = 36.01%.
    result = runner.invoke(
        args=[
            "kpis",
            "export",
            "--from",
            "2024-01",
            "--to",
            "2024-01",
            "--as-of",
            "2025-03-15",
            "--service",
            "BBB",
        ]
    )
    assert result.exit_code == 0
    assert result.output.splitlines()[2] == "BBB,2024-01-01,2024-01-31,2,3,8.33,36.0,red"


def test_as_of_moves_only_the_due_steps(db, fixture_services):
    """A year later everything is due: the cohort (KPIs 2, 3, 6, 7) is the same."""
    aaa, _, _ = fixture_services
    with db.engine.connect() as conn:
        now = engine.report(conn, YEAR, AS_OF).row_for(aaa.id).figures
        later = engine.report(conn, YEAR, date(2026, 3, 15)).row_for(aaa.id).figures
    for kpi in (2, 3, 6, 7):
        assert later[kpi - 1] == now[kpi - 1]
    assert later[3].denominator == 40  # every episode due at 90 days
    assert later[10].denominator > now[10].denominator


def test_national_rows_without_any_episode(runner, make_service):
    make_service("AAA")
    result = runner.invoke(args=["kpis", "export", "--from", "2030-01", "--to", "2030-03"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[1:] == [f"ALL,2030-01-01,2030-03-31,{k},0,0,,none" for k in range(1, 12)]


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--from", "2024-13", "--to", "2024-12"], "month must be 01 to 12"),
        (["--from", "2024-05", "--to", "2024-01"], "after"),
        (["--from", "2024-01", "--to", "2024-12", "--service", "ZZZ"], "Unknown service"),
        (["--from", "24-01", "--to", "2024-12"], "YYYY-MM"),
        (["--from", "2024-01", "--to", "2024-12", "--as-of", "2024-02-30"], "YYYY-MM-DD"),
        (["--from", "2024-01", "--to", "2024-12", "--as-of", "20240301"], "YYYY-MM-DD"),
        (["--from", "2024-1", "--to", "2024-12"], "YYYY-MM"),
    ],
)
def test_export_refusals_exit_1_with_the_reason(runner, make_service, args, reason):
    make_service("AAA")
    result = runner.invoke(args=["kpis", "export", *args])
    assert result.exit_code == 1
    assert reason in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2024-01"],
        ["--to", "2024-01"],
        ["--from", "2024-01", "--to", "2024-02", "--bogus"],
    ],
)
def test_export_usage_errors_exit_2(runner, args):
    result = runner.invoke(args=["kpis", "export", *args])
    assert result.exit_code == 2


def test_monthly_series_add_up_to_the_period(db, fixture_services):
    aaa, bbb, _ = fixture_services
    with db.engine.connect() as conn:
        national3 = engine.monthly_series(conn, 3, YEAR, AS_OF)
        aaa2 = engine.monthly_series(conn, 2, YEAR, AS_OF, aaa.id)
        aaa4 = engine.monthly_series(conn, 4, YEAR, AS_OF, aaa.id)
        bbb5 = engine.monthly_series(conn, 5, YEAR, AS_OF, bbb.id)
    assert sum(p.numerator for p in national3) == 5
    assert sum(p.denominator for p in national3) == 43
    # KPI 2 of a service: every month, even without episodes, has 600 / 12 = 50 expected.
    assert [p.denominator for p in aaa2] == [50] * 12
    assert sum(p.numerator for p in aaa2) == 40
    assert (sum(p.numerator for p in aaa4), sum(p.denominator for p in aaa4)) == (35, 37)
    # December: 30-32 not yet due, 27-29 due: 3 in the denominator.
    assert aaa4[-1].month.key == "2024-12" and aaa4[-1].denominator == 3
    assert bbb5 == []  # no DXA recommended: every month left out


def test_several_periods_in_one_pass_match_one_at_a_time(db, fixture_services):
    aaa, bbb, _ = fixture_services
    periods = [
        Period.parse("2024-01", "2024-06"),
        Period.parse("2023-07", "2023-12"),
        Period.parse("2024-07", "2024-12"),
    ]
    with db.engine.connect() as conn:
        together = counting.aggregate_periods(conn, periods, AS_OF)
        for index, period in enumerate(periods):
            alone = counting.aggregate(conn, period, AS_OF)
            assert {sid: c for (sid, i, _), c in together.items() if i == index} == {
                sid: c for (sid, _), c in alone.items()
            }
        with pytest.raises(ValueError):
            counting.aggregate_periods(conn, [YEAR, periods[0]], AS_OF)
