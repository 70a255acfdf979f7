"""Every dataset rule at its valid and invalid edge, through the forms: a refused value shows
beside its field and in the error summary, and everything typed stays in the form."""

from __future__ import annotations

import html as htmllib
from datetime import date, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from tests.conftest import TEST_TODAY

from .conftest import HTMX, date_inputs, nhs_number, registration, with_values
from .test_stages import post_stage, stage_answers

F = date(2024, 3, 12)  # the fracture of every episode here
TODAY = TEST_TODAY


def _d(name, day):
    return date_inputs(name, day)


# These edges test the dataset's rules: any unusual date they use is confirmed (issue 18; the
# confirmation has its own tests in test_nurses_day.py).
CONFIRM_EVERY_UNUSUAL_DATE = "dxa_date;followup16_date;followup52_date;identification_date"


def _form(stage, **changes):
    return with_values(stage_answers(stage, F), confirm_dates=CONFIRM_EVERY_UNUSUAL_DATE, **changes)


def _assert_refused(response, field, message):
    assert response.status_code == 422, response.get_data(as_text=True)[:2000]
    page = htmllib.unescape(response.get_data(as_text=True))
    assert f'id="{field}-error"' in page, f"no error beside {field}"
    assert message in page, page[:3000]
    assert 'class="nhsuk-error-summary"' in page
    return page


# (stage, changes, field refused or None when the edge is valid, message)
STAGE_EDGES = [
    # identification
    (
        "identification",
        {**_d("fracture_date", date(2016, 1, 1)), **_d("identification_date", date(2016, 1, 1))},
        None,
        "",
    ),
    (
        "identification",
        {**_d("fracture_date", date(2015, 12, 31))},
        "fracture_date",
        "must be on or after 01/01/2016",
    ),
    (
        "identification",
        {**_d("fracture_date", TODAY), **_d("identification_date", TODAY)},
        None,
        "",
    ),
    (
        "identification",
        {**_d("fracture_date", TODAY + timedelta(days=1))},
        "fracture_date",
        "cannot be in the future",
    ),
    ("identification", {**_d("identification_date", F)}, None, ""),
    (
        "identification",
        {**_d("identification_date", F - timedelta(days=1))},
        "identification_date",
        "cannot be before the fracture was diagnosed (12/03/2024)",
    ),
    ("identification", {"fracture_sites": []}, "fracture_sites", "Fracture sites is required"),
    ("identification", {"fracture_sites": ["Hip", "Spine", "Wrist"]}, None, ""),
    (
        "identification",
        {"fracture_sites": ["Hip", "Spine", "Wrist", "Other"]},
        "fracture_sites",
        "three",
    ),
    ("identification", {"fracture_date-month": ""}, "fracture_date", "must include a month"),
    (
        "identification",
        {"fracture_date-day": "31", "fracture_date-month": "2"},
        "fracture_date",
        "real date",
    ),
    ("identification", {"fracture_date-year": "24"}, "fracture_date", "four-digit year"),
    # assessment
    ("assessment", {**_d("assessment_date", F)}, None, ""),
    (
        "assessment",
        {**_d("assessment_date", F - timedelta(days=1))},
        "assessment_date",
        "cannot be before the fracture was diagnosed (12/03/2024)",
    ),
    (
        "assessment",
        {**_d("assessment_date", TODAY + timedelta(days=1))},
        "assessment_date",
        "cannot be in the future",
    ),
    ("assessment", {"height_cm": "100"}, None, ""),
    ("assessment", {"height_cm": "99.9"}, "height_cm", "100"),
    ("assessment", {"height_cm": "230"}, None, ""),
    ("assessment", {"height_cm": "230.1"}, "height_cm", "230"),
    ("assessment", {"height_cm": "165cm"}, "height_cm", "Height (cm)"),
    ("assessment", {"weight_kg": "25"}, None, ""),
    ("assessment", {"weight_kg": "24.9"}, "weight_kg", "25"),
    ("assessment", {"weight_kg": "250"}, None, ""),
    ("assessment", {"weight_kg": "250.1"}, "weight_kg", "250"),
    ("assessment", {"weight_kg": "60,5"}, "weight_kg", "decimal point"),
    ("assessment", {"frax_major_percent": "0"}, None, ""),
    ("assessment", {"frax_major_percent": "100"}, None, ""),
    ("assessment", {"frax_major_percent": "100.1"}, "frax_major_percent", "100"),
    ("assessment", {"t_score": "-7.0"}, None, ""),
    ("assessment", {"t_score": "-7.1"}, "t_score", "-7.0"),
    ("assessment", {"t_score": "4.0"}, None, ""),
    ("assessment", {"t_score": "4.1"}, "t_score", "4.0"),
    ("assessment", {"t_score": "-1.70"}, None, ""),
    ("assessment", {"t_score": "-1.75"}, "t_score", "decimal"),
    ("assessment", {**_d("dxa_date", F)}, None, ""),
    (
        "assessment",
        {**_d("dxa_date", F - timedelta(days=1))},
        "dxa_date",
        "Date of DXA cannot be before the fracture was diagnosed (12/03/2024)",
    ),
    (
        "assessment",
        {**_d("dxa_date", None), "t_score": "-2.0"},
        "t_score",
        "only be given with the date of DXA",
    ),
    (
        "assessment",
        {"dxa_status": "Not recommended", **_d("dxa_date", None), "t_score": ""},
        "dxa_not_recommended_reason",
        "required when DXA is Not recommended",
    ),
    (
        "assessment",
        {
            "dxa_status": "Not recommended",
            "dxa_not_recommended_reason": "Recent DXA",
            **_d("dxa_date", None),
            "t_score": "",
        },
        None,
        "",
    ),
    ("assessment", {"smoker": "Sometimes"}, "smoker", "Smoker"),
    # treatment
    ("treatment", {"bone_therapy": ["Alendronate", "Denosumab"]}, None, ""),
    ("treatment", {"bone_therapy": ["Informed decline"]}, None, ""),
    (
        "treatment",
        {"bone_therapy": ["Alendronate", "Informed decline"]},
        "bone_therapy",
        "Informed decline",
    ),
    ("treatment", {"bone_therapy": ["Not appropriate", "Informed decline"]}, "bone_therapy", "one"),
    # 12-16 weeks
    ("followup16", {**_d("followup16_date", F)}, None, ""),
    (
        "followup16",
        {**_d("followup16_date", F - timedelta(days=1))},
        "followup16_date",
        "cannot be before the fracture was diagnosed (12/03/2024)",
    ),
    (
        "followup16",
        {**_d("followup16_date", None)},
        "followup16_date",
        "required when the follow-up was done",
    ),
    ("followup16", {"therapy16": "Not started"}, None, ""),
    # 12 months
    ("followup52", {**_d("followup52_date", F + timedelta(days=101))}, None, ""),
    (
        "followup52",
        {**_d("followup52_date", F + timedelta(days=100))},
        "followup52_date",
        "after the date of 12-16 week contact",
    ),
    (
        "followup52",
        {**_d("followup52_date", None)},
        "followup52_date",
        "required when the follow-up was done",
    ),
    (
        "followup52",
        {**_d("followup52_date", TODAY + timedelta(days=1))},
        "followup52_date",
        "cannot be in the future",
    ),
]


