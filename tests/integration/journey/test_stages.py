"""Each stage saves by itself through htmx (section swapped in place) and as a plain post
(post/redirect/get), with its status and the dates that matter."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from tests.conftest import TEST_TODAY

from .conftest import HTMX, date_inputs, nhs_number

FRACTURE = TEST_TODAY - timedelta(days=400)


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
        date(2025, 1, 1) if TEST_TODAY > date(2025, 12, 31) else TEST_TODAY - timedelta(days=10)
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


def test_choices_show_what_was_saved(editor, register):
    """Radios and checkboxes check exactly the saved answers, with the divider before the first
    outcome of bone therapy."""
    import re

    from portal.journey import fields

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
    # Strontium ranelate, withdrawn in the UK, is offered only when already chosen.
    assert section.count('name="bone_therapy"') == len(options) - 1
    assert 'value="Strontium ranelate"' not in section
    divider = section.index("nhsuk-checkboxes__divider")
    first_outcome = section.index(f'value="{fields.spec("bone_therapy").exclusive_from}"')
    assert section.index(f'value="{options[0]}"') < divider < first_outcome


def test_a_saved_section_carries_a_token_that_saves_again(editor, register):
    """The section a save answers with carries a CSRF token that saves again; a forged one is
    refused."""
    import re

    client, _, _ = editor
    episode = register(nhs_number(11), FRACTURE)
    response = post_stage(client, episode, "treatment", stage_answers("treatment"))
    assert response.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))[1]
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
