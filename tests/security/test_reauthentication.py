"""Confirm it is you (issue 23, finding 3; security.md): enrolling or removing a second factor,
changing the password, getting recovery codes and ending other sessions ask for the password (and
the second factor where enrolled) again, within the last REAUTHENTICATION_MINUTES."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from portal.models import AuditEvent, User
from tests.conftest import TEST_PASSWORD, confirm_identity, sign_in

GUARDED = {
    "auth.change_password",
    "auth.two_factor_qr",
    "auth.two_factor_restart",
    "auth.two_factor_recovery_codes",
    "auth.two_factor_remove",
    "auth.end_session",
    "auth.end_other_sessions",
}


def test_the_routes_that_change_how_one_signs_in_ask_who_it_is(app):
    guarded = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, "needs_recent_authentication", False)
    }
    assert guarded == GUARDED


def test_a_borrowed_session_cannot_enrol_the_borrowers_phone(client, make_user, db):
    """Finding 3: with the session cookie alone, GET then POST /auth/two-factor enrolled the
    attacker's phone without the password."""
    user = make_user(role="clinician", second_factor=False)
    sign_in(client, user)
    page = client.get("/auth/two-factor")
    assert page.status_code == 302 and "/auth/confirm" in page.headers["Location"]
    assert b"portal-secret" not in page.data
    assert client.get("/auth/two-factor/qr.svg").status_code == 302
    attempt = client.post("/auth/two-factor", data={"code": "123456"})
    assert attempt.status_code == 302 and "/auth/confirm" in attempt.headers["Location"]
    db.session.expire_all()
    assert db.session.get(User, user.id).totp_secret is None


def test_confirming_asks_for_the_second_factor_where_enrolled(client, make_user, db):
    user = make_user(role="admin")
    sign_in(client, user)
    form = client.get("/auth/confirm?next=/auth/password").get_data(as_text=True)
    assert 'name="password"' in form and 'name="code"' in form
    password_only = client.post("/auth/confirm", data={"password": TEST_PASSWORD})
    assert password_only.status_code == 200
    assert client.get("/auth/password").status_code == 302
    wrong_code = client.post("/auth/confirm", data={"password": TEST_PASSWORD, "code": "000000"})
    assert wrong_code.status_code == 200
    done = confirm_identity(client, user, next_url="/auth/password")
    assert done.headers["Location"] == "/auth/password"
    assert client.get("/auth/password").status_code == 200
    actions = [
        e.action
        for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("reauthenticat%"))
        )
    ]
    # The password alone is not even checked (the code is missing); the wrong code is recorded.
    assert actions == ["reauthentication_failed", "reauthenticated"]


def test_a_confirmation_lasts_a_few_minutes(app, client, make_user, clock):
    user = make_user(role="lead", second_factor=False)
    sign_in(client, user)
    confirm_identity(client, user)
    assert client.get("/auth/password").status_code == 200
    clock.shift(timedelta(minutes=app.config["REAUTHENTICATION_MINUTES"], seconds=5))
    asked = client.get("/auth/password")
    assert asked.status_code == 302 and "/auth/confirm" in asked.headers["Location"]


def test_a_confirmation_belongs_to_its_session(app, make_user):
    user = make_user(role="lead", second_factor=False)
    mine, other = app.test_client(), app.test_client()
    sign_in(mine, user)
    sign_in(other, user)
    confirm_identity(mine, user)
    assert mine.get("/auth/password").status_code == 200
    assert other.get("/auth/password").status_code == 302


def test_wrong_passwords_at_the_confirmation_slow_down(app, client, make_user):
    user = make_user(role="lead", second_factor=False)
    sign_in(client, user)
    for _ in range(app.config["LOGIN_THROTTLE_FREE_FAILURES"] + 2):
        client.post("/auth/confirm", data={"password": "not-my-password"})
    slowed = client.post("/auth/confirm", data={"password": TEST_PASSWORD})
    assert slowed.status_code == 429


@pytest.mark.parametrize("path", ["/auth/two-factor/recovery-codes", "/auth/two-factor/remove"])
def test_recovery_codes_and_removal_ask_who_it_is(client, make_user, db, path):
    user = make_user(role="clinician", second_factor=True)
    sign_in(client, user)
    asked = client.post(path)
    assert asked.status_code == 302 and "/auth/confirm" in asked.headers["Location"]
    db.session.expire_all()
    assert db.session.get(User, user.id).totp_secret is not None
    confirm_identity(client, user)
    done = client.post(path)
    assert done.status_code in (200, 302)
    if path.endswith("remove"):
        db.session.expire_all()
        assert db.session.get(User, user.id).totp_secret is None
    else:
        assert done.data.count(b"<code>") == 10


def test_the_confirmation_code_works_once(client, make_user, db):
    user = make_user(role="clinician", second_factor=True)
    sign_in(client, user)
    code = pyotp.TOTP(user.totp_secret).now()
    db.session.execute(
        User.__table__.update().where(User.id == user.id).values(totp_last_step=None)
    )
    db.session.commit()
    first = client.post("/auth/confirm", data={"password": TEST_PASSWORD, "code": code})
    assert first.status_code == 302
    again = client.post("/auth/confirm", data={"password": TEST_PASSWORD, "code": code})
    assert again.status_code == 200
