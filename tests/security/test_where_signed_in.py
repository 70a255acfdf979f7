"""Where you are signed in (issue 23, finding 13; security.md): each open session with when it
started, its last use, address and browser; end one or all the others after confirming it is
you; an ended session is refused at its next request. (Across instances: test_races.py.)"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.models import AuditEvent, UserSession
from tests.conftest import confirm_identity, sign_in

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def _browser(app, user, agent: str, address: str):
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": agent, "REMOTE_ADDR": address})
    sign_in(client, user)
    return client


def test_the_page_lists_each_open_session(app, make_user):
    user = make_user(role="lead", second_factor=False)
    desk = _browser(app, user, FIREFOX, "10.1.2.3")
    _browser(app, user, IPHONE, "10.9.8.7")
    page = desk.get("/auth/sessions").get_data(as_text=True)
    assert "Firefox on Windows" in page and "Safari on iPhone" in page
    assert "10.1.2.3" in page and "10.9.8.7" in page
    assert "This browser" in page
    assert page.count('/end"') == 1  # the other session; this one has Sign out


def test_ending_one_session_asks_who_it_is_and_signs_that_browser_out(app, db, make_user):
    user = make_user(role="lead", second_factor=False)
    desk = _browser(app, user, FIREFOX, "10.1.2.3")
    phone = _browser(app, user, IPHONE, "10.9.8.7")
    other = db.session.scalars(select(UserSession).where(UserSession.browser == IPHONE)).one()
    asked = desk.post(f"/auth/sessions/{other.id}/end")
    assert asked.status_code == 302 and "/auth/confirm" in asked.headers["Location"]
    assert phone.get("/").status_code == 200
    confirm_identity(desk, user)
    assert desk.post(f"/auth/sessions/{other.id}/end").status_code == 302
    refused = phone.get("/")
    assert refused.status_code == 302 and "/auth/sign-in" in refused.headers["Location"]
    assert desk.get("/").status_code == 200
    ended = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "session_ended")).one()
    assert ended.user_id == user.id and ended.entity_id == other.id


def test_another_users_session_cannot_be_ended(app, db, make_user):
    mine, theirs = make_user(role="lead", second_factor=False), make_user(second_factor=False)
    me = _browser(app, mine, FIREFOX, "10.1.2.3")
    them = _browser(app, theirs, IPHONE, "10.9.8.7")
    their_session = db.session.scalars(
        select(UserSession).where(UserSession.user_id == theirs.id)
    ).one()
    confirm_identity(me, mine)
    assert me.post(f"/auth/sessions/{their_session.id}/end").status_code == 404
    assert them.get("/").status_code == 200


def test_sign_out_everywhere_else_keeps_this_browser(app, make_user):
    user = make_user(role="lead", second_factor=False)
    desk = _browser(app, user, FIREFOX, "10.1.2.3")
    others = [_browser(app, user, IPHONE, f"10.9.8.{n}") for n in range(3)]
    confirm_identity(desk, user)
    done = desk.post("/auth/sessions/end-others", follow_redirects=True)
    assert b"3 sessions ended" in done.data
    assert all(other.get("/").status_code == 302 for other in others)
    assert desk.get("/").status_code == 200


def test_sign_out_and_a_password_change_still_end_every_session(app, make_user):
    user = make_user(role="lead", second_factor=False)
    desk = _browser(app, user, FIREFOX, "10.1.2.3")
    phone = _browser(app, user, IPHONE, "10.9.8.7")
    desk.post("/auth/sign-out")
    assert phone.get("/").status_code == 302


def test_last_use_is_written_now_and_then_not_at_every_request(app, db, make_user, clock):
    user = make_user(role="lead", second_factor=False)
    desk = _browser(app, user, FIREFOX, "10.1.2.3")
    first = db.session.scalars(select(UserSession)).one().last_used_at
    desk.get("/")
    db.session.expire_all()
    assert db.session.scalars(select(UserSession)).one().last_used_at == first
    clock.shift(timedelta(seconds=app.config["SESSION_TOUCH_SECONDS"] + 1))
    desk.get("/")
    db.session.expire_all()
    assert db.session.scalars(select(UserSession)).one().last_used_at > first
    # A background request of the page (polling) is not a use.
    clock.shift(timedelta(seconds=app.config["SESSION_TOUCH_SECONDS"] + 1))
    before = db.session.scalars(select(UserSession)).one().last_used_at
    desk.get("/", headers={"X-Background-Request": "1"})
    db.session.expire_all()
    assert db.session.scalars(select(UserSession)).one().last_used_at == before
