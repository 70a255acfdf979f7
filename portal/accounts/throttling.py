"""The slow-down after failed sign-ins (security.md): counted per email address and network
address, never per account alone, so that guesses from one address never lock the account's owner
out from another; an email with no account is slowed down exactly like one with an account, so
the answer never tells whether the account exists. Per-address rate limits (Flask-Limiter, on the
routes) add a ceiling on every address.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import SignInThrottle

_TABLE = SignInThrottle.__table__
_UNKNOWN_ADDRESS = "unknown"


def _key(email: str, address: str | None) -> tuple[str, str]:
    return email.strip().lower()[:254], (address or _UNKNOWN_ADDRESS)[:64]


def wait_seconds(
    email: str, address: str | None, now: datetime, free: int, max_seconds: int
) -> int:
    """Seconds this email must still wait from this address before another attempt is checked.

    The first `free` failures cost nothing; after that each failure doubles the wait, capped at
    `max_seconds`: a slow-down for a while, never a lock-out.
    """
    email_key, address_key = _key(email, address)
    row = db.session.execute(
        select(SignInThrottle.failures, SignInThrottle.last_failed_at).where(
            SignInThrottle.email == email_key, SignInThrottle.address == address_key
        )
    ).first()
    if row is None:
        return 0
    failures, last_failed_at = row
    excess = failures - free
    if excess < 0:
        return 0
    wait = min(2**excess, max_seconds)
    elapsed = (now - last_failed_at).total_seconds()
    return max(0, int(wait - elapsed + 0.999))


def record_failure(actor: Actor, email: str, now: datetime) -> None:
    """Count one failure of this email from the actor's address, in one statement so that
    failures arriving at the same moment are all counted (the caller audits the failure)."""
    email_key, address_key = _key(email, actor.address)
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_TABLE).values(
        email=email_key, address=address_key, failures=1, last_failed_at=now
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[_TABLE.c.email, _TABLE.c.address],
            set_={"failures": _TABLE.c.failures + 1, "last_failed_at": now},
        )
    )


def forgive(actor: Actor, email: str) -> None:
    """A full sign-in from the actor's address clears its failures (other addresses keep theirs)."""
    email_key, address_key = _key(email, actor.address)
    db.session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.email == email_key, SignInThrottle.address == address_key
        )
    )
