"""Who saw what (issue 23, finding 12; security.md, "Audit trail"): a worklist page (a list of
patients) and an NHS-number search are views in the trail, with who, where and which patients."""

from __future__ import annotations

from sqlalchemy import select

from portal.models import AuditEvent
from tests.conftest import sign_in


def _events(db, action):
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_every_worklist_page_is_audited_with_the_patients_shown(client, db, world, make_user):
    from portal.journey.worklists import WORKLISTS

    mine, _theirs, records = world
    user = make_user(role="clinician", services=[mine])
    sign_in(client, user)
    for key in WORKLISTS:
        assert client.get(f"/worklists/{key}").status_code == 200
    events = _events(db, "view_list")
    assert len(events) == len(WORKLISTS)
    assert all(e.user_id == user.id and e.service_id == mine.id for e in events)
    assert all(e.remote_addr == "127.0.0.1" for e in events)
    patient = str(records["BRD"]["patient_id"])
    assert any(e.detail.endswith(f"patients shown {patient}") for e in events), [
        e.detail for e in events
    ]


def test_a_search_by_nhs_number_is_audited_found_or_not(client, db, world, make_user):
    from portal.models import Patient

    mine, _theirs, records = world
    sign_in(client, make_user(role="clinician", services=[mine]))
    patient = db.session.get(Patient, records["BRD"]["patient_id"])
    found = client.post("/patients/find", data={"nhs_number": patient.nhs_number})
    assert found.status_code == 303
    from tests.integration.journey.conftest import nhs_number

    assert client.post("/patients/find", data={"nhs_number": nhs_number(99)}).status_code == 200
    searches = _events(db, "search")
    assert [(e.entity_type, e.entity_id) for e in searches] == [
        ("patient", patient.id),
        (None, None),
    ]
    assert all(patient.nhs_number not in (e.detail or "") for e in searches)
