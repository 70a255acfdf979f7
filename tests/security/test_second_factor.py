"""The second factor (security.md): TOTP required for admins, optional for others, a setting for
all; a code works once; recovery codes shown once, stored hashed, each works once; the session
starts only after the code; per-address rate limit and per-account slow-down on the code step."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from unittest import mock

import pyotp
import pytest
from sqlalchemy import select

from portal.audit.actor import Actor
from tests.conftest import TEST_PASSWORD


def _code(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def _enrol(client, now: datetime) -> tuple[str, list[str]]:
    """Enrol the signed-in user through the pages, confirming it is them first (the password: no
    second factor yet); returns the secret and recovery codes."""
    confirmed = client.post("/auth/confirm", data={"password": TEST_PASSWORD})
    assert confirmed.status_code == 302, confirmed.get_data(as_text=True)[:500]
    page = client.get("/auth/two-factor")
    assert page.status_code == 200
    assert b"/auth/two-factor/qr.svg" in page.data
    key = re.search(r'class="portal-secret">([A-Z2-7 ]+)<', page.get_data(as_text=True))
    secret = key.group(1).replace(" ", "")
    with mock.patch("portal.clock.now", return_value=now):
        done = client.post("/auth/two-factor", data={"code": _code(secret, now)})
    assert done.status_code == 200, done.get_data(as_text=True)[:500]
    codes = re.findall(r"<code>([A-Z2-9]{5}-[A-Z2-9]{5})</code>", done.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def _password_step(client, user):
    response = client.post("/auth/sign-in", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    return response


def test_admin_without_totp_is_sent_to_enrol_before_anything_else(client, make_user):
    from tests.conftest import sign_in

    admin = make_user(role="admin", second_factor=False)
    sign_in(client, admin)
    for path in ("/", "/admin/users", "/admin/services", "/auth/password"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/auth/two-factor"), path
    htmx = client.get("/admin/users", headers={"HX-Request": "true"})
    assert htmx.status_code == 403 and htmx.headers["HX-Redirect"].endswith("/auth/two-factor")
    # Enrolling asks for the password again first (a borrowed session cannot enrol a phone).
    asked = client.get("/auth/two-factor")
    assert asked.status_code == 302 and "/auth/confirm" in asked.headers["Location"]
    client.post("/auth/confirm", data={"password": TEST_PASSWORD})
    assert client.get("/auth/two-factor").status_code == 200


def test_qr_code_is_svg_made_on_the_server_without_style_attributes(client, make_user):
    from tests.conftest import sign_in

    sign_in(client, make_user(role="admin", second_factor=False))
    client.post("/auth/confirm", data={"password": TEST_PASSWORD})
    client.get("/auth/two-factor")
    svg = client.get("/auth/two-factor/qr.svg")
    assert svg.status_code == 200
    assert svg.mimetype == "image/svg+xml"
    assert svg.data.startswith(b"<svg") and b"<path" in svg.data
    assert b"style" not in svg.data.lower()
    assert svg.headers["Cache-Control"] == "no-store"


def test_sign_in_with_totp_starts_session_only_after_the_code(app, client, make_user, db):
    from portal.models import AuditEvent

    user = make_user(role="admin", second_factor=False)
    from tests.conftest import sign_in

    sign_in(client, user)
    now = datetime.now(UTC)
    secret, _codes = _enrol(client, now)
    client.post("/auth/sign-out")

    _password_step(client, user)
    # Half-way: no page behind sign-in yet.
    assert client.get("/").status_code == 302
    assert "/auth/sign-in" in client.get("/").headers["Location"]
    page = client.get("/auth/second-factor")
    assert page.status_code == 200
    later = now + timedelta(seconds=60)
    with mock.patch("portal.clock.now", return_value=later):
        done = client.post("/auth/second-factor", data={"code": _code(secret, later)})
    assert done.status_code == 302
    assert client.get("/").status_code == 200
    actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-3:] == ["sign_in_password_ok", "sign_in", "session_started"]


def test_a_reused_totp_code_is_refused(client, make_user, db):
    from tests.conftest import sign_in

    user = make_user(role="clinician", second_factor=False)
    sign_in(client, user)
    now = datetime.now(UTC)
    secret, _ = _enrol(client, now)
    client.post("/auth/sign-out")
    later = now + timedelta(seconds=90)
    code = _code(secret, later)
    with mock.patch("portal.clock.now", return_value=later):
        _password_step(client, user)
        assert client.post("/auth/second-factor", data={"code": code}).status_code == 302
        client.post("/auth/sign-out")
        _password_step(client, user)
        again = client.post("/auth/second-factor", data={"code": code})
    assert again.status_code == 200
    assert b"Enter a correct security code" in again.data
    assert client.get("/").status_code == 302
    # The enrolment code's step, and any earlier step, is refused too.
    with mock.patch("portal.clock.now", return_value=later):
        old = client.post("/auth/second-factor", data={"code": _code(secret, now)})
    assert b"Enter a correct security code" in old.data


def test_recovery_codes_are_stored_hashed_and_each_works_once(client, make_user, db):
    from portal.models import RecoveryCode
    from tests.conftest import sign_in

    user = make_user(role="lead", second_factor=False)
    sign_in(client, user)
    _secret, codes = _enrol(client, datetime.now(UTC))
    stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10
    assert not {c.replace("-", "") for c in codes} & set(stored)
    # Shown once: the account page never shows them again.
    assert codes[0].encode() not in client.get("/auth/two-factor").data
    client.post("/auth/sign-out")

    _password_step(client, user)
    assert client.post("/auth/second-factor", data={"code": codes[0].lower()}).status_code == 302
    assert b"9 unused recovery codes" in client.get("/auth/two-factor").data
    client.post("/auth/sign-out")
    _password_step(client, user)
    again = client.post("/auth/second-factor", data={"code": codes[0]})
    assert b"Enter a correct security code" in again.data
    assert client.post("/auth/second-factor", data={"code": codes[1]}).status_code == 302


def test_totp_optional_for_clinicians_unless_required_for_all(app, client, make_user):
    from tests.conftest import sign_in

    user = make_user(role="clinician", second_factor=False)
    sign_in(client, user)
    assert client.get("/").status_code == 200
    app.config["REQUIRE_TOTP_FOR_ALL"] = True
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/two-factor")


def test_clinician_may_turn_it_off_admin_may_not(client, make_user, db):
    from tests.conftest import sign_in

    clinician = make_user(role="clinician", second_factor=False)
    sign_in(client, clinician)
    now = datetime.now(UTC)
    secret, _ = _enrol(client, now)
    later = now + timedelta(seconds=60)
    with mock.patch("portal.clock.now", return_value=later):
        client.post("/auth/two-factor/remove", data={"code": _code(secret, later)})
    db.session.refresh(clinician)
    assert clinician.totp_secret is None
    client.post("/auth/sign-out")

    admin = make_user(role="admin", second_factor=False)
    sign_in(client, admin)
    secret, _ = _enrol(client, now)
    with mock.patch("portal.clock.now", return_value=later):
        refused = client.post("/auth/two-factor/remove", data={"code": _code(secret, later)})
    assert refused.status_code == 403
    db.session.refresh(admin)
    assert admin.totp_secret == secret


def test_wrong_codes_slow_the_account_down(app, client, make_user, db):
    from tests.conftest import sign_in

    user = make_user(role="admin", second_factor=False)
    sign_in(client, user)
    _enrol(client, datetime.now(UTC))
    client.post("/auth/sign-out")
    _password_step(client, user)
    free = app.config["LOGIN_THROTTLE_FREE_FAILURES"]
    for _ in range(free + 1):
        client.post("/auth/second-factor", data={"code": "000000"})
    slowed = client.post("/auth/second-factor", data={"code": "000000"})
    assert slowed.status_code == 429
    assert b"Too many failed sign-in attempts" in slowed.data


def test_second_factor_step_has_a_per_address_rate_limit(limited_app, make_user):
    from tests.conftest import sign_in

    # Only the per-address limit is under test here, not the per-account slow-down.
    app = limited_app(LOGIN_THROTTLE_FREE_FAILURES=100)
    client = app.test_client()
    user = make_user(role="admin", second_factor=False)
    sign_in(client, user)
    _enrol(client, datetime.now(UTC))
    client.post("/auth/sign-out")
    _password_step(client, user)
    statuses = [
        client.post(
            "/auth/second-factor", data={"code": "12345"}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429
    # Another address is not held back by the first one's attempts.
    other = client.post(
        "/auth/second-factor", data={"code": "12345"}, environ_base={"REMOTE_ADDR": "10.9.9.8"}
    )
    assert other.status_code == 200


def test_pending_second_factor_expires(client, make_user):
    from tests.conftest import sign_in

    user = make_user(role="admin", second_factor=False)
    sign_in(client, user)
    _enrol(client, datetime.now(UTC))
    client.post("/auth/sign-out")
    _password_step(client, user)
    with mock.patch("portal.clock.now", return_value=datetime.now(UTC) + timedelta(minutes=6)):
        response = client.get("/auth/second-factor")
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]


def test_admin_password_reset_removes_the_second_factor(client, make_user, db):
    from portal.accounts import users as accounts
    from tests.conftest import sign_in

    user = make_user(role="clinician", second_factor=False)
    sign_in(client, user)
    _enrol(client, datetime.now(UTC))
    db.session.refresh(user)
    assert user.totp_secret is not None
    accounts.reset_password(Actor.command_line(), user, 24)
    db.session.commit()
    assert user.totp_secret is None


@pytest.mark.parametrize("field", ["code"])
def test_second_factor_without_pending_password_goes_to_sign_in(client, field):
    response = client.post("/auth/second-factor", data={field: "123456"})
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]


def test_replacing_the_app_needs_the_user_to_confirm_it_is_them(client, make_user, db, clock):
    from tests.conftest import confirm_identity, sign_in

    user = make_user(role="lead", second_factor=False)
    sign_in(client, user)
    secret, _ = _enrol(client, datetime.now(UTC))
    # Some minutes later a borrowed session, without the password and phone, cannot swap apps.
    clock.shift(timedelta(minutes=6))
    refused = client.post("/auth/two-factor/restart")
    assert refused.status_code == 302 and "/auth/confirm" in refused.headers["Location"]
    wrong = client.post(
        "/auth/confirm", data={"password": TEST_PASSWORD, "code": "000000"}, follow_redirects=False
    )
    assert wrong.status_code == 200 and b"Enter your correct password" in wrong.data
    confirm_identity(client, user)
    client.post("/auth/two-factor/restart")
    page = client.get("/auth/two-factor").get_data(as_text=True)
    new_secret = re.search(r'class="portal-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert new_secret != secret
    later = datetime.now(UTC) + timedelta(seconds=60)
    with mock.patch("portal.clock.now", return_value=later):
        client.post("/auth/two-factor", data={"code": _code(new_secret, later)})
    db.session.expire_all()
    assert db.session.get(type(user), user.id).totp_secret == new_secret


def test_the_secret_being_enrolled_is_never_in_the_cookie(client, make_user):
    import base64
    import zlib

    from tests.conftest import sign_in

    sign_in(client, make_user(role="admin", second_factor=False))
    client.post("/auth/confirm", data={"password": TEST_PASSWORD})
    page = client.get("/auth/two-factor").get_data(as_text=True)
    secret = re.search(r'class="portal-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    cookie = client.get_cookie("session").value
    payload = cookie.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    if cookie.startswith("."):
        raw = zlib.decompress(raw)
    assert b"enrol_nonce" in raw
    assert secret.encode() not in raw


def test_recovery_codes_are_stored_with_a_salted_slow_hash(app, db, make_user):
    """Issue 23, finding 4: recovery codes were plain SHA-256, one brute-force pass for every
    user. Now Argon2id, each salted: the same code gives different hashes."""
    from portal.accounts import second_factor
    from portal.models import RecoveryCode

    user = make_user(role="clinician", second_factor=True)
    codes = second_factor.regenerate_recovery_codes(Actor.command_line(), user)
    db.session.commit()
    stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert all(h.startswith("$argon2id$") for h in stored)
    assert len(set(stored)) == 10
    assert second_factor.verify(Actor.command_line(), user, codes[3]) == "recovery"
    assert second_factor.verify(Actor.command_line(), user, codes[3]) is None


def test_codes_stored_before_argon2_still_work_once_and_ask_to_be_replaced(client, db, make_user):
    """Rows made before revision 0006 hold a plain SHA-256: kept working until used or replaced
    (docs/security.md), and the two-factor page asks for new codes."""
    import hashlib

    from portal.accounts import second_factor
    from portal.models import RecoveryCode
    from tests.conftest import sign_in

    user = make_user(role="clinician", second_factor=True)
    db.session.add(
        RecoveryCode(user_id=user.id, code_hash=hashlib.sha256(b"ABCDE23456").hexdigest())
    )
    db.session.commit()
    assert second_factor.has_old_recovery_codes(user)
    sign_in(client, user)
    assert b"stored them more safely" in client.get("/auth/two-factor").data
    assert second_factor.verify(Actor.command_line(), user, "abcde-23456") == "recovery"
    assert second_factor.verify(Actor.command_line(), user, "abcde-23456") is None
    db.session.commit()
    assert not second_factor.has_old_recovery_codes(user)
