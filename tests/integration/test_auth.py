"""Sign-in, sign-out, throttling, one-time links and the end of every session of a user."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from portal import clock
from portal.accounts import users as accounts
from portal.audit.actor import Actor
from portal.models import AuditEvent, User
from tests.conftest import TEST_PASSWORD, sign_in


def _events(db, action):
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_sign_in_and_out(client, make_user, db):
    user = make_user(role="admin")
    sign_in(client, user)
    assert client.get("/").status_code == 200
    response = client.post("/auth/sign-out")
    assert response.status_code == 302
    assert client.get("/").status_code == 302
    assert len(_events(db, "sign_in")) == 1
    assert len(_events(db, "sign_out")) == 1


def test_email_is_matched_in_any_case(client, make_user):
    user = make_user(role="admin", email="Nurse.Jones@nhs.test".lower())
    response = client.post(
        "/auth/sign-in", data={"email": "NURSE.JONES@nhs.test", "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert user.email == "nurse.jones@nhs.test"


def test_unknown_email_and_wrong_password_get_the_same_message(client, make_user, db):
    user = make_user(role="clinician", services=[])
    wrong = client.post("/auth/sign-in", data={"email": user.email, "password": "not-the-password"})
    unknown = client.post(
        "/auth/sign-in", data={"email": "nobody@nhs.test", "password": "not-the-password"}
    )
    assert wrong.status_code == unknown.status_code == 200
    assert accounts.SIGN_IN_REFUSED.encode() in wrong.data
    assert accounts.SIGN_IN_REFUSED.encode() in unknown.data
    assert b"nobody@nhs.test" in unknown.data  # what the user typed stays
    assert len(_events(db, "sign_in_failed")) == 2


def test_repeated_failures_slow_the_account_down_then_let_it_in(client, make_user, db, app):
    # Password step only (the second factor has its own tests in tests/security/).
    user = make_user(role="admin", second_factor=False)
    free = app.config["LOGIN_THROTTLE_FREE_FAILURES"]
    for _ in range(free + 1):
        client.post("/auth/sign-in", data={"email": user.email, "password": "wrong-password-1"})
    db.session.refresh(user)
    assert user.failed_login_count >= free
    # A few more failures ago, so the wait (32 s) outlasts a slow test machine.
    user.failed_login_count = free + 5
    user.last_failed_login_at = clock.utcnow()
    db.session.commit()
    # Even the right password waits while the account is slowed down.
    response = client.post("/auth/sign-in", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed attempts" in response.data
    # Not a permanent lock-out: once the wait has passed the right password works.
    db.session.refresh(user)
    user.last_failed_login_at = clock.utcnow() - timedelta(hours=1)
    db.session.commit()
    response = client.post("/auth/sign-in", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.failed_login_count == 0


def test_throttle_wait_doubles_and_is_capped():
    user = User(failed_login_count=5, last_failed_login_at=datetime(2026, 1, 1, 12, 0, 0))
    now = datetime(2026, 1, 1, 12, 0, 0)
    assert accounts.throttle_wait(user, now, free=5, max_seconds=900) == 1
    user.failed_login_count = 9
    assert accounts.throttle_wait(user, now, free=5, max_seconds=900) == 16
    user.failed_login_count = 40
    assert accounts.throttle_wait(user, now, free=5, max_seconds=900) == 900
    assert accounts.throttle_wait(user, now + timedelta(seconds=901), free=5, max_seconds=900) == 0


def test_copied_cookie_refused_after_sign_out(app, make_user):
    user = make_user(role="admin")
    browser = app.test_client()
    sign_in(browser, user)
    stolen = browser.get_cookie("session").value
    browser.post("/auth/sign-out")
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302


def test_copied_cookie_refused_after_password_change(app, make_user):
    user = make_user(role="admin")
    browser = app.test_client()
    sign_in(browser, user)
    stolen = browser.get_cookie("session").value
    new_password = "a-brand-new-passphrase-42"
    response = browser.post(
        "/auth/password",
        data={"current_password": TEST_PASSWORD, "password": new_password, "confirm": new_password},
    )
    assert response.status_code == 302
    # The browser that changed it carries on with a fresh session ...
    assert browser.get("/").status_code == 200
    # ... but the copied cookie no longer works.
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302


def test_clinician_without_service_refused_beside_the_field(app, make_user):
    user = make_user(role="clinician")
    admin = make_user(role="admin")
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    response = admin_client.post(
        f"/admin/users/{user.id}",
        data={"display_name": "Renamed", "role": "clinician", "active": "y"},
    )
    assert response.status_code == 200
    assert b"Clinicians and leads need at least one service" in response.data
    assert b'value="Renamed"' in response.data  # what the admin typed stays


def test_deactivation_ends_sessions(app, make_user, make_service):
    service = make_service()
    user = make_user(role="clinician", services=[service])
    admin = make_user(role="admin")
    browser = app.test_client()
    sign_in(browser, user)
    stolen = browser.get_cookie("session").value
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    response = admin_client.post(
        f"/admin/users/{user.id}",
        # The "active" box left unticked: the account is deactivated.
        data={"display_name": "Test clinician", "role": "clinician", "services": [service.id]},
    )
    assert response.status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302
    assert browser.get("/").status_code == 302


def test_password_change_refuses_weak_and_wrong_current(signed_in):
    client, user, _ = signed_in()
    response = client.post(
        "/auth/password",
        data={"current_password": "wrong-one-here", "password": "x" * 14, "confirm": "x" * 14},
    )
    assert b"Your current password is not correct" in response.data
    response = client.post(
        "/auth/password",
        data={"current_password": TEST_PASSWORD, "password": "short", "confirm": "short"},
    )
    assert b"at least 12 characters" in response.data
    response = client.post(
        "/auth/password",
        data={
            "current_password": TEST_PASSWORD,
            "password": "password1234",
            "confirm": "password1234",
        },
    )
    assert b"too common" in response.data


def test_one_time_link_sets_password_once(app, client, db, make_service):
    service = make_service()
    user = accounts.create_user(
        Actor.command_line(), "new.nurse@nhs.test", "New Nurse", "clinician", [service]
    )
    token = accounts.issue_setup_token(user, 72)
    db.session.commit()
    page = client.get(f"/auth/set-password/{token}")
    assert page.status_code == 200
    password = "lilac-harbour-engine-77"
    response = client.post(
        f"/auth/set-password/{token}", data={"password": password, "confirm": password}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    # The link works once.
    assert app.test_client().get(f"/auth/set-password/{token}").status_code == 404
    client.post("/auth/sign-out")
    response = client.post("/auth/sign-in", data={"email": user.email, "password": password})
    assert response.status_code == 302


def test_expired_link_refused(client, db, make_service):
    user = accounts.create_user(Actor.command_line(), "late@nhs.test", "Late", "admin", [])
    token = accounts.issue_setup_token(user, 72)
    user.setup_token_expires_at = clock.utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert client.get(f"/auth/set-password/{token}").status_code == 404


def test_next_parameter_never_leaves_the_site(client, make_user):
    user = make_user(role="admin", second_factor=False)
    response = client.post(
        "/auth/sign-in?next=//evil.example/x",
        data={"email": user.email, "password": TEST_PASSWORD},
    )
    assert response.headers["Location"] == "/"


def test_htmx_request_after_sign_out_gets_401_not_a_redirect(client, make_user):
    user = make_user(role="admin")
    sign_in(client, user)
    client.post("/auth/sign-out")
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert "Location" not in response.headers


def test_post_without_csrf_token_refused(client, make_user):
    user = make_user(role="admin")
    response = client.post(
        "/auth/sign-in", data={"email": user.email, "password": TEST_PASSWORD}, csrf=False
    )
    assert response.status_code in (200, 400)
    assert client.get("/").status_code == 302  # not signed in
