"""Issue 18: letters to the GP and the patient, made from the record, editable while a draft,
kept unchanged once final, printable and downloadable as a PDF, audited; the lead's letterhead
with named placeholders; the patient letter in plain English."""

from __future__ import annotations

import html as htmllib
import re
from datetime import timedelta

import pytest
import textstat

from tests.conftest import TEST_TODAY

from .conftest import nhs_number
from .test_stages import post_stage, stage_answers

FRACTURE = TEST_TODAY - timedelta(days=60)


@pytest.fixture
def assessed(editor, register, db):
    """An episode with its assessment (DXA, T-score, FRAX) and treatment recorded."""
    client, _, _ = editor
    episode = register(
        nhs_number(401),
        FRACTURE,
        given_name="Mary",
        family_name="Seacole",
        gp_practice="Riverside Surgery",
        gp_practice_code="Y99001",
    )
    for stage in ("assessment", "treatment"):
        form = stage_answers(stage, FRACTURE)
        if stage == "assessment":
            form["falls_referred"] = "Yes"
        assert post_stage(client, episode, stage, form).status_code == 200
        db.session.refresh(episode)
    return episode


def _new_letter(client, episode, kind):
    response = client.post(f"/episodes/{episode.id}/letters", data={"kind": kind})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _text(page: str) -> str:
    match = re.search(r'<textarea[^>]*name="body"[^>]*>(.*?)</textarea>', page, re.S)
    assert match
    return htmllib.unescape(match.group(1))


def test_gp_letter_is_made_from_the_record(editor, assessed):
    client, _, _ = editor
    letter_id = _new_letter(client, assessed, "gp")
    page = client.get(f"/letters/{letter_id}").get_data(as_text=True)
    text = _text(page)
    windows_16 = assessed.fracture_date + timedelta(days=84)
    windows_52 = assessed.fracture_date + timedelta(days=392)
    for expected in (
        "Mary Seacole",
        f"NHS number {assessed.patient.nhs_number[:3]} ",
        "fragility fracture of the wrist",
        "lowest T-score -2.7",
        "FRAX 10-year probability of a major osteoporotic fracture: 18%",
        "Bone therapy recommended: Alendronate",
        "Calcium and vitamin D supplements recommended",
        "Referred for a falls assessment",
        f"{windows_16.day} {windows_16.strftime('%B %Y')}",
        f"{windows_52.day} {windows_52.strftime('%B %Y')}",
    ):
        assert expected in text, expected
    assert "Riverside Surgery (Y99001)" in htmllib.unescape(page)


def test_patient_letter_is_plain_english(editor, assessed, db):
    from portal.journey import letter_text

    body = letter_text.patient_letter(assessed, assessed.service)
    prose = " ".join(line for line in body.splitlines() if line and not line.startswith("Dear"))
    assert textstat.flesch_reading_ease(prose) >= 60, textstat.flesch_reading_ease(prose)
    assert "alendronate" in body and "calcium and vitamin D" in body


def test_a_draft_is_edited_then_kept_unchanged_once_final(editor, assessed, db):
    from portal.models import AuditEvent, Letter

    client, user, _ = editor
    letter_id = _new_letter(client, assessed, "patient")
    refused = client.post(f"/letters/{letter_id}", data={"recipient": "Mary", "body": " "})
    assert refused.status_code == 422 and 'id="body-error"' in refused.get_data(as_text=True)
    assert "Mary</textarea>" in refused.get_data(as_text=True)
    saved = client.post(
        f"/letters/{letter_id}",
        data={"recipient": "Mrs Mary Seacole", "body": "Dear Mary,\nHello.", "action": "final"},
    )
    assert saved.status_code == 303
    letter = db.session.get(Letter, letter_id)
    db.session.refresh(letter)
    assert letter.state == "final" and letter.finalised_by_id == user.id
    changed = client.post(f"/letters/{letter_id}", data={"recipient": "X", "body": "Changed"})
    assert changed.status_code == 422
    db.session.refresh(letter)
    assert letter.body == "Dear Mary,\nHello."
    episode_page = client.get(f"/episodes/{assessed.id}").get_data(as_text=True)
    assert "Mrs Mary Seacole" in episode_page and "Final" in episode_page
    pdf = client.get(f"/letters/{letter_id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    actions = [e.action for e in db.session.query(AuditEvent).filter_by(entity_type="letter")]
    assert actions.count("create") == 1 and "update" in actions and "export" in actions


def test_the_leads_letterhead_fills_its_placeholders(signed_in, register, db):
    client, _, service = signed_in(role="lead")
    settings = {
        "letter_heading": "{service_name}\nBone Health Team",
        "letter_address": "1 Infirmary Street, Leeds LS1 3EX",
        "letter_telephone": "01632 960000",
        "letter_signature": "{clinician_name}\nFLS nurse, {service_code}",
        "attempts_before_lost": "3",
    }
    assert client.post("/service/settings", data=settings).status_code == 303
    episode = register(nhs_number(402), FRACTURE)
    letter_id = _new_letter(client, episode, "gp")
    page = htmllib.unescape(client.get(f"/letters/{letter_id}").get_data(as_text=True))
    assert f"{service.name}\nBone Health Team" in page and "Telephone: 01632 960000" in page
    assert "Test lead\nFLS nurse, BRD" in page
    bad = client.post("/service/settings", data={**settings, "letter_heading": "{name.__class__}"})
    assert bad.status_code == 422 and "placeholder the portal does not know" in bad.get_data(
        as_text=True
    )


def test_a_clinician_cannot_change_the_service_settings(editor):
    client, _, _ = editor
    assert client.get("/service/settings").status_code == 403


def test_another_services_letter_is_not_found(client, editor, assessed, make_service, make_user):
    from tests.conftest import sign_in

    own_client, _, _ = editor
    letter_id = _new_letter(own_client, assessed, "gp")
    own_client.post("/auth/sign-out")
    sign_in(own_client, make_user(services=[make_service("OTH")]))
    assert own_client.get(f"/letters/{letter_id}").status_code == 404
    assert own_client.get(f"/letters/{letter_id}/pdf").status_code == 404
