"""A code works once, also when the same code arrives twice at the same moment (security.md);
an ended session is refused at once by every instance. Real requests, at the same moment, against
real servers in subprocesses on the suite's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import pyotp
import pytest
import time_machine

from portal.accounts import second_factor
from portal.audit.actor import Actor
from tests.conftest import TEST_PASSWORD
from tests.security.live import Browser, at_the_same_moment, start_server

TRIES = 8
ROUNDS = 3


@pytest.fixture
def server(app, tmp_path):
    running = start_server(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path)
    yield running
    running.close()


def _password_step(server, user, address: str) -> Browser:
    browser = Browser(address)
    answer = browser.request(
        server.url + "/auth/sign-in", {"email": user.email, "password": TEST_PASSWORD}
    )
    assert answer.status == 302 and answer.location.endswith("/auth/second-factor"), answer.body
    return browser


def _signed_in(answers) -> int:
    return sum(1 for a in answers if a.status == 302 and "/auth/sign-in" not in a.location)


def test_the_same_totp_code_sent_at_the_same_moment_signs_in_once(server, make_user, db):
    user = make_user(role="clinician", second_factor=True)
    browsers = [_password_step(server, user, f"10.0.0.{n}") for n in range(TRIES)]
    # The server keeps the real time; the suite's clock is fixed (tests/conftest.py).
    code = pyotp.TOTP(user.totp_secret).at(time_machine.escape_hatch.time.time())
    answers = at_the_same_moment(
        [
            lambda b=b: b.request(server.url + "/auth/second-factor", {"code": code})
            for b in browsers
        ]
    )
    assert all(a.status in (200, 302) for a in answers), [a.status for a in answers]
    assert _signed_in(answers) == 1, [
        (a.status, a.location, a.body[a.body.find("nhsuk-error-message") :][:300]) for a in answers
    ]


def test_the_same_recovery_code_sent_at_the_same_moment_signs_in_once(server, make_user, db):
    user = make_user(role="clinician", second_factor=True)
    codes = second_factor.regenerate_recovery_codes(Actor.command_line(), user)
    db.session.commit()
    # A few rounds, each code sent by several sign-ins from several addresses at once.
    for round_, code in enumerate(codes[:ROUNDS]):
        browsers = [_password_step(server, user, f"10.{round_}.0.{n}") for n in range(TRIES)]
        answers = at_the_same_moment(
            [
                lambda b=b, code=code: b.request(server.url + "/auth/second-factor", {"code": code})
                for b in browsers
            ]
        )
        assert all(a.status in (200, 302) for a in answers), [a.status for a in answers]
        assert _signed_in(answers) == 1, (round_, [(a.status, a.location) for a in answers])
    assert second_factor.remaining_recovery_codes(user) == 10 - ROUNDS


def test_an_ended_session_is_refused_at_once_by_every_instance(app, tmp_path, make_user, db):
    """Two instances on one database (as behind a load balancer): a session ended through one is
    refused by the other at its very next request."""
    first = start_server(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path / "a")
    second = start_server(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path / "b")
    try:
        user = make_user(role="lead", second_factor=False)
        mine, stolen = Browser(), Browser()
        for browser in (mine, stolen):
            answer = browser.request(
                first.url + "/auth/sign-in", {"email": user.email, "password": TEST_PASSWORD}
            )
            assert answer.status == 302, answer.body
        assert stolen.request(second.url + "/").status == 200
        page = mine.request(first.url + "/auth/sessions")
        assert page.status == 200 and page.body.count('/end"') == 1, page.body
        end = page.body.split('action="/auth/sessions/')[1].split('"')[0]
        asked = mine.request(first.url + "/auth/sessions/" + end, {})
        assert "/auth/confirm" in asked.location
        assert mine.request(first.url + asked.location, {"password": TEST_PASSWORD}).status == 302
        assert mine.request(first.url + "/auth/sessions/" + end, {}).status == 302
        for instance in (second, first):
            refused = stolen.request(instance.url + "/")
            assert refused.status == 302 and "/auth/sign-in" in refused.location
        assert mine.request(second.url + "/").status == 200
    finally:
        first.close()
        second.close()
