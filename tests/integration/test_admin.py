"""Admin pages: users and services, errors beside the field, every change audited."""

from __future__ import annotations

import re

import pytest
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


def test_an_admin_cannot_add_themselves_to_a_service_another_admin_can(
    app, db, make_service, make_user
):
    """Issue 23, finding 11: an admin gave themselves a service (and so its patients) through
    their own user page. Now another admin does it; both attempts are in the trail."""
    from sqlalchemy import select

    from portal.models import AuditEvent, User

    brd, lds = make_service("BRD"), make_service("LDS")
    me = make_user(role="admin", services=[brd])
    colleague = make_user(role="admin")
    mine = app.test_client()
    sign_in(mine, me)

    def my_services(client, *services):
        data = {"display_name": "Me", "role": "admin", "active": "y"}
        return client.post(f"/admin/users/{me.id}", data={**data, "services": list(services)})

    refused = my_services(mine, brd.id, lds.id)
    assert refused.status_code == 200
    assert b"ask another admin" in refused.data
    db.session.expire_all()
    assert {s.code for s in db.session.get(User, me.id).services} == {"BRD"}
    denied = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "permission_denied")
    ).one()
    assert denied.user_id == me.id and denied.entity_id == me.id and "LDS" in denied.detail

    theirs = app.test_client()
    sign_in(theirs, colleague)
    done = my_services(theirs, brd.id, lds.id)
    assert done.status_code == 302
    db.session.expire_all()
    assert {s.code for s in db.session.get(User, me.id).services} == {"BRD", "LDS"}
    update = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "update", AuditEvent.entity_id == me.id)
    ).one()
    assert update.user_id == colleague.id
    # Taking oneself out of a service needs nobody else (the change above ended my sessions).
    sign_in(mine, me)
    my_services(mine, brd.id)
    db.session.expire_all()
    assert {s.code for s in db.session.get(User, me.id).services} == {"BRD"}


def test_nobody_raises_their_own_role_but_the_command_line_may(db, make_service, make_user):
    from portal.accounts import users as accounts
    from portal.audit.actor import Actor

    brd = make_service("BRD")
    lead = make_user(role="clinician", services=[brd])
    with pytest.raises(accounts.AccountError, match="raise your own role"):
        accounts.update_user(
            Actor.for_user(lead, "10.0.0.1"),
            lead,
            display_name="Lead",
            role="lead",
            services=[brd],
            active=True,
        )
    db.session.rollback()
    changes = accounts.update_user(
        Actor.command_line(), lead, display_name="Lead", role="lead", services=[brd], active=True
    )
    assert changes["role"] == ("clinician", "lead")
