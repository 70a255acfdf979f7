"""Factories for the KPI tests: episodes written straight to the tables, each with its own patient,
every audited field answered unless the test says otherwise."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import pytest

_nhs_numbers = itertools.count(4000000000)

# Everything answered: KPI 1 sees no missing field unless a test blanks one.
COMPLETE = {
    "sex": "Female",
    "postcode": "LS1 4AB",
    "care_home_resident": "No",
    "admitted": "No",
    "fracture_sites": "Wrist",
    "previous_fracture": "No",
    "smoker": "Never",
    "on_bone_therapy_at_fracture": "No",
    "dxa_status": "Not recommended",
    "dxa_not_recommended_reason": "Other",
    "falls_assessed": "No",
    "falls_referred": "No",
    "bone_therapy": "Not appropriate",
    "calcium_vitd": "Yes",
    "followup16_done": "No",
    "strength_balance16": "No",
    "followup52_done": "No",
}
PATIENT_KEYS = ("sex", "postcode", "care_home_resident", "date_of_death")


@pytest.fixture(autouse=True)
def _in_process_kpi_cache(app):
    """Each test starts with its own empty in-process figure cache, whatever REDIS_URL says:
    tests write episodes straight to the tables without advancing data versions."""
    app.config["REDIS_URL"] = None
    app.extensions.pop("kpi_cache", None)


def days(n: int) -> timedelta:
    return timedelta(days=n)


@pytest.fixture
def add_episode(db):
    """add_episode(service, fracture_date, **fields): one live episode of a new patient.

    Day offsets may be given as `assessment_day=90` (fracture_date + 90 days) for the dates
    assessment, dxa, followup16, followup52 and death. `deleted=True` soft-deletes it.
    """
    from portal.models import Episode, Patient

    def add(service, fracture_date: date, *, deleted: bool = False, commit: bool = True, **fields):
        values = dict(COMPLETE)
        values["identification_date"] = fracture_date
        values["assessment_date"] = fracture_date + days(10)
        for name in ("assessment", "dxa", "followup16", "followup52"):
            offset = fields.pop(f"{name}_day", None)
            if offset is not None:
                fields[f"{name}_date"] = fracture_date + days(offset)
        death = fields.pop("death_day", None)
        if death is not None:
            fields["date_of_death"] = fracture_date + days(death)
        if fields.get("dxa_status") == "Recommended":
            values["dxa_not_recommended_reason"] = None
        if fields.get("followup16_done") == "Yes" and "followup16_date" not in fields:
            fields["followup16_date"] = fracture_date + days(100)
        if fields.get("followup52_done") == "Yes" and "followup52_date" not in fields:
            fields["followup52_date"] = fracture_date + days(370)
        values.update(fields)
        patient = Patient(
            service_id=service.id,
            nhs_number=str(next(_nhs_numbers)),
            date_of_birth=date(1940, 5, 17),
            **{k: values.pop(k) for k in PATIENT_KEYS if k in values},
        )
        db.session.add(patient)
        db.session.flush()
        episode = Episode(
            service_id=service.id, patient_id=patient.id, fracture_date=fracture_date, **values
        )
        if deleted:
            episode.deleted_at = datetime(2025, 1, 2, 9, 0)
            episode.deleted_reason = "entered twice"
        db.session.add(episode)
        if commit:
            db.session.commit()
        else:
            db.session.flush()
        return episode

    return add


# --- the hand-worked fixture (test_kpi_fixture.py holds the expected figures) -------------------
# As-of 2025-03-15, period 2024-01..2024-12. Cut-offs (fracture_date on or before): due at 90 days
# 2024-12-15, at 16 weeks (112 days) 2024-11-23, at 52 weeks (392 days) 2024-02-17.


@pytest.fixture
def fixture_services(make_service, add_episode):
    """(AAA, BBB, CCC) with the episodes described below."""
    return build(make_service, add_episode)


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
