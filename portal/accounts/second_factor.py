"""The second factor: TOTP (RFC 6238) with one-time recovery codes (security.md, accounts).

A code works once: the time step of the last accepted code is stored on the user and a code of that
step or an earlier one is refused. Recovery codes are stored as hashes and each is spent by use.
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
from sqlalchemy import delete, select

from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import RecoveryCode, User

ISSUER = "FLS Portal"
STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10
# Without 0/O and 1/I/L so a code read from paper is typed right.
_RECOVERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


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
    # Recovery codes carry 50 random bits: a plain SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def verify(actor: Actor, user: User, code: str, now: datetime | None = None) -> str | None:
    """Check a TOTP or recovery code; returns "totp" or "recovery" when accepted, else None.

    An accepted TOTP code's step becomes the user's last step, so the same code (or an older one)
    is refused afterwards; an accepted recovery code is spent.
    """
    now = now or clock.now()
    if not user.totp_secret:
        return None
    code = _normalise(code)
    step = _step_matching(user.totp_secret, code, now)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return None
        user.totp_last_step = step
        return "totp"
    if len(code) == 10:
        row = db.session.scalar(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _code_hash(code),
                RecoveryCode.used_at.is_(None),
            )
        )
        if row is not None:
            row.used_at = clock.utcnow()
            audit.record(actor, "recovery_code_used", user)
            return "recovery"
    return None


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
