"""Headers and CSP (security.md, "Requests and pages") on every GET route of the url_map, signed
out and signed in as each role; HSTS behind a trusted HTTPS proxy; cookie flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import sign_in
from tests.security.routes import get_routes

ROLES = ("clinician", "lead", "admin")


def assert_security_headers(response, path: str, signed_in: bool) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";") if d.strip())
    assert directives.get("script-src") == "'self'", (path, csp)
    assert directives.get("style-src") == "'self'", (path, csp)
    assert directives.get("frame-ancestors") == "'none'", (path, csp)
    assert directives.get("object-src") == "'none'", (path, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (path, csp)
    # Nothing may be fetched from another origin (no CDN, no remote font).
    for name, value in directives.items():
        assert "http" not in value and "*" not in value, (path, name, value)
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer", "strict-origin"), path
    assert headers.get("X-Frame-Options") == "DENY", path
    if signed_in:
        assert headers.get("Cache-Control") == "no-store", path
    assert "Strict-Transport-Security" not in headers, path  # plain HTTP here


def test_every_get_route_signed_out_has_the_headers(app, client):
    routes = get_routes(app)
    assert len(routes) >= 10
    for route in routes:
        path = route.path()
        assert_security_headers(client.get(path), path, signed_in=False)


@pytest.mark.parametrize("role", ROLES)
def test_every_get_route_signed_in_has_the_headers(app, client, make_service, make_user, role):
    service = make_service()
    sign_in(client, make_user(role=role, services=[service]))
    for route in get_routes(app):
        path = route.path()
        with client.get(path) as response:  # closed: a streamed download ends its context
            assert response.status_code < 500, path
            assert_security_headers(response, path, signed_in=True)
        assert client.get("/").status_code == 200, f"{path} ended the session"


def test_error_pages_and_static_files_have_the_headers(client):
    assert_security_headers(client.get("/no-such-page"), "/no-such-page", signed_in=False)
    with client.get("/static/js/session-timeout.js") as static:
        assert static.status_code == 200
        assert_security_headers(static, "static", signed_in=False)


def test_hsts_only_over_https_through_a_trusted_proxy(limited_app):
    trusted = limited_app(PORTAL_TRUST_PROXY=1, RATELIMIT_ENABLED=False)
    over_https = trusted.test_client().get("/auth/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert over_https.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "max-age=0" not in over_https.headers["Strict-Transport-Security"]
    plain = trusted.test_client().get("/auth/sign-in")
    assert "Strict-Transport-Security" not in plain.headers
    # Without the setting a forged X-Forwarded-Proto is not believed.
    untrusted = limited_app(PORTAL_TRUST_PROXY=0, RATELIMIT_ENABLED=False)
    forged = untrusted.test_client().get("/auth/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers


def test_proxy_setting_takes_the_client_address_from_the_proxy(limited_app, db):
    from sqlalchemy import select

    from portal.models import AuditEvent

    trusted = limited_app(PORTAL_TRUST_PROXY=1, RATELIMIT_ENABLED=False)
    trusted.test_client().post(
        "/auth/sign-in",
        data={"email": "nobody@nhs.test", "password": "wrong-password-1"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "sign_in_failed")
    ).one()
    assert event.remote_addr == "203.0.113.9"


def test_session_cookie_flags(client, make_user):
    response = sign_in(client, make_user(role="clinician"))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure(monkeypatch, tmp_path):
    from portal import config

    monkeypatch.setenv("PORTAL_ENV", "production")
    settings = config.from_environment(str(tmp_path))
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["REMEMBER_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_htmx_history_cache_is_off(client):
    import json
    import re

    html = client.get("/auth/sign-in").get_data(as_text=True)
    config = json.loads(re.search(r"name=\"htmx-config\" content='([^']+)'", html).group(1))
    assert config["historyCacheSize"] == 0
    assert config["allowEval"] is False and config["allowScriptTags"] is False


def test_production_session_cookie_is_a_host_cookie(monkeypatch, app):
    """Issue 23, finding 5: in production the cookie is `__Host-` prefixed, Secure, for Path=/
    and without Domain, so no other host or path can set or read it."""
    from portal import create_app
    from tests.conftest import _test_config

    monkeypatch.setenv("PORTAL_ENV", "production")
    production = create_app(_test_config(app.config["SQLALCHEMY_DATABASE_URI"], Path("/tmp")))
    with production.app_context():
        # The CSRF token lives in the session: asking for one sets the cookie.
        response = production.test_client().get("/csrf-token", base_url="https://portal.example")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-fls-session=")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
    assert not any(part.startswith("domain=") for part in attributes)
