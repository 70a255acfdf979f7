"""Where a user is signed in (security.md, "Accounts and sessions"): one record per signed-in
browser, checked at every request, so ending a session works at once on every worker and instance.

The session cookie carries a random token; only its SHA-256 is stored (a copy of the table gives
no cookie). Last use is written at most every `touch_seconds`, not at every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update

from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db, rows_changed
from portal.models import User, UserSession

# A user agent is kept to describe the browser to its user, no longer than the column.
_BROWSER_LENGTH = 255


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(actor: Actor, user: User, browser: str | None) -> str:
    """Record a new signed-in browser of `user`; returns the token its cookie carries."""
    token = secrets.token_urlsafe(32)
    now = clock.utcnow()
    record = UserSession(
        user_id=user.id,
        token_hash=_token_hash(token),
        started_at=now,
        last_used_at=now,
        address=(actor.address or "")[:64] or None,
        browser=(browser or "")[:_BROWSER_LENGTH] or None,
    )
    db.session.add(record)
    db.session.flush()
    audit.record(actor, "session_started", record, detail=describe_browser(browser))
    return token


def live(token: str | None, user_id: int) -> UserSession | None:
    """The open session of `user_id` whose cookie carries `token`, or None (ended, unknown)."""
    if not token:
        return None
    return db.session.scalar(
        select(UserSession).where(
            UserSession.token_hash == _token_hash(token),
            UserSession.user_id == user_id,
            UserSession.ended_at.is_(None),
        )
    )


def touch(record: UserSession, now: datetime, touch_seconds: int) -> bool:
    """Note a use of the session when the last one noted is older than `touch_seconds`; returns
    whether it wrote (the caller commits)."""
    if (now - record.last_used_at).total_seconds() < touch_seconds:
        return False
    record.last_used_at = now
    return True


def open_sessions(user: User) -> list[UserSession]:
    """The user's sessions that have not ended, the most recently used first."""
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.last_used_at.desc(), UserSession.id.desc())
        )
    )


def _end_where(*conditions) -> int:
    """End the open sessions that meet `conditions`; returns how many ended."""
    return rows_changed(
        update(UserSession)
        .where(UserSession.ended_at.is_(None), *conditions)
        .values(ended_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )


def end(actor: Actor, user: User, session_id: int) -> bool:
    """End one of the user's own sessions; False when there is no such open session."""
    ended = _end_where(UserSession.id == session_id, UserSession.user_id == user.id)
    if ended:
        audit.record(actor, "session_ended", entity_type="user_session", entity_id=session_id)
    return bool(ended)


def end_others(actor: Actor, user: User, keep_id: int) -> int:
    """End every session of the user but `keep_id` (this browser's); returns how many ended."""
    ended = _end_where(UserSession.user_id == user.id, UserSession.id != keep_id)
    if ended:
        audit.record(actor, "session_ended", user, detail=f"{ended} other sessions ended")
    return ended


def end_every(actor: Actor, user: User) -> None:
    """End every session of the user (sign-out, password change, deactivation, a role change:
    `actor` made that change and the caller audits it)."""
    _end_where(UserSession.user_id == user.id)


def close(record: UserSession) -> None:
    """End this one session (it timed out); the caller audits why."""
    record.ended_at = clock.utcnow()


def note_reauthentication(record: UserSession, now: datetime) -> None:
    record.reauthenticated_at = now


def recently_reauthenticated(record: UserSession | None, now: datetime, within: timedelta) -> bool:
    """Whether the user proved it is them in this session within `within` of `now`."""
    if record is None or record.reauthenticated_at is None:
        return False
    return timedelta(0) <= now - record.reauthenticated_at <= within


def describe_browser(user_agent: str | None) -> str:
    """A user agent in words a user recognises: "Firefox on Windows" (unknown parts said so)."""
    text = user_agent or ""
    browser = next(
        (
            name
            for marker, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("Chromium/", "Chromium"),
                ("HeadlessChrome/", "Chrome (headless)"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
            )
            if marker in text
        ),
        "An unknown browser",
    )
    system = next(
        (
            name
            for marker, name in (
                ("Windows", "Windows"),
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Android", "Android"),
                ("Mac OS X", "macOS"),
                ("CrOS", "ChromeOS"),
                ("Linux", "Linux"),
            )
            if marker in text
        ),
        None,
    )
    return f"{browser} on {system}" if system else browser
