"""Find or register a patient: one registration, never a second copy of a patient or episode."""

from __future__ import annotations

from datetime import timedelta

from portal.journey.rules import spaced_nhs_number
from tests.conftest import TEST_TODAY

from .conftest import HTMX, nhs_number, registration

TODAY_ISH = TEST_TODAY - timedelta(days=30)


def test_find_accepts_spaces_and_dashes_and_offers_registration(editor, db):
    client, _, _ = editor
    nhs = nhs_number(1)
    spaced = f"{nhs[:3]} {nhs[3:6]}-{nhs[6:]}"
    response = client.post("/patients/find", data={"nhs_number": spaced})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"No patient with NHS number {spaced_nhs_number(nhs)}" in page
    assert f'name="nhs_number" value="{nhs}"' in page  # "Register this patient" posts it on
    start = client.post("/patients/new", data={"start": "1", "nhs_number": nhs})
    assert start.status_code == 200 and f'value="{nhs}"' in start.get_data(as_text=True)
    from portal.models import Patient

    assert db.session.query(Patient).count() == 0  # starting a registration saves nothing


def test_nhs_numbers_never_travel_in_urls(editor):
    client, _, _ = editor
    nhs = nhs_number(4)
    page = client.get("/patients/find").get_data(as_text=True)
    assert 'method="post"' in page
    response = client.post("/patients/find", data={"nhs_number": nhs})
    assert nhs not in (response.headers.get("Location") or "")
    assert f"nhs_number={nhs}" not in response.get_data(as_text=True)


def test_find_refuses_an_invalid_number_beside_the_field(editor):
    client, _, _ = editor
    response = client.post("/patients/find", data={"nhs_number": "1234567890"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="nhs_number-error"' in page
    assert 'href="#nhs_number"' in page
    assert 'value="1234567890"' in page


def test_register_plain_post_then_find_redirects_to_patient(editor, db):
    from portal.models import AuditEvent, Episode, Patient, Service

    client, user, service = editor
    nhs = nhs_number(2)
    form = registration(f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}", TODAY_ISH)
    response = client.post("/patients/new", data=form)
    assert response.status_code == 303
    patient = db.session.query(Patient).filter_by(nhs_number=nhs).one()
    assert patient.postcode == "SW1A 2AA"
    episode = db.session.query(Episode).filter_by(patient_id=patient.id).one()
    assert response.headers["Location"].endswith(f"/episodes/{episode.id}")
    assert episode.fracture_sites == "Wrist" and episode.created_by_id == user.id
    creates = db.session.query(AuditEvent).filter_by(action="create").all()
    assert {e.entity_type for e in creates} == {"patient", "episode"}
    assert all(e.changes["_version"] == [None, 1] for e in creates)
    db.session.expire_all()
    assert db.session.get(Service, service.id).data_version == 2
    found = client.post("/patients/find", data={"nhs_number": nhs})
    assert found.status_code == 303
    assert found.headers["Location"].endswith(f"/patients/{patient.id}")


def test_register_htmx_redirects_with_hx_redirect(editor, db):
    from portal.models import Episode

    client, _, _ = editor
    response = client.post(
        "/patients/new", data=registration(nhs_number(3), TODAY_ISH), headers=HTMX
    )
    assert response.status_code == 200
    episode = db.session.query(Episode).one()
    assert response.headers["HX-Redirect"].endswith(f"/episodes/{episode.id}")


def test_registering_an_existing_number_offers_the_existing_patient(editor, register, db):
    from portal.models import Patient

    client, _, _ = editor
    nhs = nhs_number(4)
    episode = register(nhs, TODAY_ISH)
    response = client.post(
        "/patients/new", data=registration(nhs, TODAY_ISH - timedelta(days=100)), headers=HTMX
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "already registered" in page
    assert f"/patients/{episode.patient_id}" in page
    assert f"/patients/{episode.patient_id}/episodes/new" in page
    assert db.session.query(Patient).count() == 1


def test_registration_errors_keep_everything_typed(editor, db):
    from portal.models import Patient

    client, _, _ = editor
    form = registration(
        nhs_number(5), TODAY_ISH, **{"date_of_birth-year": "1990", "postcode": "zz"}
    )
    response = client.post("/patients/new", data=form, headers=HTMX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "must be 50 or over" in page
    assert "Postcode must be a UK postcode" in page
    assert 'value="1990"' in page and 'value="zz"' in page
    assert 'value="Female" checked' in page
    assert 'id="date_of_birth-error"' in page and 'href="#date_of_birth-day"' in page
    assert db.session.query(Patient).count() == 0
    # Without JavaScript: the whole page, same errors.
    plain = client.post("/patients/new", data=form)
    assert plain.status_code == 422
    assert "<html" in plain.get_data(as_text=True) and "must be 50 or over" in plain.get_data(
        as_text=True
    )