@pytest.mark.parametrize(
    "stage, changes, field, message",
    STAGE_EDGES,
    ids=[f"{e[0]}-{e[2] or 'valid'}-{i}" for i, e in enumerate(STAGE_EDGES)],
)
def test_stage_rule_edges(editor, register, db, stage, changes, field, message):
    from portal.models import Episode

    client, _, _ = editor
    episode = register(nhs_number(20), F)
    if stage == "followup52":  # the 12-month follow-up is checked against the 16-week contact
        assert (
            post_stage(client, episode, "followup16", stage_answers("followup16", F)).status_code
            == 200
        )
        db.session.refresh(episode)
    form = _form(stage, **changes)
    response = post_stage(client, episode, stage, form)
    if field is None:
        assert response.status_code == 200, response.get_data(as_text=True)[:3000]
        return
    before = db.session.get(Episode, episode.id).version
    page = _assert_refused(response, field, message)
    # Nothing typed is lost: every value posted is in the re-rendered form.
    for key, value in form.items(multi=True):
        if (
            value
            and key not in ("submission_id", "version", "confirm_dates")
            and value != "Sometimes"
        ):
            assert (
                f'value="{htmllib.escape(value)}"' in response.get_data(as_text=True)
                or f'value="{value}"' in page
            ), key
    db.session.expire_all()
    assert db.session.get(Episode, episode.id).version == before


def test_plain_post_shows_the_same_error_on_the_full_page(editor, register):
    client, _, _ = editor
    episode = register(nhs_number(21), F)
    response = post_stage(
        client, episode, "assessment", _form("assessment", height_cm="99"), htmx=False
    )
    page = _assert_refused(response, "height_cm", "100")
    assert "<html" in page and 'value="99"' in page


def test_hidden_dependent_answers_are_discarded_not_refused(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(22), F)
    form = _form("assessment", dxa_not_recommended_reason="Other")  # DXA Recommended
    assert post_stage(client, episode, "assessment", form).status_code == 200
    db.session.refresh(episode)
    assert episode.dxa_not_recommended_reason is None
    # A date only applies when done (the window of 12/03/2024 has closed: "not done" needs why).
    form = _form("followup16", followup16_done="No", followup16_not_done_reason="Patient declined")
    assert post_stage(client, episode, "followup16", form).status_code == 200
    db.session.refresh(episode)
    assert episode.followup16_date is None and episode.followup16_done == "No"


