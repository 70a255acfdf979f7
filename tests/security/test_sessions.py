"""Session limits (security.md): idle timeout (30 minutes; background polling does not reset it),
"Stay signed in" resets it, absolute limit (12 hours); after expiry a page goes to sign-in and an
htmx request gets 401. Time is moved forward by patching portal.security._now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from sqlalchemy import select

BACKGROUND = {"X-Background-Request": "1"}


class Clock:
    """A clock the test moves forward."""

    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now

    def forward(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    clock = Clock()
    with mock.patch("portal.clock.now", clock):
        yield clock


def test_idle_timeout_sends_a_page_to_sign_in_and_htmx_gets_401(signed_in, clock, db):
    from portal.models import AuditEvent

    client, user, _ = signed_in()
    clock.forward(minutes=29)
    assert client.get("/").status_code == 200
    clock.forward(minutes=29)
    assert client.get("/").status_code == 200  # the request at 29 minutes was activity
    clock.forward(minutes=31)
    page = client.get("/")
    assert page.status_code == 302 and "/auth/sign-in" in page.headers["Location"]
    # The session is gone, not only refused once.
    clock.forward(seconds=1)
    htmx = client.get("/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.get_json()["error"] == "signed_out"
    timed_out = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "sign_out", AuditEvent.user_id == user.id)
    ).all()
    assert [e.detail for e in timed_out] == ["session timed out"]


def test_htmx_request_after_idle_timeout_gets_401(signed_in, clock):
    client, _, _ = signed_in()
    clock.forward(minutes=31)
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert "Location" not in response.headers


def test_background_polling_does_not_reset_the_idle_timer(signed_in, clock):
    client, _, _ = signed_in()
    for _ in range(6):
        clock.forward(minutes=5)
        assert client.get("/ping", headers=BACKGROUND).status_code == 204
        assert client.get("/", headers={**BACKGROUND, "HX-Request": "true"}).status_code == 200
    clock.forward(minutes=1)  # 31 minutes after the last request the user made
    assert client.get("/", headers={"HX-Request": "true"}).status_code == 401


def test_last_seen_is_written_once_a_step_not_at_every_request(signed_in, clock):
    """The cookie is signed and sent again only when `last_seen` moves (every 15 s of the 30
    minutes), and the idle limit still never ends a session early, nor more than a step late."""
    client, _, _ = signed_in()
    assert client.get("/").status_code == 200  # the first page adds the form token
    clock.forward(seconds=14)
    response = client.get("/")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    clock.forward(seconds=1)  # 15 s after the last write: written again
    response = client.get("/")
    assert response.status_code == 200 and "Set-Cookie" in response.headers
    clock.forward(seconds=14)
    assert "Set-Cookie" not in client.get("/").headers  # last seen 14 s after the write
    # 30 minutes after that last request, but 30 min 14 s after the time written: still signed in.
    clock.forward(minutes=30)
    assert client.get("/", headers={"HX-Request": "true"}).status_code == 200
    clock.forward(minutes=30, seconds=16)  # more than 30 min 15 s since anything was written
    assert client.get("/", headers={"HX-Request": "true"}).status_code == 401


def test_stay_signed_in_is_a_post_that_resets_the_idle_timer(signed_in, clock):
    client, _, _ = signed_in()
    clock.forward(minutes=28)
    response = client.post("/auth/stay-signed-in", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.get_json() == {"idle_seconds": 1800}
    clock.forward(minutes=28)
    assert client.get("/").status_code == 200
    # A GET cannot stay signed in (no state change on GET).
    assert client.get("/auth/stay-signed-in").status_code == 405


def test_stay_signed_in_needs_a_csrf_token(signed_in, clock):
    client, _, _ = signed_in()
    assert client.post("/auth/stay-signed-in", csrf=False).status_code == 400


def test_absolute_limit_ends_an_active_session(signed_in, clock):
    client, _, _ = signed_in()
    for _ in range(12 * 3 - 1):
        clock.forward(minutes=20)
        assert client.get("/").status_code == 200
    clock.forward(minutes=21)  # 12 hours and 1 minute after sign-in, active all along
    response = client.get("/")
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]


def test_timeouts_follow_the_settings(app, signed_in, clock):
    app.config["IDLE_TIMEOUT"] = timedelta(minutes=5)
    client, _, _ = signed_in()
    clock.forward(minutes=4)
    assert client.get("/").status_code == 200
    clock.forward(minutes=6)
    assert client.get("/").status_code == 302


def test_pages_carry_the_warning_and_our_own_script_not_inline(signed_in, clock):
    import json
    import re

    client, _, _ = signed_in()
    html = client.get("/").get_data(as_text=True)
    # Under its fingerprinted name (portal/static_files.py).
    assert re.search(r'src="/static/(dist/)?js/session-timeout(\.[0-9a-f]{12})?\.js"', html)
    assert 'id="session-timeout-warning"' in html and "Stay signed in" in html
    meta = re.search(r'name="session-timeout" content="([^"]+)"', html).group(1)
    settings = json.loads(meta.replace("&#34;", '"'))
    assert settings["idle"] == 1800 and settings["warning"] == 120
    assert 43000 < settings["absolute_left"] <= 43200
    # No inline script or style attribute anywhere (CSP script-src/style-src 'self').
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html
