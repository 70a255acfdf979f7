"""Signed values checked once in a process (portal/signatures.py): the session cookie and the
CSRF token. Keeping what passed the check must change nothing a value is held to.

- Cookies: a forged or changed cookie is refused even after the real one was kept, a kept cookie
  still ends with the session's lifetime, new keys forget the old cookies, and no request can
  change what another request is given.
- CSRF tokens: a kept token is refused with another session, over HTTPS without the portal's own
  referrer and after Flask-WTF's key changes; a changed token is never kept; a token that expires
  is never kept; the answer's forms carry the token the POST was checked with."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from flask import request

from portal import signatures
from portal.extensions import csrf


def _cookie(client) -> str:
    return client.get_cookie(
        client.application.session_interface.get_cookie_name(client.application)
    ).value


def _send(client, value: str) -> None:
    client.set_cookie(
        client.application.session_interface.get_cookie_name(client.application), value
    )


def _signed_out(page) -> bool:
    return page.status_code == 302 and "/auth/sign-in" in page.headers["Location"]


def test_a_changed_cookie_is_refused_after_the_real_one_was_kept(signed_in):
    client, _, _ = signed_in()
    assert client.get("/").status_code == 200  # the real cookie is checked and kept
    real = _cookie(client)
    for forged in (
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # the signature
        real[:5] + ("A" if real[5] != "A" else "B") + real[6:],  # what it carries
    ):
        _send(client, forged)
        assert _signed_out(client.get("/"))
        _send(client, forged)
        assert _signed_out(client.get("/")), "a refused cookie was kept"
    _send(client, real)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("moved", ["past the lifetime", "before the cookie was signed"])
def test_a_kept_cookie_is_refused_outside_the_session_lifetime(signed_in, app, monkeypatch, moved):
    client, _, _ = signed_in()
    assert client.get("/").status_code == 200  # kept
    real_clock = signatures.time.time
    lifetime = app.permanent_session_lifetime.total_seconds()
    shift = lifetime + 2 if moved == "past the lifetime" else -5
    monkeypatch.setattr(signatures, "time", SimpleNamespace(time=lambda: real_clock() + shift))
    assert _signed_out(client.get("/"))


def test_each_request_is_given_its_own_copy_of_what_a_kept_cookie_carries(app):
    interface = app.session_interface
    cookie = interface.get_signing_serializer(app).dumps(
        {"_flashes": [("info", "Saved.")], "nested": {"ids": [1]}}
    )
    headers = {"Cookie": f"{interface.get_cookie_name(app)}={cookie}"}
    with app.test_request_context(headers=headers):
        first = interface.open_session(app, request)
        first["_flashes"].append(("info", "Saved again."))
        first["nested"]["ids"].append(2)
        first["added"] = True
    for _ in range(2):
        with app.test_request_context(headers=headers):
            again = interface.open_session(app, request)
        assert dict(again) == {"_flashes": [("info", "Saved.")], "nested": {"ids": [1]}}
        assert isinstance(again["_flashes"][0], tuple)


def test_new_keys_forget_the_cookies_kept_with_the_old_ones(app):
    interface = app.session_interface
    cookie = interface.get_signing_serializer(app).dumps({"_user_id": "1:1"})
    headers = {"Cookie": f"{interface.get_cookie_name(app)}={cookie}"}

    def opened():
        with app.test_request_context(headers=headers):
            return dict(interface.open_session(app, request))

    assert opened() == {"_user_id": "1:1"}
    old_key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = old_key + "-rotated"
    assert opened() == {}
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]  # Flask's way to accept the old key a while
    assert opened() == {"_user_id": "1:1"}


def test_past_the_limit_the_kept_cookies_are_forgotten(app, monkeypatch):
    monkeypatch.setattr(signatures, "COOKIES_KEPT", 2)
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    for number in range(5):
        cookie = serializer.dumps({"n": number})
        with app.test_request_context(
            headers={"Cookie": f"{interface.get_cookie_name(app)}={cookie}"}
        ):
            assert dict(interface.open_session(app, request)) == {"n": number}
        assert len(interface._checked) <= 2


STAY = "/auth/stay-signed-in"  # a signed-in POST that changes nothing


def test_flask_wtf_has_what_the_kept_token_check_extends():
    """CheckedTokenCSRFProtect calls Flask-WTF's protect(apply_exemptions), _is_exempt,
    _get_csrf_token and _error_response (1.3; pyproject pins the line): 1.2 had no
    apply_exemptions, and every POST would fail."""
    import inspect

    from flask_wtf.csrf import CSRFProtect

    assert "apply_exemptions" in inspect.signature(CSRFProtect.protect).parameters
    for name in ("_is_exempt", "_get_csrf_token", "_error_response"):
        assert callable(getattr(CSRFProtect, name, None)), name


def _token(client) -> str:
    return client.csrf_token()


def test_a_kept_csrf_token_is_refused_with_another_session(signed_in, make_user, app):
    first, _, service = signed_in()
    token = _token(first)
    assert first.post(STAY, headers={"X-CSRFToken": token}).status_code == 200
    assert first.post(STAY, headers={"X-CSRFToken": token}).status_code == 200  # kept
    assert token in csrf._checked
    from tests.conftest import sign_in

    second = app.test_client()
    sign_in(second, make_user(services=[service]))
    own = _token(second)  # the second session has a CSRF token of its own
    assert second.post(STAY, headers={"X-CSRFToken": token}).status_code == 400
    assert second.post(STAY, headers={"X-CSRFToken": own}).status_code == 200
    assert first.post(STAY, headers={"X-CSRFToken": token}).status_code == 200


def test_a_changed_csrf_token_is_refused_and_never_kept(signed_in):
    client, _, _ = signed_in()
    token = _token(client)
    assert client.post(STAY, headers={"X-CSRFToken": token}).status_code == 200
    for changed in (token[:-1] + ("A" if token[-1] != "A" else "B"), token[:4] + "x" + token[5:]):
        for _ in range(2):
            assert client.post(STAY, headers={"X-CSRFToken": changed}).status_code == 400
        assert changed not in csrf._checked


@pytest.mark.parametrize(
    ("referrer", "status"),
    [(None, 400), ("https://elsewhere.example/", 400), ("https://localhost/", 200)],
)
def test_over_https_a_kept_csrf_token_still_needs_the_portals_own_referrer(
    signed_in, referrer, status
):
    client, _, _ = signed_in()
    token = _token(client)
    own = {"X-CSRFToken": token, "Referer": "https://localhost/"}
    assert client.post(STAY, headers=own, base_url="https://localhost").status_code == 200
    assert token in csrf._checked
    headers = {"X-CSRFToken": token} | ({"Referer": referrer} if referrer else {})
    assert client.post(STAY, headers=headers, base_url="https://localhost").status_code == status


def test_a_new_csrf_key_checks_kept_tokens_again(signed_in, app):
    client, _, _ = signed_in()
    token = _token(client)
    assert client.post(STAY, headers={"X-CSRFToken": token}).status_code == 200
    app.config["WTF_CSRF_SECRET_KEY"] = "another key for CSRF tokens only"
    assert client.post(STAY, headers={"X-CSRFToken": token}).status_code == 400
    assert client.post(STAY, headers={"X-CSRFToken": _token(client)}).status_code == 200


def test_tokens_that_expire_are_never_kept(signed_in, app):
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    client, _, _ = signed_in()
    token = _token(client)
    for _ in range(2):
        assert client.post(STAY, headers={"X-CSRFToken": token}).status_code == 200
    assert token not in csrf._checked


def test_the_answer_of_a_post_carries_the_token_it_was_checked_with(signed_in, db, monkeypatch):
    from datetime import date, timedelta

    import itsdangerous.timed

    from portal.models import Episode, Patient

    client, _, service = signed_in()
    patient = Patient(
        service_id=service.id, nhs_number="9434765919", date_of_birth=date(1950, 1, 1), sex="Female"
    )
    db.session.add(patient)
    db.session.flush()
    fracture = date.today() - timedelta(days=30)
    episode = Episode(
        service_id=service.id, patient_id=patient.id, fracture_date=fracture, fracture_sites="Hip"
    )
    db.session.add(episode)
    db.session.commit()
    token = _token(client)
    # Later than the token was signed (one clock for every signature): a token signed anew
    # would not be the same text.
    real_clock = signatures.time.time
    later = SimpleNamespace(time=lambda: real_clock() + 5)
    monkeypatch.setattr(itsdangerous.timed, "time", later)
    monkeypatch.setattr(signatures, "time", later)
    for _ in range(2):  # checked by Flask-WTF, then kept
        answer = client.post(
            f"/episodes/{episode.id}/stages/treatment",
            data={"version": "", "calcium_vitd": "Yes"},
            headers={"X-CSRFToken": token, "HX-Request": "true"},
        )
        assert answer.status_code in (200, 409), answer.get_data(as_text=True)[:300]
        carried = re.search(r'name="csrf_token" value="([^"]+)"', answer.get_data(as_text=True))
        assert carried and carried.group(1) == token