@pytest.mark.parametrize(
    "born, field, message",
    [
        (date(1974, 3, 12), None, ""),  # 50 on the day of the fracture
        (date(1974, 3, 13), "date_of_birth", "must be 50 or over"),
        (date(1909, 3, 12), None, ""),  # 115
        (date(1908, 3, 11), "date_of_birth", "cannot be over 115"),
    ],
)
def test_age_edges_at_registration(editor, db, born, field, message):
    client, _, _ = editor
    form = registration(nhs_number(23), F, **_d("date_of_birth", born))
    response = client.post("/patients/new", data=form, headers=HTMX)
    if field is None:
        assert response.status_code == 200 and "HX-Redirect" in response.headers
    else:
        page = _assert_refused(response, field, message)
        assert f'value="{born.year}"' in page


def test_born_on_29_february_turns_50_on_1_march(editor):
    client, _, _ = editor
    born = date(1972, 2, 29)
    too_young = registration(nhs_number(24), date(2022, 2, 28), **_d("date_of_birth", born))
    _assert_refused(
        client.post("/patients/new", data=too_young, headers=HTMX),
        "date_of_birth",
        "must be 50 or over",
    )
    old_enough = registration(nhs_number(24), date(2022, 3, 1), **_d("date_of_birth", born))
    assert client.post("/patients/new", data=old_enough, headers=HTMX).status_code == 200


@pytest.mark.parametrize(
    "nhs, field, message",
    [
        ("0000000000", "nhs_number", "NHS number"),
        ("4857773456", "nhs_number", "check digit"),
        ("485777345", "nhs_number", "NHS number"),
        ("485 777 3457", None, ""),
        ("485-777-3457", None, ""),
    ],
)
def test_nhs_number_rules_at_registration(editor, db, nhs, field, message):
    from portal.models import Patient

    client, _, _ = editor
    response = client.post("/patients/new", data=registration(nhs, F), headers=HTMX)
    if field is None:
        assert response.status_code == 200
        assert db.session.query(Patient).one().nhs_number == "4857773457"
    else:
        page = _assert_refused(response, field, message)
        assert f'value="{nhs}"' in page


def test_sex_is_required(editor):
    client, _, _ = editor
    form = registration(nhs_number(25), F)
    form.pop("sex")
    _assert_refused(client.post("/patients/new", data=form, headers=HTMX), "sex", "Sex is required")


def _details(patient, **changes):
    form = MultiDict(
        {
            "version": str(patient.version),
            **_d("date_of_birth", patient.date_of_birth),
            "sex": patient.sex,
            "postcode": patient.postcode or "",
            "care_home_resident": patient.care_home_resident or "",
            **_d("date_of_death", None),
        }
    )
    for key, value in changes.items():
        form[key] = value
    return form


def test_date_of_death_not_before_any_date_of_the_patient(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(26), F)  # identification on F + 2 days
    patient = episode.patient
    latest = F + timedelta(days=2)
    response = client.post(
        f"/patients/{patient.id}",
        data=_details(patient, **_d("date_of_death", latest - timedelta(days=1))),
        headers=HTMX,
    )
    _assert_refused(response, "date_of_death", "cannot be before the date of first FLS contact")
    response = client.post(
        f"/patients/{patient.id}",
        data=_details(patient, **_d("date_of_death", latest)),
        headers=HTMX,
    )
    assert response.status_code == 200
    db.session.refresh(patient)
    assert patient.date_of_death == latest
    # Every date of an episode is on or before the date of death.
    db.session.refresh(episode)
    form = _form(
        "assessment",
        **_d("assessment_date", latest + timedelta(days=1)),
        **_d("dxa_date", None),
        t_score="",
    )
    _assert_refused(
        post_stage(client, episode, "assessment", form), "assessment_date", "date of death"
    )


def test_a_fracture_date_already_used_by_another_episode_is_refused(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(27), F)
    later = F + timedelta(days=200)
    response = client.post(
        f"/patients/{episode.patient_id}/episodes/new",
        data=MultiDict({**_d("fracture_date", later), "fracture_sites": "Hip"}),
        headers=HTMX,
    )
    assert response.status_code == 200
    second = db.session.query(type(episode)).filter_by(fracture_date=later).one()
    form = _form("identification", **_d("fracture_date", F), **_d("identification_date", None))
    _assert_refused(
        post_stage(client, second, "identification", form),
        "fracture_date",
        "already has an episode",
    )
