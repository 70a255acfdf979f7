"""Scoping (404 for another service's records, every verb, admins included), roles, refractures,
history and the audit of views, delete and restore."""

from __future__ import annotations

from datetime import timedelta

import pytest
from werkzeug.datastructures import MultiDict

from portal.journey.rules import spaced_nhs_number
from tests.conftest import TEST_TODAY, sign_in

from .conftest import HTMX, date_inputs, nhs_number, registration
from .test_stages import post_stage, stage_answers

F = TEST_TODAY - timedelta(days=300)

ROUTES = [
    ("GET", "/patients/{patient}"),
    ("POST", "/patients/{patient}"),
    ("GET", "/patients/{patient}/episodes/new"),
    ("POST", "/patients/{patient}/episodes/new"),
    ("GET", "/episodes/{episode}"),
    ("GET", "/episodes/{episode}/stages/assessment"),
    ("POST", "/episodes/{episode}/stages/assessment"),
    ("GET", "/episodes/{episode}/history"),
    ("GET", "/episodes/{episode}/delete"),
    ("POST", "/episodes/{episode}/delete"),
    ("POST", "/episodes/{episode}/restore"),
]


@pytest.fixture
def other_service_record(client, make_service, make_user, db):
    """An episode of service LDS, registered by an LDS clinician who then signs out."""
    lds = make_service("LDS")
    author = make_user(role="clinician", services=[lds])
    sign_in(client, author)
    assert client.post("/patients/new", data=registration(nhs_number(50), F)).status_code == 303
    client.post("/auth/sign-out")
    from portal.models import Episode

    episode = db.session.query(Episode).one()
    return {"patient": episode.patient_id, "episode": episode.id}


@pytest.mark.parametrize("role", ["clinician", "lead", "admin"])
def test_another_services_ids_answer_404_for_every_route_and_verb(
    client, make_service, make_user, other_service_record, db, role
):
    from portal.models import AuditEvent, Episode

    brd = make_service("BRD")
    sign_in(client, make_user(role=role, services=[brd]))
    for method, pattern in ROUTES:
        url = pattern.format(**other_service_record)
        for headers in ({}, HTMX):
            response = client.open(
                url,
                method=method,
                data=MultiDict({"reason": "x", "confirm": "yes"}),
                headers=headers,
            )
            assert response.status_code == 404, (role, method, url, response.status_code)
    assert db.session.query(AuditEvent).filter_by(action="view").count() == 0
    assert db.session.get(Episode, other_service_record["episode"]).deleted_at is None


def test_clinician_cannot_delete_and_admin_cannot_edit(signed_in, register, db):
    from portal.models import AuditEvent

    client, _, service = signed_in(role="clinician")
    episode = register(nhs_number(51), F)
    assert client.get(f"/episodes/{episode.id}/delete").status_code == 403
    assert (
        client.post(
            f"/episodes/{episode.id}/delete", data={"reason": "x", "confirm": "yes"}
        ).status_code
        == 403
    )
    assert client.post(f"/episodes/{episode.id}/restore").status_code == 403
    assert db.session.query(AuditEvent).filter_by(action="permission_denied").count() >= 3


def test_lead_deletes_with_reason_and_confirmation_admin_restores(
    client, make_service, make_user, register, db
):
    from portal.models import AuditEvent, Episode, Service

    service = make_service()
    lead = make_user(role="lead", services=[service])
    admin = make_user(role="admin", services=[service])
    sign_in(client, lead)
    episode = register(nhs_number(52), F)
    form = client.get(f"/episodes/{episode.id}/delete")
    assert form.status_code == 200
    no_reason = client.post(
        f"/episodes/{episode.id}/delete", data={"reason": " ", "confirm": "yes"}
    )
    assert no_reason.status_code == 422 and "Enter the reason" in no_reason.get_data(as_text=True)
    unconfirmed = client.post(f"/episodes/{episode.id}/delete", data={"reason": "Wrong patient"})
    assert unconfirmed.status_code == 422 and "Confirm that you want" in unconfirmed.get_data(
        as_text=True
    )
    assert "Wrong patient</textarea>" in unconfirmed.get_data(as_text=True)
    db.session.expire_all()
    version = db.session.get(Service, service.id).data_version
    done = client.post(
        f"/episodes/{episode.id}/delete", data={"reason": "Wrong patient", "confirm": "yes"}
    )
    assert done.status_code == 303
    db.session.expire_all()
    deleted = db.session.get(Episode, episode.id)
    assert deleted.deleted_at is not None and deleted.deleted_reason == "Wrong patient"
    assert deleted.deleted_by_id == lead.id
    assert db.session.get(Service, service.id).data_version == version + 1
    event = db.session.query(AuditEvent).filter_by(action="delete").one()
    assert event.detail == "Wrong patient" and event.changes["deleted_reason"] == [
        None,
        "Wrong patient",
    ]
    assert client.get(f"/episodes/{episode.id}").status_code == 404
    # Admin of the service sees it in the deleted list and restores it.
    client.post("/auth/sign-out")
    sign_in(client, admin)
    listing = client.get("/episodes/deleted").get_data(as_text=True)
    assert spaced_nhs_number(episode.patient.nhs_number) in listing
    assert client.post(f"/episodes/{episode.id}/restore").status_code == 303
    db.session.expire_all()
    assert db.session.get(Episode, episode.id).deleted_at is None
    assert db.session.query(AuditEvent).filter_by(action="restore").count() == 1
    db.session.expire_all()
    assert db.session.get(Service, service.id).data_version == version + 2


