"""Signed values the portal checks at every request, each checked once in a process: the session
cookie and the CSRF token.

Flask checks a session cookie's signature (HMAC), decompresses and decodes it at every request,
and Flask-WTF checks the CSRF token's signature at every POST: 0.28 M and 0.22 M instructions of
a stage save's 6.1 M (docs/bench-journey.md). A browser sends the same cookie and the same token
with every request until its session changes, and whether a text passes the check with the same
keys never changes. So each process keeps, by the exact text that passed, what it carries: the
session's values and when they were signed; the session token a CSRF token was made from.

- A value that fails the check is never kept; a changed text is a new text, checked in full.
- What a check holds a value to besides its signature is still checked at every request: the
  session's lifetime (PERMANENT_SESSION_LIFETIME from the time it was signed); the CSRF token's
  match with this session's token, and, over HTTPS, the referrer (Flask-WTF's strict check).
- New keys forget what was kept with the old ones. CSRF tokens are kept only while they do not
  expire (WTF_CSRF_TIME_LIMIT None, as config.py sets).
- Each request gets a session of its own, never the kept values themselves.

The formats, salts, keys and rules are Flask's and Flask-WTF's; a value not kept is checked by
their own code.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import Flask, Request, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect, same_origin
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Texts kept per process, of each kind; past this many they are all forgotten at once (one dict
# operation, safe with threads). A cookie is a few hundred bytes: about 2 MB at most.
COOKIES_KEPT = 4096
TOKENS_KEPT = 4096


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


class CheckedTokenCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF protection, with the signed tokens already checked kept (one per process).

    A request whose token was kept is held to the rest of Flask-WTF's check here: its method and
    exemptions, the match with this session's token (constant time, as Flask-WTF compares) and
    the HTTPS referrer. Any other request is checked by Flask-WTF's own `protect`.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._checked: dict[str, tuple[str, Any]] = {}
        super().__init__(app)

    def protect(self, apply_exemptions: bool = False) -> None:
        config = current_app.config
        if (
            request.method not in config["WTF_CSRF_METHODS"]
            or config["WTF_CSRF_TIME_LIMIT"] is not None
        ):
            return super().protect(apply_exemptions)
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return None
        token = self._get_csrf_token()
        key = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
        field = config["WTF_CSRF_FIELD_NAME"]
        kept = self._checked.get(token) if token else None
        if kept is None or kept[1] != key or field not in session:
            super().protect(apply_exemptions)  # raises CSRFError unless the token is good
            if len(self._checked) >= TOKENS_KEPT:
                self._checked = {}
            self._checked[token] = (session[field], key)
        else:
            if not hmac.compare_digest(session[field], kept[0]):
                self._error_response("The CSRF tokens do not match.")
            if request.is_secure and config["WTF_CSRF_SSL_STRICT"]:
                if not request.referrer:
                    self._error_response("The referrer header is missing.")
                if not same_origin(request.referrer, f"https://{request.host}/"):
                    self._error_response("The referrer does not match the host.")
            g.csrf_valid = True
        # The forms this POST answers with carry the token it was checked with: this session's,
        # signed by the server, and it does not expire, so it serves as well as a new one, which
        # would be signed again at every save (templating.csrf_token_value reads it from g).
        if field not in g:
            setattr(g, field, token)
        return None


def _copy(value: Any) -> Any:
    """A copy of decoded session data down to its last list or dict, so a request that changes a
    list in its session in place (flashed messages do) never changes the kept values."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy(item) for item in value)
    return value
