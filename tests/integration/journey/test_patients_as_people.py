"""Issue 18: the patient's direct-care fields in the forms and the history, a hospital number
unique within a service, finding a patient by name, number or date of birth (posted, audited),
and NHS numbers shown as 999 590 8301."""

from __future__ import annotations

import html as htmllib
from datetime import date, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from tests.conftest import TEST_TODAY

from .conftest import HTMX, nhs_number, registration

FRACTURE = TEST_TODAY - timedelta(days=30)
PEOPLE = dict(
    given_name="  Zoë   Anne ",
    family_name="Ørsted-Müller",
    hospital_number="rxh123456",
    phone="01632 960123; 07700 900456",
    gp_practice="Riverside Surgery",
    gp_practice_code="y99001",
    preferred_language="Welsh",
    interpreter_needed="No",
)


@pytest.fixture
def person(editor, register, db):
    """A patient registered with every direct-care field."""
    episode = register(nhs_number(301), FRACTURE, **PEOPLE)
    db.session.refresh(episode)
    return episode.patient


def test_registration_keeps_the_direct_care_fields_by_the_rules(person):
    assert person.given_name == "Zoë Anne"
    assert person.family_name == "Ørsted-Müller"
    assert person.family_name_search == "orsted-muller"
    assert person.hospital_number == "RXH123456"
    assert person.phone == "01632 960123; 07700 900456"
    assert person.gp_practice_code == "Y99001"
    assert person.interpreter_needed == "No"


def test_refused_direct_care_values_are_shown_beside_their_field_and_kept(editor):
    client, _, _ = editor
    form = registration(
        nhs_number(302), FRACTURE, phone="123", gp_practice_code="86001B", hospital_number="AB-1"
    )
    response = client.post("/patients/new", data=form)
    assert response.status_code == 422
    page = htmllib.unescape(response.get_data(as_text=True))
    for field in ("phone", "gp_practice_code", "hospital_number"):
        assert f'id="{field}-error"' in page
    assert "10 to 15 digits" in page and 'value="123"' in page and 'value="86001B"' in page


def test_a_hospital_number_names_one_patient_of_a_service(editor, person, db, make_service):
    from portal.models import Patient

    client, _, service = editor
    response = client.post(
        "/patients/new", data=registration(nhs_number(303), FRACTURE, hospital_number="RXH123456")
    )
    assert response.status_code == 422
    assert "already another patient" in response.get_data(as_text=True)
    # The database holds it too; another service may use the same number.
    db.session.add(
        Patient(
            service_id=service.id,
            nhs_number=nhs_number(304),
            date_of_birth=date(1950, 1, 1),
            sex="Male",
            hospital_number="RXH123456",
        )
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    other = make_service("OTH")
    db.session.add(
        Patient(
            service_id=other.id,
            nhs_number=nhs_number(304),
            date_of_birth=date(1950, 1, 1),
            sex="Male",
            hospital_number="RXH123456",
        )
    )
    db.session.commit()


def test_patient_details_change_the_fields_and_the_history_keeps_them(editor, person, db):
    from .conftest import section_form

    client, _, _ = editor
    page = client.get(f"/patients/{person.id}").get_data(as_text=True)
    assert "Zoë Anne Ørsted-Müller" in htmllib.unescape(page)
    form = section_form(page, "patient-details")
    form["phone"] = "07700 900999"
    form["interpreter_needed"] = "Yes"
    response = client.post(f"/patients/{person.id}", data=form, headers=HTMX)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    db.session.refresh(person)
    assert person.phone == "07700 900999"
    episode = person.episodes[0]
    history = client.get(f"/episodes/{episode.id}/history").get_data(as_text=True)
    assert "Telephone" in history and "07700 900999" in history
    assert "Interpreter needed" in history


def test_nhs_numbers_are_shown_three_three_four(editor, person):
    client, _, _ = editor
    spaced = f"{person.nhs_number[:3]} {person.nhs_number[3:6]} {person.nhs_number[6:]}"
    for url in (f"/patients/{person.id}", f"/episodes/{person.episodes[0].id}"):
        page = client.get(url).get_data(as_text=True)
        assert spaced in page


def _find(client, **fields):
    return client.post("/patients/find", data=fields)


def test_find_by_family_name_ignores_case_and_accents(editor, person, db):
    from portal.models import AuditEvent

    client, _, _ = editor
    for typed in ("orsted", "ØRSTED-müller", "Orsted-Muller"):
        response = _find(client, family_name=typed)
        page = htmllib.unescape(response.get_data(as_text=True))
        assert response.status_code == 200 and "1 patient found" in page, typed
        assert "Zoë Anne Ørsted-Müller" in page
        assert f"{person.nhs_number[:3]} {person.nhs_number[3:6]}" in page
        assert "(age 76)" in page or "(age " in page
        assert "FLS assessment, by" in page  # the latest episode's next step
    narrowed = _find(client, family_name="orsted", given_name="zoe").get_data(as_text=True)
    assert "1 patient found" in narrowed
    none = _find(client, family_name="orsted", given_name="Ann-Marie").get_data(as_text=True)
    assert "0 patients found" in none
    events = db.session.query(AuditEvent).filter_by(action="search").all()
    assert events and all("Orsted" not in (e.detail or "") for e in events)
    assert "family_name" in events[0].detail


def test_find_by_hospital_number_and_date_of_birth(editor, person):
    client, _, _ = editor
    assert "1 patient found" in _find(client, hospital_number="rxh123456").get_data(as_text=True)
    born = {"date_of_birth-day": "15", "date_of_birth-month": "6", "date_of_birth-year": "1950"}
    assert "1 patient found" in _find(client, **born).get_data(as_text=True)
    by_number = _find(client, nhs_number=person.nhs_number)
    assert by_number.status_code == 303 and by_number.headers["Location"].endswith(
        f"/patients/{person.id}"
    )


def test_find_refuses_nothing_or_a_given_name_alone_and_keeps_what_was_typed(editor):
    client, _, _ = editor
    assert _find(client).status_code == 422
    alone = _find(client, given_name="Zoë")
    assert alone.status_code == 422
    page = htmllib.unescape(alone.get_data(as_text=True))
    assert 'id="given_name-error"' in page and 'value="Zoë"' in page


def test_a_search_never_reaches_a_url_and_another_service_finds_nobody(
    client, person, make_service, make_user
):
    from tests.conftest import sign_in

    other = make_service("OTH")
    client.post("/auth/sign-out")
    sign_in(client, make_user(services=[other]))
    response = _find(client, family_name="orsted")
    assert "0 patients found" in response.get_data(as_text=True)
    page = client.get("/patients/find?family_name=orsted").get_data(as_text=True)
    assert "patients found" not in page
