"""The KPI engine and `flask kpis export` on a fixture built around every edge of spec/kpis.md,
with every expected figure worked out by hand below.

As-of 2025-03-15, period 2024-01..2024-12. Cut-offs (fracture_date on or before):
due at 90 days 2024-12-15, at 16 weeks (112 days) 2024-11-23, at 52 weeks (392 days) 2024-02-17.
"""

from __future__ import annotations

from datetime import date

import pytest

from kpis import engine
from kpis.periods import Period

AS_OF = date(2025, 3, 15)
YEAR = Period.parse("2024-01", "2024-12")


def build(make_service, add_episode):
    """Service AAA (40 live episodes, 1 deleted, 2 outside the period), BBB (3), CCC (none)."""
    aaa = make_service("AAA", expected_caseload=600)
    bbb = make_service("BBB", expected_caseload=100)
    ccc = make_service("CCC", expected_caseload=50)
    a = []

    def A(day, **fields):
        a.append((date.fromisoformat(day), fields))

    # -- due at 52 weeks (1-5) ------------------------------------------------------------------
    # 1: exactly due at 52 weeks (d = 392); contact on day 112 (counts); on a drug at 16 and 52 w.
    A(
        "2024-02-17",
        bone_therapy="Alendronate",
        followup16_done="Yes",
        followup16_day=112,
        therapy16="Alendronate",
        followup52_done="Yes",
        therapy52="Alendronate",
    )
    # 2: two drugs; contact on day 113 (too late); not on a drug at 52 w; followup52_done missing.
    A(
        "2024-01-10",
        bone_therapy="Zoledronate;Denosumab",
        followup16_done="Yes",
        followup16_day=113,
        therapy16="Zoledronate",
        therapy52="Not started",
        followup52_done=None,
    )
    # 3: died on day 391 (before 52 weeks: out of KPI 11), alive at 16 weeks; followup52 missing.
    A(
        "2024-01-20",
        bone_therapy="Alendronate",
        death_day=391,
        followup16_done="No",
        followup52_done=None,
    )
    # 4: died on day 392 (not before 52 weeks: stays in KPI 11); nothing recorded at 52 weeks.
    A(
        "2024-01-25",
        bone_therapy="Risedronate",
        death_day=392,
        followup16_done="Yes",
        followup16_day=30,
        therapy16="Risedronate",
    )
    # 5: an outcome, not a drug.
    A("2024-02-01", bone_therapy="Informed decline")
    # -- due at 16 weeks, not at 52 (6-25) -----------------------------------------------------
    # 6: d = 391 on the as-of date: not due at 52 weeks, so its missing followup52 is not counted.
    A(
        "2024-02-18",
        bone_therapy="Alendronate",
        followup16_done="Yes",
        followup16_day=112,
        therapy16="Alendronate",
        followup52_done=None,
    )
    # 7: exactly due at 16 weeks (d = 112); Hip, so out of KPI 8 despite strength and balance.
    A(
        "2024-11-23",
        fracture_sites="Hip",
        bone_therapy="Alendronate",
        followup16_done="Yes",
        followup16_day=50,
        therapy16="Not started",
        strength_balance16="Yes",
    )
    # 8: died on day 111: out of KPIs 8, 9 and 10.
    A(
        "2024-03-10",
        death_day=111,
        bone_therapy="Alendronate",
        strength_balance16="Yes",
        followup16_done="Yes",
        followup16_day=60,
        therapy16="Alendronate",
    )
    # 9: died on day 112 (not before 16 weeks): in KPIs 8, 9 and 10; a spine fracture.
    A(
        "2024-03-15",
        death_day=112,
        fracture_sites="Spine",
        bone_therapy="Teriparatide",
        strength_balance16="Yes",
        followup16_done="Yes",
        followup16_day=100,
        therapy16="Teriparatide",
    )
    # 10: Hip among other sites: out of KPI 8.
    A("2024-04-01", fracture_sites="Hip;Wrist", strength_balance16="Yes")
    # 11: spine among other sites; an outcome, not a drug.
    A("2024-05-01", fracture_sites="Spine;Other", bone_therapy="Referred to GP to decide")
    # 12: strength and balance started (non-hip, no drug).
    A("2024-05-10", strength_balance16="Yes")
    # 13: contact "Not known" (not done), yet on HRT at 16 weeks.
    A("2024-06-01", bone_therapy="HRT", followup16_done="Not known", therapy16="HRT")
    # 14-16: falls assessed, referred, both.
    A("2024-06-15", falls_assessed="Yes")
    A("2024-07-01", falls_referred="Yes")
    A("2024-07-15", falls_assessed="Yes", falls_referred="Yes")
    # 17-19: assessment on day 90 (counts), day 91 (late), never (missing in KPI 1 too).
    A("2024-08-01", assessment_day=90)
    A("2024-08-15", assessment_day=91)
    A("2024-09-01", assessment_date=None)
    # 20-23: DXA recommended: done on day 90, day 91, not done, day 0 (assessed on day 0 too).
    A("2024-09-10", dxa_status="Recommended", dxa_day=90)
    A("2024-09-20", dxa_status="Recommended", dxa_day=91)
    A("2024-10-01", dxa_status="Recommended")
    A("2024-10-10", dxa_status="Recommended", dxa_day=0, assessment_day=0)
    # 24-25: a spine fracture, a humerus.
    A("2024-10-20", fracture_sites="Spine", strength_balance16="Not known")
    A("2024-11-01", fracture_sites="Humerus")
    # -- due at 90 days, not at 16 weeks (26-29): 16-week fields empty and not yet counted ----
    not_due16 = {"followup16_done": None, "strength_balance16": None}
    # 26: d = 111: one day short of 16 weeks.
    A("2024-11-24", bone_therapy="Alendronate", **not_due16)
    # 27: exactly due at 90 days (d = 90), assessed on day 90; DXA recommended, not done.
    A("2024-12-15", assessment_day=90, dxa_status="Recommended", **not_due16)
    A("2024-12-01", fracture_sites="Pelvis", **not_due16)
    A("2024-12-05", dxa_status="Recommended", dxa_day=5, **not_due16)
    # -- not due at 90 days (30-32) ------------------------------------------------------------
    # 30: d = 89: assessed and scanned in time, but not yet in KPIs 4 and 5.
    A("2024-12-16", assessment_day=5, dxa_status="Recommended", dxa_day=5, **not_due16)
    A("2024-12-20", fracture_sites="Spine", bone_therapy="Alendronate", **not_due16)
    A("2024-12-31", falls_assessed="Yes", **not_due16)
    # -- plain episodes due at 16 weeks (33-40) -------------------------------------------------
    for day in ("03-20", "04-10", "05-20", "06-20", "07-20", "08-20", "09-15", "10-15"):
        A(f"2024-{day}")

    assert len(a) == 40
    for index, (fracture_date, fields) in enumerate(a, start=1):
        # KPI 1: postcode missing in exactly 20% (8 of 40), care home in just over (9 of 40),
        # smoker in half; calcium and vitamin D never answered.
        if index <= 8:
            fields["postcode"] = None
        if index <= 9:
            fields["care_home_resident"] = None
        if index % 2 == 0:
            fields["smoker"] = None
        fields["calcium_vitd"] = None
        add_episode(aaa, fracture_date, commit=False, **fields)
    # Deleted, and outside the period: count nowhere.
    add_episode(
        aaa,
        date(2024, 6, 1),
        deleted=True,
        fracture_sites="Spine",
        falls_assessed="Yes",
        bone_therapy="Alendronate",
        commit=False,
    )
    add_episode(aaa, date(2023, 12, 31), fracture_sites="Spine", commit=False)
    add_episode(aaa, date(2025, 1, 1), fracture_sites="Spine", commit=False)

    # BBB: three episodes, all due at 52 weeks, each missing the same 5 audited fields.
    gaps = {
        "postcode": None,
        "smoker": None,
        "admitted": None,
        "previous_fracture": None,
        "calcium_vitd": None,
    }
    add_episode(
        bbb,
        date(2024, 1, 5),
        fracture_sites="Spine",
        falls_assessed="Yes",
        bone_therapy="Alendronate",
        followup16_done="Yes",
        followup16_day=20,
        therapy16="Alendronate",
        therapy52="Alendronate",
        strength_balance16="Yes",
        commit=False,
        **gaps,
    )
    add_episode(bbb, date(2024, 1, 6), bone_therapy="Not known", commit=False, **gaps)
    add_episode(
        bbb,
        date(2024, 1, 7),
        fracture_sites="Hip",
        bone_therapy="Ibandronate",
        strength_balance16="Yes",
        commit=False,
        **gaps,
    )
    from portal.extensions import db

    db.session.commit()
    return aaa, bbb, ccc


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


@pytest.fixture
def fixture_services(make_service, add_episode):
    return build(make_service, add_episode)


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
