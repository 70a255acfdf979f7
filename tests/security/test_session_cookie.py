"""The session cookie (portal/session_cookie.py): each process keeps the cookies whose signature it
has checked, and that must change nothing a cookie is held to. A forged or changed cookie is
refused even after the real one was kept, a kept cookie still ends with the session's lifetime,
new keys forget the old cookies, and no request can change what another request is given."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import request

from portal import session_cookie


def _cookie(client) -> str:
    return client.get_cookie(client.application.session_interface.get_cookie_name(client.application)).value


def _send(client, value: str) -> None:
    client.set_cookie(client.application.session_interface.get_cookie_name(client.application), value)


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
    real_clock = session_cookie.time.time
    lifetime = app.permanent_session_lifetime.total_seconds()
    shift = lifetime + 2 if moved == "past the lifetime" else -5
    monkeypatch.setattr(session_cookie, "time", SimpleNamespace(time=lambda: real_clock() + shift))
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
    monkeypatch.setattr(session_cookie, "COOKIES_KEPT", 2)
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    for number in range(5):
        cookie = serializer.dumps({"n": number})
        with app.test_request_context(
            headers={"Cookie": f"{interface.get_cookie_name(app)}={cookie}"}
        ):
            assert dict(interface.open_session(app, request)) == {"n": number}
        assert len(interface._checked) <= 2
