"""The second factor: TOTP (RFC 6238) with one-time recovery codes (security.md, accounts).

A code works once, also when the same code arrives twice at the same moment: an accepted code is
spent by one conditional UPDATE whose row count says whether this request was the one that spent
it (the TOTP step moves forward only past the last one; a recovery code's `used_at` is set only
while empty). Recovery codes are stored as salted Argon2id hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from datetime import datetime

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db, rows_changed
from portal.models import RecoveryCode, User

ISSUER = "FLS Portal"
STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10
# Without 0/O and 1/I/L so a code read from paper is typed right.
_RECOVERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
# Argon2id at OWASP's lowest recommended cost (19 MiB, 2 passes): a recovery code carries 50
# random bits, and a sign-in may check up to ten of them.
_recovery_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def new_enrolment_nonce() -> str:
    return secrets.token_hex(16)


def enrolment_secret(server_key: str, user_id: int, nonce: str) -> str:
    """The TOTP secret offered while enrolling, derived from a nonce kept in the session.

    Flask's session cookie is signed, not encrypted: it must never hold the secret itself.
    """
    digest = hmac.new(server_key.encode(), f"totp-enrol:{user_id}:{nonce}".encode(), "sha256")
    return base64.b32encode(digest.digest()[:20]).decode()


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> bytes:
    """The QR code as SVG made on the server (no style attributes, so the CSP holds)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(
        buffer, kind="svg", scale=5, border=4, xmldecl=False, svgclass="portal-qr", title="QR code"
    )
    return buffer.getvalue()


def required_for(user: User, require_for_all: bool) -> bool:
    """Admins always need a second factor; everyone does when the setting says so."""
    return user.role == "admin" or require_for_all


def is_enrolled(user: User) -> bool:
    return bool(user.totp_secret)


def _normalise(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


def _step_matching(secret: str, code: str, now: datetime) -> int | None:
    """The time step (now, one before or one after, for clock drift) whose code is `code`."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _code_hash(code: str) -> str:
    """A recovery code's salted Argon2id hash."""
    return _recovery_hasher.hash(_normalise(code))


def _code_matches(stored: str, code: str) -> bool:
    """Whether `code` is the one hashed in `stored`. Rows made before revision 0006 hold a plain
    SHA-256 and are still accepted until used or replaced (docs/security.md)."""
    if not stored.startswith("$argon2"):
        legacy = hashlib.sha256(code.encode()).hexdigest()
        return hmac.compare_digest(stored, legacy)
    try:
        return _recovery_hasher.verify(stored, code)
    except (VerificationError, InvalidHashError):
        return False


def _spend_step(user: User, step: int) -> bool:
    """Move the user's last used step to `step` unless a request already used it (or a later
    one): one conditional UPDATE, so of two requests with the same code only one gets a row."""
    spent = rows_changed(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if spent:
        set_committed_value(user, "totp_last_step", step)
    return spent == 1


def _spend_recovery_code(user: User, code: str) -> bool:
    """Spend the unused recovery code of the user that matches `code`, if this request is the
    one that spends it."""
    rows = db.session.execute(
        select(RecoveryCode.id, RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    ).all()
    match = next((row_id for row_id, stored in rows if _code_matches(stored, code)), None)
    if match is None:
        return False
    spent = rows_changed(
        update(RecoveryCode)
        .where(RecoveryCode.id == match, RecoveryCode.used_at.is_(None))
        .values(used_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    return spent == 1


def verify(actor: Actor, user: User, code: str, now: datetime | None = None) -> str | None:
    """Check a TOTP or recovery code; returns "totp" or "recovery" when accepted, else None.

    An accepted TOTP code's step becomes the user's last step, so the same code (or an older one)
    is refused afterwards; an accepted recovery code is spent. Both at once, in the database.
    """
    now = now or clock.now()
    if not user.totp_secret:
        return None
    code = _normalise(code)
    step = _step_matching(user.totp_secret, code, now)
    if step is not None:
        return "totp" if _spend_step(user, step) else None
    if len(code) == 10 and _spend_recovery_code(user, code):
        audit.record(actor, "recovery_code_used", user)
        return "recovery"
    return None


def has_old_recovery_codes(user: User) -> bool:
    """Whether unused recovery codes of the user are still stored as plain SHA-256 (made before
    revision 0006): the two-factor page asks the user to replace them."""
    return any(
        not stored.startswith("$argon2")
        for stored in db.session.scalars(
            select(RecoveryCode.code_hash).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
    )


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_code_hash(c)) for c in codes)
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def enrol(
    actor: Actor, user: User, secret: str, code: str, now: datetime | None = None
) -> list[str] | None:
    """Turn the second factor on once the user proves their app holds `secret`.

    Returns the new recovery codes (to be shown once) or None when the code is wrong.
    """
    now = now or clock.now()
    step = _step_matching(secret, _normalise(code), now)
    if step is None:
        return None
    was_enrolled = is_enrolled(user)
    user.totp_secret = secret
    user.totp_last_step = step
    codes = _new_recovery_codes(user)
    audit.record(
        actor,
        "update",
        user,
        {"second_factor": ("(hidden)" if was_enrolled else None, "(enrolled)")},
    )
    return codes


def regenerate_recovery_codes(actor: Actor, user: User) -> list[str]:
    """Replace every recovery code of the user (the old ones stop working)."""
    codes = _new_recovery_codes(user)
    audit.record(actor, "update", user, {"recovery_codes": ("(hidden)", "(replaced)")})
    return codes


def remaining_recovery_codes(user: User) -> int:
    return len(
        db.session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def remove(actor: Actor, user: User) -> None:
    """Turn the second factor off (an admin's password reset, or a user it is optional for)."""
    if not is_enrolled(user):
        return
    user.totp_secret = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(actor, "update", user, {"second_factor": ("(enrolled)", None)})
