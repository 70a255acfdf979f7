"""Admin pages: users and services, errors beside the field, every change audited."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.models import AuditEvent, Service, User
from tests.conftest import sign_in


def _admin(client, make_user):
    admin = make_user(role="admin")
    sign_in(client, admin)
    return admin


def test_admin_creates_user_and_hands_over_a_one_time_link(
    app, client, make_user, make_service, db
):
    service = make_service()
    _admin(client, make_user)
    response = client.post(
        "/admin/users/new",
        data={
            "email": "Sam.Nurse@NHS.test",
            "display_name": "Sam Nurse",
            "role": "clinician",
            "services": [service.id],
        },
    )
    assert response.status_code == 200
    link = re.search(r"/auth/set-password/([\w-]+)", response.get_data(as_text=True))
    assert link, "the one-time link is shown to the admin"
    user = db.session.scalar(select(User).where(User.email == "sam.nurse@nhs.test"))
    assert user.password_hash is None and [s.code for s in user.services] == ["BRD"]
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "create", AuditEvent.entity_type == "user")
    )
    assert event.changes["email"] == [None, "sam.nurse@nhs.test"]
    assert event.changes["role"] == [None, "clinician"]
    # The new user sets a password with the link and is signed in.
    newcomer = app.test_client()
    password = "orchard-lantern-river-8"
    response = newcomer.post(
        f"/auth/set-password/{link.group(1)}", data={"password": password, "confirm": password}
    )
    assert response.status_code == 302
    assert newcomer.get("/").status_code == 200


def test_create_user_errors_beside_fields_and_values_kept(client, make_user):
    existing = _admin(client, make_user)
    response = client.post(
        "/admin/users/new",
        data={"email": existing.email, "display_name": "Dup Licate", "role": "lead"},
    )
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert f"A user with the email {existing.email} already exists" in html
    assert 'value="Dup Licate"' in html
    response = client.post(
        "/admin/users/new", data={"email": "x@nhs.test", "display_name": "X", "role": "lead"}
    )
    assert "Clinicians and leads need at least one service" in response.get_data(as_text=True)


def test_edit_user_records_old_and_new_values(client, make_user, make_service, db):
    brd, cdf = make_service("BRD"), make_service("CDF", nation="Wales")
    _admin(client, make_user)
    user = make_user(role="clinician", services=[brd])
    response = client.post(
        f"/admin/users/{user.id}",
        data={
            "display_name": "Promoted",
            "role": "lead",
            "services": [brd.id, cdf.id],
            "active": "y",
            # Fields a user may not set are ignored.
            "email": "changed@nhs.test",
        },
    )
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.role == "lead" and user.email.startswith("clinician-")
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "update", AuditEvent.entity_id == user.id)
    )
    assert event.changes["role"] == ["clinician", "lead"]
    assert event.changes["services"] == ["BRD", "BRD,CDF"]
    assert event.changes["display_name"] == ["Test clinician", "Promoted"]


def test_reset_password_ends_sessions_and_issues_a_link(app, client, make_user, db):
    _admin(client, make_user)
    user = make_user(role="admin")
    other = app.test_client()
    sign_in(other, user)
    response = client.post(f"/admin/users/{user.id}/reset-password")
    assert response.status_code == 200
    assert "/auth/set-password/" in response.get_data(as_text=True)
    assert other.get("/").status_code == 302
    db.session.refresh(user)
    assert user.password_hash is None


def test_services_add_edit_and_refusals(client, make_user, db):
    _admin(client, make_user)
    response = client.post(
        "/admin/services/new",
        data={
            "code": "brd",
            "name": "Bradford FLS",
            "nation": "England",
            "expected_caseload": "1500",
        },
    )
    assert response.status_code == 302
    service = db.session.scalar(select(Service).where(Service.code == "BRD"))
    assert service.expected_caseload == 1500
    for code, message in (
        ("BRD", "A service with code BRD already exists"),
        ("ALL", "ALL is kept for the national figures"),
        ("TOOLONG", "3 letters or digits"),
    ):
        response = client.post(
            "/admin/services/new",
            data={"code": code, "name": "Other", "nation": "Wales", "expected_caseload": "10"},
        )
        assert message in response.get_data(as_text=True)
    response = client.post(
        "/admin/services/new",
        data={"code": "XYZ", "name": "Other", "nation": "Wales", "expected_caseload": "0"},
    )
    assert "Expected caseload must be above 0" in response.get_data(as_text=True)
    response = client.post(
        f"/admin/services/{service.id}",
        data={"name": "Bradford", "nation": "England", "expected_caseload": "1600", "code": "ZZZ"},
    )
    assert response.status_code == 302
    db.session.refresh(service)
    assert (service.code, service.active, service.expected_caseload) == ("BRD", False, 1600)
    assert service.data_version == 1
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "update", AuditEvent.entity_type == "service")
    )
    assert event.changes["expected_caseload"] == [1500, 1600]
    assert event.changes["active"] == [True, False]
