"""The session cookie: Flask's signed cookie, each cookie's signature checked once in a process.

Flask checks a session cookie's signature (HMAC), decompresses and decodes it at every request:
0.28 M instructions of a stage save's 6.1 M (docs/bench-journey.md). A browser sends the same
cookie with every request until its session changes, so each process keeps, by the cookie's exact
text, what a cookie that passed the check carries and when it was signed. A request with a kept
cookie skips the check, as its text is the text already checked with the same keys; its age is
still held to PERMANENT_SESSION_LIFETIME at every request. A cookie that fails the check is never
kept, and each request gets a session of its own, never the kept values themselves.

The cookie's format, salt, keys (SECRET_KEY and SECRET_KEY_FALLBACKS) and lifetime are Flask's.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Cookies kept per process; past this many they are all forgotten at once (one dict operation,
# safe with threads). A cookie is a few hundred bytes: about 2 MB at most.
COOKIES_KEPT = 4096


class CheckedCookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, with the cookies already checked kept (one per app)."""

    def __init__(self) -> None:
        self._keys: tuple[Any, ...] | None = None
        self._serializer: URLSafeTimedSerializer | None = None
        self._checked: dict[str, tuple[dict[str, Any], int]] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's serializer, built again only when the app's keys change (which forgets every
        cookie kept with the old ones)."""
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys != self._keys:
            self._checked = {}
            self._serializer = super().get_signing_serializer(app)
            self._keys = keys
        return self._serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        checked = self._checked.get(cookie)
        if checked is None:
            try:
                data, signed_at = serializer.loads(cookie, max_age=max_age, return_timestamp=True)
            except BadSignature:  # includes an expired signature
                return self.session_class()
            checked = (data, int(signed_at.timestamp()))
            if len(self._checked) >= COOKIES_KEPT:
                self._checked = {}
            self._checked[cookie] = checked
        data, signed_at = checked
        # The lifetime check itsdangerous makes, with its clock (whole seconds).
        age = int(time.time()) - signed_at
        if age > max_age or age < 0:
            self._checked.pop(cookie, None)
            return self.session_class()
        return self.session_class(_copy(data))


def _copy(value: Any) -> Any:
    """A copy of decoded session data down to its last list or dict, so a request that changes a
    list in its session in place (flashed messages do) never changes the kept values."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy(item) for item in value)
    return value
