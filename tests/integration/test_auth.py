"""Sign-in, sign-out, throttling, one-time links and the end of every session of a user."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from portal import clock
from portal.accounts import users as accounts
from portal.audit.actor import Actor
from portal.models import AuditEvent
from tests.conftest import TEST_PASSWORD, confirm_identity, sign_in


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


def _throttle(db, email: str, address: str = "127.0.0.1"):
    from portal.models import SignInThrottle

    return db.session.scalar(
        select(SignInThrottle).where(
            SignInThrottle.email == email, SignInThrottle.address == address
        )
    )


def test_repeated_failures_slow_the_account_down_then_let_it_in(client, make_user, db, app):
    # Password step only (the second factor has its own tests in tests/security/).
    user = make_user(role="admin", second_factor=False)
    free = app.config["LOGIN_THROTTLE_FREE_FAILURES"]
    for _ in range(free + 1):
        client.post("/auth/sign-in", data={"email": user.email, "password": "wrong-password-1"})
    throttle = _throttle(db, user.email)
    assert throttle.failures >= free
    # A few more failures ago, so the wait (32 s) outlasts a slow test machine.
    throttle.failures = free + 5
    throttle.last_failed_at = clock.utcnow()
    db.session.commit()
    # Even the right password waits while this email is slowed down from this address.
    response = client.post("/auth/sign-in", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.data
    # Not a permanent lock-out: once the wait has passed the right password works.
    throttle = _throttle(db, user.email)
    throttle.last_failed_at = clock.utcnow() - timedelta(hours=1)
    db.session.commit()
    response = client.post("/auth/sign-in", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    db.session.expire_all()
    assert _throttle(db, user.email) is None


def test_throttle_wait_doubles_and_is_capped(app, db):
    from portal.accounts import throttling

    now = datetime(2026, 1, 1, 12, 0, 0)
    there = Actor.visitor("10.0.0.1")
    for _ in range(5):
        throttling.record_failure(there, "someone@nhs.test", now)
    db.session.commit()

    def wait(at):
        return throttling.wait_seconds("someone@nhs.test", "10.0.0.1", at, free=5, max_seconds=900)

    assert wait(now) == 1
    for _ in range(4):
        throttling.record_failure(there, "someone@nhs.test", now)
    assert wait(now) == 16
    for _ in range(31):
        throttling.record_failure(there, "SOMEONE@nhs.test ", now)
    assert wait(now) == 900
    assert wait(now + timedelta(seconds=901)) == 0
    # Another address is not slowed down at all.
    assert throttling.wait_seconds("someone@nhs.test", "10.0.0.2", now, 5, 900) == 0


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
    confirm_identity(browser, user)
    response = browser.post(
        "/auth/password", data={"password": new_password, "confirm": new_password}
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


def test_password_change_asks_who_it_is_then_refuses_weak(signed_in):
    client, user, _ = signed_in()
    asked = client.post("/auth/password", data={"password": "x" * 14, "confirm": "x" * 14})
    assert asked.status_code == 302 and "/auth/confirm" in asked.headers["Location"]
    wrong = client.post("/auth/confirm", data={"password": "wrong-one-here"})
    assert b"Enter your correct password" in wrong.data
    confirm_identity(client, user)
    response = client.post("/auth/password", data={"password": "short", "confirm": "short"})
    assert b"at least 12 characters" in response.data
    response = client.post(
        "/auth/password", data={"password": "password1234", "confirm": "password1234"}
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


def test_guesses_from_one_address_never_lock_the_owner_out_from_another(client, make_user, app):
    """Issue 23, finding 2: seven wrong passwords from one address used to answer 429 to the
    owner's right password from another."""
    user = make_user(role="lead", second_factor=False)
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    for _ in range(app.config["LOGIN_THROTTLE_FREE_FAILURES"] + 2):
        client.post(
            "/auth/sign-in",
            data={"email": user.email, "password": "a-wrong-guess-000"},
            environ_base=attacker,
        )
    slowed = client.post(
        "/auth/sign-in",
        data={"email": user.email, "password": TEST_PASSWORD},
        environ_base=attacker,
    )
    assert slowed.status_code == 429  # the attacker's own pair stays slowed down
    owner = app.test_client()
    response = owner.post(
        "/auth/sign-in",
        data={"email": user.email, "password": TEST_PASSWORD},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/")


def test_a_slowed_down_answer_does_not_tell_whether_the_account_exists(client, make_user, app):
    user = make_user(role="lead", second_factor=False)
    answers = {}
    for email in (user.email, "nobody-here@nhs.test"):
        for _ in range(app.config["LOGIN_THROTTLE_FREE_FAILURES"] + 2):
            last = client.post("/auth/sign-in", data={"email": email, "password": "wrong-guess-00"})
        answers[email] = (last.status_code, _message(last.get_data(as_text=True), email))
    assert answers[user.email] == answers["nobody-here@nhs.test"]
    assert answers[user.email][0] == 429


def _message(page: str, email: str) -> str:
    import re

    words = re.sub(r"<[^>]+>", " ", page)
    words = re.sub(r"\d+ seconds", "N seconds", words)
    return " ".join(words.replace(email, "EMAIL").split())


def test_a_failed_sign_in_with_an_unknown_email_records_the_email_and_address(client, db):
    client.post(
        "/auth/sign-in",
        data={"email": "Someone.Else@nhs.test", "password": "never-recorded-42"},
        environ_base={"REMOTE_ADDR": "192.0.2.44"},
    )
    (event,) = _events(db, "sign_in_failed")
    assert event.remote_addr == "192.0.2.44"
    assert "someone.else@nhs.test" in event.detail
    assert "never-recorded-42" not in repr(
        [(e.detail, e.changes) for e in db.session.scalars(select(AuditEvent))]
    )
