"""Each stage saves by itself through htmx (section swapped in place) and as a plain post
(post/redirect/get), with its status and the dates that matter."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from .conftest import HTMX, date_inputs, nhs_number

FRACTURE = date.today() - timedelta(days=400)


def stage_answers(stage: str, fracture: date = FRACTURE) -> MultiDict:
    """A complete, valid answer to each stage."""
    answers = {
        "identification": {
            **date_inputs("fracture_date", fracture),
            **date_inputs("identification_date", fracture + timedelta(days=3)),
            "admitted": "No",
            "fracture_sites": ["Hip", "Wrist"],
        },
        "assessment": {
            **date_inputs("assessment_date", fracture + timedelta(days=20)),
            "height_cm": "165.5",
            "weight_kg": "60",
            "previous_fracture": "No",
            "parental_hip_fracture": "Not known",
            "smoker": "Ex",
            "on_bone_therapy_at_fracture": "No",
            "dxa_status": "Recommended",
            **date_inputs("dxa_date", fracture + timedelta(days=40)),
            "t_score": "-2.7",
            "frax_major_percent": "18",
            "falls_assessed": "Yes",
            "falls_referred": "No",
        },
        "treatment": {"bone_therapy": ["Alendronate"], "calcium_vitd": "Yes"},
        "followup16": {
            "followup16_done": "Yes",
            **date_inputs("followup16_date", fracture + timedelta(days=100)),
            "therapy16": "Alendronate",
            "strength_balance16": "Yes",
        },
        "followup52": {
            "followup52_done": "Yes",
            **date_inputs("followup52_date", fracture + timedelta(days=360)),
            "therapy52": "Alendronate",
            "refracture": "No",
        },
    }[stage]
    form = MultiDict()
    for key, value in answers.items():
        form.setlist(key, value if isinstance(value, list) else [value])
    return form


def post_stage(client, episode, stage, form, *, htmx=True, version=None):
    form = MultiDict(form)
    form.setdefault("submission_id", str(uuid.uuid4()))
    form.setdefault("version", str(version if version is not None else episode.version))
    return client.post(
        f"/episodes/{episode.id}/stages/{stage}", data=form, headers=HTMX if htmx else {}
    )


STAGES = ["identification", "assessment", "treatment", "followup16", "followup52"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_saves_through_htmx(editor, register, db, stage):
    from portal.models import AuditEvent

    client, _, _ = editor
    episode = register(nhs_number(10), FRACTURE)
    response = post_stage(client, episode, stage, stage_answers(stage))
    assert response.status_code == 200, response.get_data(as_text=True)[:3000]
    html = response.get_data(as_text=True)
    assert html.startswith(f'<section class="portal-stage" id="stage-{stage}"')
    assert "saved." in html and "data-focus-on-load" in html
    assert f'data-offline-form="episode-{episode.id}-{stage}"' in html
    db.session.refresh(episode)
    assert episode.version == 2
    assert f'name="version" value="{episode.version}"' in html
    updates = db.session.query(AuditEvent).filter_by(action="update", entity_id=episode.id).all()
    assert len(updates) == 1
    assert updates[0].changes["_version"] == [1, 2]
    if stage != "identification":
        assert ">Complete<" in html


def test_all_stages_as_plain_posts_complete_the_episode(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(11), FRACTURE)
    for stage in STAGES:
        db.session.refresh(episode)
        response = post_stage(client, episode, stage, stage_answers(stage), htmx=False)
        assert response.status_code == 303, response.get_data(as_text=True)[:3000]
        assert response.headers["Location"].endswith(f"/episodes/{episode.id}#stage-{stage}")
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Follow-up at 12 months saved." in page
    assert page.count(">Complete<") == 10  # contents list and each section
    db.session.refresh(episode)
    assert episode.fracture_sites == "Hip;Wrist"
    assert episode.height_cm == 165.5 and episode.t_score == -2.7
    assert episode.bone_therapy == "Alendronate"
    assert episode.followup52_date == FRACTURE + timedelta(days=360)


def test_stage_status_not_started_in_progress_complete(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(12), FRACTURE)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    section = page[page.index('id="stage-treatment"') :]
    assert ">Not started<" in section[:400]
    response = post_stage(client, episode, "treatment", MultiDict({"calcium_vitd": "Yes"}))
    assert ">In progress<" in response.get_data(as_text=True)[:400]


def test_episode_page_shows_the_dates_that_matter(editor, register):
    client, _, _ = editor
    fracture = (
        date(2025, 1, 1) if date.today() > date(2025, 12, 31) else date.today() - timedelta(days=10)
    )
    episode = register(nhs_number(13), fracture)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)

    def shown(day):
        return f"{day.day} {day.strftime('%B %Y')}"

    assert shown(fracture + timedelta(days=90)) in page
    assert (
        shown(fracture + timedelta(days=84)) in page
        and shown(fracture + timedelta(days=112)) in page
    )
    assert (
        shown(fracture + timedelta(days=336)) in page
        and shown(fracture + timedelta(days=392)) in page
    )


def test_dependent_fields_carry_show_when_without_inline_script(editor, register):
    client, _, _ = editor
    episode = register(nhs_number(14), FRACTURE)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert 'data-show-when="dxa_status=Not recommended"' in page
    assert 'data-show-when="followup16_done=Yes"' in page
    assert 'data-show-when="followup52_done=Yes"' in page
    assert "<script>" not in page and " onclick=" not in page and "style=" not in page


def test_every_control_has_a_label(editor, register):
    import re

    client, _, _ = editor
    episode = register(nhs_number(15), FRACTURE)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page)
    hidden = set(re.findall(r'<input[^>]*type="hidden"[^>]*id="([^"]+)"', page))
    for control in ids:
        if control in hidden:
            continue
        assert f'for="{control}"' in page, control
    assert len(ids) == len(set(ids)), "ids are unique on the page"


def test_choices_show_what_was_saved_from_options_rendered_once(editor, register):
    """Radios and checkboxes are made from options rendered once per template (checked and
    unchecked copies); the page still checks exactly the saved answers, with the divider
    before the first outcome of bone therapy."""
    import re

    from portal.journey import fields, routes

    client, _, _ = editor
    episode = register(nhs_number(16), FRACTURE)
    form = {
        "submission_id": str(uuid.uuid4()),
        "version": "1",
        "bone_therapy": ["Alendronate", "Denosumab"],
        "calcium_vitd": "No",
    }
    section = client.post(
        f"/episodes/{episode.id}/stages/treatment", data=form, headers=HTMX
    ).get_data(as_text=True)
    checked = re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]+)" checked>', section)
    assert sorted(checked) == [
        ("bone_therapy", "Alendronate"),
        ("bone_therapy", "Denosumab"),
        ("calcium_vitd", "No"),
    ]
    options = fields.spec("bone_therapy").options
    assert section.count('name="bone_therapy"') == len(options)
    divider = section.index("nhsuk-checkboxes__divider")
    first_outcome = section.index(f'value="{fields.spec("bone_therapy").exclusive_from}"')
    assert section.index(f'value="{options[0]}"') < divider < first_outcome
    with client.application.test_request_context():
        assert routes.choice_items("bone_therapy") is routes.choice_items("bone_therapy")


@pytest.mark.parametrize(
    ("name", "inputs", "error"),
    [
        ("bone_therapy", {"bone_therapy": ["Alendronate", "Denosumab"]}, None),
        (
            "calcium_vitd",
            {"calcium_vitd": ["No"]},
            "Choose whether calcium and vitamin D was given",
        ),
        ("therapy16", {"therapy16": ["Zoledronate"]}, None),
        ("postcode", {"postcode": ["LS1 4AP"]}, None),
        (
            "fracture_date",
            {"fracture_date-day": ["31"], "fracture_date-month": ["2"]},
            "Not a date",
        ),
        ("t_score", {}, None),
    ],
)
def test_a_kept_field_is_what_the_field_macro_renders_now(app, name, inputs, error):
    """Rendered fields are kept per process by the inputs the field posts and its error, and
    the macro is given nothing else: a kept field is the macro's answer for those inputs, and
    inputs of other fields never reach it."""
    from flask import render_template_string

    from portal.journey import routes

    posted = MultiDict([(key, value) for key, values in inputs.items() for value in values])
    with_others = posted.copy()
    with_others.add("calcium_vitd" if name != "calcium_vitd" else "postcode", "Yes")
    errors = {name: error} if error else {}
    with app.test_request_context():
        expected = render_template_string(
            '{% from "journey/_fields.html" import field %}{{ field(name, inputs, errors) }}',
            name=name,
            inputs=posted,
            errors=errors,
        )
        first = routes.form_field(name, posted, {**errors, "other": "ignored"})
        kept = routes.form_field(name, with_others, errors)
    assert first == expected
    assert kept is first  # the second, with other fields' inputs, is the one kept
    if error:
        assert error in first
    for values in inputs.values():
        assert all(value in first for value in values)


def test_kept_fields_are_forgotten_all_at_once_past_the_limit(app, monkeypatch):
    """A process keeps at most FIELDS_KEPT rendered fields a template: dates and free text make
    new ones at every form, so past the limit they are all forgotten and kept again."""
    from portal.journey import routes

    monkeypatch.setattr(routes, "FIELDS_KEPT", 3)
    with app.test_request_context():
        template = app.jinja_env.get_template("journey/_fields.html")
        for code in ("LS1 4AP", "LS2 7UE", "LS3 1AA", "LS4 2BB"):
            routes.form_field("postcode", MultiDict({"postcode": code}), {})
        kept = routes._fields_of[template]
    assert len(kept) == 1 and next(iter(kept))[1] == (("LS4 2BB",),)


def test_a_saved_section_carries_the_token_it_was_checked_with(editor, register):
    """The section a save answers with reuses the CSRF token the save was checked with (no new
    signature at every save); that token saves again, and a forged one is still refused."""
    import time
    from unittest import mock

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    client, _, _ = editor
    episode = register(nhs_number(11), FRACTURE)
    client.csrf_token()
    with client.session_transaction() as session:
        raw = session["csrf_token"]
    # This session's token as signed an hour ago (tokens do not expire), so a token signed for
    # the answer would differ from it.
    signer = URLSafeTimedSerializer(client.application.secret_key, salt="wtf-csrf-token")
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=int(time.time()) - 3600):
        token = signer.dumps(raw)
    form = {**stage_answers("treatment"), "csrf_token": token}
    response = post_stage(client, episode, "treatment", form)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'name="csrf_token" value="{token}"' in html
    again = {**stage_answers("treatment"), "calcium_vitd": "No", "csrf_token": token}
    assert post_stage(client, episode, "treatment", again, version=2).status_code == 200
    forged = {**stage_answers("treatment"), "csrf_token": token[:-2] + "xx"}
    refused = client.post(
        f"/episodes/{episode.id}/stages/treatment",
        data={**forged, "submission_id": str(uuid.uuid4()), "version": "3"},
        headers=HTMX,
        csrf=False,
    )
    assert refused.status_code == 400
