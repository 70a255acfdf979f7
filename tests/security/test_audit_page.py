"""The audit page (security.md, audit trail): admins see every event, leads their current
service's; filters by user, record, action and dates; paged; field values of a service the admin
is not a member of are withheld; clinicians are refused; no route edits or deletes an event."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from tests.conftest import sign_in
from tests.security.routes import all_routes


@pytest.fixture
def trail(db, make_service, make_user):
    """Two services, a patient in each, and audit events of both."""
    from portal.audit import events as audit
    from portal.audit.actor import Actor
    from portal.models import AuditEvent, Patient

    brd = make_service("BRD")
    oth = make_service("OTH")
    nurse_brd = make_user(role="clinician", services=[brd], email="nurse.brd@nhs.test")
    nurse_oth = make_user(role="clinician", services=[oth], email="nurse.oth@nhs.test")
    patients = {}
    for service, nurse, nhs in ((brd, nurse_brd, "9434765919"), (oth, nurse_oth, "9434765870")):
        patient = Patient(
            service_id=service.id, nhs_number=nhs, date_of_birth=date(1940, 5, 1), sex="Female"
        )
        db.session.add(patient)
        db.session.flush()
        audit.record(
            Actor.for_user(nurse, "10.0.0.1"), "create", patient, {"nhs_number": (None, nhs)}
        )
        audit.record(Actor.for_user(nurse, "10.0.0.1"), "view", patient)
        patients[service.code] = patient
    old = audit.record(
        Actor.for_user(nurse_brd, "10.0.0.1"), "export", service_id=brd.id, detail="records export"
    )
    db.session.get(AuditEvent, old).at = datetime(2025, 1, 15, 10, 0)
    db.session.commit()
    return brd, oth, patients


def _rows(response) -> int:
    return response.get_data(as_text=True).count('class="portal-audit-row"')


def test_lead_sees_only_the_current_service(client, make_user, trail):
    brd, _oth, _ = trail
    sign_in(client, make_user(role="lead", services=[brd]))
    page = client.get("/audit/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "943 476 5919" in html  # a change of the lead's own service, with its values
    assert (
        "943 476 5870" not in html and "9434765870" not in html and "nurse.oth@nhs.test" not in html
    )
    assert "OTH" not in html


def test_admin_sees_all_but_values_of_other_services_are_withheld(client, make_user, trail):
    brd, oth, _ = trail
    sign_in(client, make_user(role="admin", services=[brd]))
    html = client.get("/audit/").get_data(as_text=True)
    assert "nurse.oth@nhs.test" in html and "nurse.brd@nhs.test" in html
    assert "943 476 5919" in html  # member of BRD: values shown (NHS numbers as 3-3-4)
    assert "943 476 5870" not in html  # not a member of OTH: values withheld
    assert "Field values withheld" in html


def test_clinician_may_not_read_the_audit_page(client, make_user, trail, db):
    from portal.models import AuditEvent

    brd, _, _ = trail
    user = make_user(role="clinician", services=[brd])
    sign_in(client, user)
    assert client.get("/audit/").status_code == 403
    denial = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "permission_denied")
    ).one()
    assert denial.user_id == user.id


def test_filters(client, make_user, trail):
    brd, oth, patients = trail
    sign_in(client, make_user(role="admin", services=[brd, oth]))
    assert _rows(client.get("/audit/?action=view")) == 2
    assert _rows(client.get("/audit/?user=nurse.oth")) == 2
    patient = patients["OTH"]
    assert _rows(client.get(f"/audit/?entity_type=patient&entity_id={patient.id}")) == 2
    today = clock.utcnow().date()
    assert _rows(client.get("/audit/?date_from=2025-01-01&date_to=2025-01-31")) == 1
    assert _rows(client.get(f"/audit/?date_from={today + timedelta(days=1)}")) == 0
    refused = client.get("/audit/?date_from=2025-02-01&date_to=2025-01-01")
    assert b"must be the same as or after" in refused.data
    assert b"nhsuk-error-summary" in refused.data
    bad = client.get("/audit/?entity_id=abc&date_from=2025-13-01")
    assert bad.status_code == 200 and b"nhsuk-error-message" in bad.data


def test_paged(client, make_user, db, make_service):
    from portal.audit import events as audit
    from portal.audit.actor import Actor

    service = make_service("PGD")
    lead = make_user(role="lead", services=[service])
    for n in range(120):
        audit.record(
            Actor.for_user(lead, None),
            "view",
            service_id=service.id,
            entity_type="patient",
            entity_id=n + 1,
        )
    db.session.commit()
    sign_in(client, lead)
    first = client.get("/audit/?action=view")
    assert _rows(first) == 50 and b"Page 1 of 3" in first.data
    assert b"page=2" in first.data and b"action=view" in first.data
    assert _rows(client.get("/audit/?action=view&page=3")) == 20
    assert _rows(client.get("/audit/?action=view&page=99")) == 20  # past the end: the last page


def test_entries_are_escaped(client, make_user, db, make_service):
    from portal.audit import events as audit
    from portal.audit.actor import Actor

    service = make_service("XSS")
    lead = make_user(role="lead", services=[service])
    audit.record(
        Actor.for_user(lead, None),
        "update",
        service_id=service.id,
        entity_type="episode",
        entity_id=1,
        changes={"notes": ("", "<script>alert(1)</script>")},
        detail="<img src=x onerror=alert(1)>",
    )
    db.session.commit()
    sign_in(client, lead)
    html = client.get("/audit/").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html


def test_no_route_edits_or_deletes_audit_events(app, client, make_user, trail, db):
    from portal.models import AuditEvent

    for route in all_routes(app):
        if "audit" in route.rule or route.endpoint.startswith("audit."):
            assert route.methods <= {"GET"}, route
    # And nothing writes to an existing event: sign in as admin and post to every audit path.
    brd, _, _ = trail
    sign_in(client, make_user(role="admin", services=[brd]))
    before = db.session.execute(
        select(AuditEvent.id, AuditEvent.action, AuditEvent.changes).order_by(AuditEvent.id)
    ).all()
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(f"/audit/?id={before[0].id}", data={"action": "x"})
        assert response.status_code == 405
    after = db.session.execute(
        select(AuditEvent.id, AuditEvent.action, AuditEvent.changes)
        .where(AuditEvent.id <= before[-1].id)
        .order_by(AuditEvent.id)
    ).all()
    assert after == before
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) >= len(before)