def test_a_new_fracture_is_a_linked_episode_and_the_patient_page_lists_all(editor, register, db):
    from portal.models import Episode

    client, _, _ = editor
    first = register(nhs_number(53), F)
    later = F + timedelta(days=120)
    form = MultiDict(
        {**date_inputs("fracture_date", later), "fracture_sites": "Spine", "admitted": "Yes"}
    )
    response = client.post(f"/patients/{first.patient_id}/episodes/new", data=form)
    assert response.status_code == 303
    second = db.session.query(Episode).filter_by(fracture_date=later).one()
    assert second.previous_episode_id == first.id
    patient_page = client.get(f"/patients/{first.patient_id}").get_data(as_text=True)
    assert f"/episodes/{first.id}" in patient_page and f"/episodes/{second.id}" in patient_page
    episode_page = client.get(f"/episodes/{first.id}").get_data(as_text=True)
    assert "Later fracture" in episode_page
    # The same fracture date again offers the existing episode instead of a second one.
    again = client.post(f"/patients/{first.patient_id}/episodes/new", data=form, headers=HTMX)
    assert again.status_code == 409
    assert f"/episodes/{second.id}" in again.get_data(as_text=True)
    assert db.session.query(Episode).count() == 2


def test_history_shows_who_when_field_old_and_new(editor, register, db):
    client, user, _ = editor
    episode = register(nhs_number(54), F)
    assert (
        post_stage(client, episode, "treatment", stage_answers("treatment", F)).status_code == 200
    )
    db.session.refresh(episode)
    form = stage_answers("treatment", F)
    form["calcium_vitd"] = "No"
    assert post_stage(client, episode, "treatment", form).status_code == 200
    history = client.get(f"/episodes/{episode.id}/history").get_data(as_text=True)
    assert "Calcium and vitamin D recommended" in history
    assert "<td>Yes</td><td>No</td>" in history
    assert "<td>(empty)</td><td>Yes</td>" in history
    assert user.display_name in history
    assert "_version" not in history


def test_opening_a_patients_record_is_audited(editor, register, db):
    from portal.models import AuditEvent

    client, user, _ = editor
    episode = register(nhs_number(55), F)
    client.get(f"/episodes/{episode.id}")
    client.get(f"/patients/{episode.patient_id}")
    views = db.session.query(AuditEvent).filter_by(action="view").all()
    assert len(views) == 2
    assert {(v.entity_type, v.entity_id, v.user_id) for v in views} == {
        ("patient", episode.patient_id, user.id)
    }


def test_inactive_service_is_read_only(client, make_service, make_user, db):
    from portal.models import Service

    service = make_service()
    user = make_user(role="clinician", services=[service])
    sign_in(client, user)
    assert client.post("/patients/new", data=registration(nhs_number(56), F)).status_code == 303
    db.session.get(Service, service.id).active = False
    db.session.commit()
    from portal.models import Episode

    episode = db.session.query(Episode).one()
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert 'data-offline-form="episode-' not in page
    assert (
        post_stage(client, episode, "treatment", stage_answers("treatment", F)).status_code == 403
    )
    assert client.get("/patients/new").status_code == 403
