"""Accounts: passwords, sign-in with a slow-down per email and address, one-time setup links, user admin."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from kpis.dataset import ROLES
from portal import clock
from portal.accounts import second_factor, sessions, throttling
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import Service, User, UserSession

# argon2-cffi's defaults are Argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# A real hash to verify against when the email is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")

MIN_PASSWORD_LENGTH = 12
SIGN_IN_REFUSED = "Enter a correct email address and password."


class AccountError(ValueError):
    """A refused account change: `field` names the form field it belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    own = Path(__file__).resolve().parent.parent / "data" / "common_passwords.txt"
    words = {
        line.strip().lower()
        for line in own.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    return frozenset(words | set(FREQUENCY_LISTS["passwords"]))


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why a password is refused (security.md), or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 256:
        return "Password must be 256 characters or fewer"
    lowered = password.lower()
    if lowered in _common_passwords() or len(set(lowered)) <= 2:
        return "This password is too common: choose another"
    if email and email.split("@")[0].lower() in lowered and len(email.split("@")[0]) >= 4:
        return "Password must not contain your email address"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def find_service(code: str) -> Service | None:
    return db.session.scalar(select(Service).where(Service.code == code.strip().upper()))


# --- sign-in --------------------------------------------------------------------------------


@dataclass
class SignInResult:
    user: User | None
    message: str | None = None
    wait_seconds: int = 0
    # The password was right; the session starts only after the second factor.
    second_factor: bool = False


def throttled_message(wait: int) -> str:
    """The same words whether or not the email has an account (security.md)."""
    return (
        "Too many failed sign-in attempts with this email address from your network. "
        f"Try again in {wait} seconds."
    )


def authenticate(
    actor: Actor, email: str, password: str, *, free: int, max_seconds: int
) -> SignInResult:
    """Check credentials of someone signing in (`actor`: their address); records failures (with
    the email tried, never the password) and success in the audit trail.

    Failures slow down this email from this address only (accounts/throttling.py), and an unknown
    email is slowed down the same way, so the answer never tells whether an account exists.
    """
    now = clock.utcnow()
    tried = normalise_email(email)[:254]
    user = find_user_by_email(email)
    who = actor.as_account(user) if user is not None else actor
    wait = throttling.wait_seconds(tried, actor.address, now, free, max_seconds)
    if wait:
        audit.record(who, "sign_in_failed", detail=f"{tried}: throttled for {wait}s")
        return SignInResult(None, throttled_message(wait), wait)
    if user is None or user.password_hash is None or not user.active:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        throttling.record_failure(actor, tried, now)
        audit.record(who, "sign_in_failed", detail=f"{tried}: unknown or inactive account")
        return SignInResult(None, SIGN_IN_REFUSED)
    if not password_matches(user, password):
        throttling.record_failure(actor, tried, now)
        audit.record(who, "sign_in_failed", detail=f"{tried}: wrong password")
        return SignInResult(None, SIGN_IN_REFUSED)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if user.totp_secret:
        # Failures are not forgiven yet: wrong second-factor codes keep slowing this address down.
        audit.record(who, "sign_in_password_ok", detail="waiting for the second factor")
        return SignInResult(user, second_factor=True)
    complete_sign_in(who, user, now)
    return SignInResult(user)


def password_matches(user: User, password: str) -> bool:
    """Whether `password` is the user's (an Argon2id verification; False for no password)."""
    try:
        return _hasher.verify(user.password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def throttle_wait(user: User, address: str | None, free: int, max_seconds: int) -> int:
    """Seconds the user must still wait from `address` (the second factor, re-authentication)."""
    return throttling.wait_seconds(user.email, address, clock.utcnow(), free, max_seconds)


def complete_sign_in(actor: Actor, user: User, now: datetime | None = None) -> None:
    """Every check passed: forgive earlier failures from this address and record the sign-in."""
    throttling.forgive(actor, user.email)
    user.last_login_at = now or clock.utcnow()
    audit.record(actor, "sign_in")


def second_factor_failed(actor: Actor, user: User) -> None:
    """A wrong second-factor code counts as a failed sign-in of this email from this address."""
    throttling.record_failure(actor, user.email, clock.utcnow())
    audit.record(actor, "sign_in_failed", detail="wrong second-factor code")


def reauthenticate(
    actor: Actor,
    user: User,
    record: UserSession,
    password: str,
    code: str | None,
    *,
    free: int,
    max_seconds: int,
) -> SignInResult:
    """A signed-in user proves it is them again (password, and a second-factor code where
    enrolled) before a change to how they sign in; failures count like failed sign-ins of this
    email from this address. Returns a result with `user` set when accepted."""
    wait = throttle_wait(user, actor.address, free, max_seconds)
    if wait:
        audit.record(actor, "reauthentication_failed", detail=f"throttled for {wait}s")
        return SignInResult(None, throttled_message(wait), wait)
    problem = None
    if not password_matches(user, password):
        problem = "wrong password"
    elif second_factor.is_enrolled(user) and not second_factor.verify(actor, user, code or ""):
        problem = "wrong second-factor code"
    if problem:
        throttling.record_failure(actor, user.email, clock.utcnow())
        audit.record(actor, "reauthentication_failed", detail=problem)
        message = (
            "Enter your correct password and a new code from your authenticator app"
            if second_factor.is_enrolled(user)
            else "Enter your correct password"
        )
        return SignInResult(None, message)
    sessions.note_reauthentication(record, clock.utcnow())
    audit.record(actor, "reauthenticated")
    return SignInResult(user)


def end_all_sessions(actor: Actor, user: User) -> None:
    """Every session of the user ends on the server: the records end, and raising the session
    version makes every cookie issued before it worthless."""
    user.session_version += 1
    sessions.end_every(actor, user)


def sign_out(actor: Actor, user: User) -> None:
    end_all_sessions(actor, user)
    audit.record(actor, "sign_out")


def change_password(actor: Actor, user: User, new: str) -> None:
    """A new password for a user who has just proved it is them (re-authentication, on the
    route); every session ends (the route starts a fresh one for this browser)."""
    problem = password_problem(new, user.email)
    if problem:
        raise AccountError(problem, "new_password")
    user.password_hash = hash_password(new)
    end_all_sessions(actor, user)
    audit.record(actor, "password_changed", user, {"password": ("(hidden)", "(changed)")})


# --- one-time setup links ---------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_setup_token(user: User, hours: int) -> str:
    """A one-time token for the user to set their own password; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    user.setup_token_hash = _token_hash(token)
    user.setup_token_expires_at = clock.utcnow() + timedelta(hours=hours)
    return token


def user_for_setup_token(token: str) -> User | None:
    if not token:
        return None
    user = db.session.scalar(select(User).where(User.setup_token_hash == _token_hash(token)))
    if user is None or not user.active:
        return None
    if user.setup_token_expires_at is None or user.setup_token_expires_at < clock.utcnow():
        return None
    return user


def set_password_with_token(actor: Actor, user: User, password: str) -> None:
    problem = password_problem(password, user.email)
    if problem:
        raise AccountError(problem, "password")
    user.password_hash = hash_password(password)
    user.setup_token_hash = None
    user.setup_token_expires_at = None
    end_all_sessions(actor, user)
    audit.record(actor, "password_set", user, {"password": ("(hidden)", "(set)")})


# --- user administration --------------------------------------------------------------------


def _check_role_services(role: str, services: list[Service]) -> None:
    if role not in ROLES:
        raise AccountError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}", "role")
    if role in ("clinician", "lead") and not services:
        raise AccountError("Clinicians and leads need at least one service", "services")


def create_user(
    actor: Actor,
    email: str,
    display_name: str,
    role: str,
    services: list[Service],
    password: str | None = None,
) -> User:
    """Add a user. Without a password the user sets one through a one-time link."""
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        raise AccountError("Enter an email address like name@nhs.net", "email")
    if db.session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise AccountError(f"A user with the email {email} already exists", "email")
    _check_role_services(role, services)
    if password is not None:
        problem = password_problem(password, email)
        if problem:
            raise AccountError(problem, "password")
    user = User(
        email=email,
        display_name=display_name.strip() or email.split("@")[0],
        role=role,
        active=True,
        password_hash=hash_password(password) if password is not None else None,
        session_version=1,
    )
    user.services = list(services)
    db.session.add(user)
    db.session.flush()
    audit.record(
        actor,
        "create",
        user,
        {
            "email": (None, email),
            "display_name": (None, user.display_name),
            "role": (None, role),
            "services": (None, ",".join(s.code for s in services)),
        },
    )
    return user


def update_user(
    actor: Actor,
    user: User,
    *,
    display_name: str,
    role: str,
    services: list[Service],
    active: bool,
) -> dict:
    """Change a user's name, role, services and whether they are active.

    An admin never adds themselves to a service or raises their own role (security.md): another
    admin does it. The refusal is audited (the caller commits it); the command line, the server's
    operator, may.
    """
    _check_role_services(role, services)
    gained = own_gain(actor, user, role, services)
    if gained:
        audit.record(actor, "permission_denied", user, detail=f"own account: {gained}")
        raise AccountError(
            "You cannot add yourself to a service or raise your own role: "
            "ask another admin to do it",
            "services" if "service" in gained else "role",
        )
    changes = audit.apply_changes(
        user, {"display_name": display_name.strip(), "role": role, "active": active}
    )
    old_codes = ",".join(s.code for s in user.services)
    new_codes = ",".join(s.code for s in sorted(services, key=lambda s: s.code))
    if old_codes != new_codes:
        user.services = list(services)
        changes["services"] = (old_codes, new_codes)
    if "active" in changes and not active:
        end_all_sessions(actor, user)
    if "role" in changes or "services" in changes:
        end_all_sessions(actor, user)  # a narrowed role or membership takes effect at once
    if changes:
        audit.record(actor, "update", user, changes)
    return changes


def own_gain(actor: Actor, user: User, role: str, services: list[Service]) -> str | None:
    """What a signed-in user would grant themselves by this change (a higher role, more
    services), or None."""
    if actor.at_command_line or actor.user_id != user.id:
        return None
    if ROLES.index(role) > ROLES.index(user.role):
        return f"role {user.role} to {role}"
    added = sorted({s.code for s in services} - {s.code for s in user.services})
    if added:
        return "service " + ", ".join(added)
    return None


def reset_password(actor: Actor, user: User, hours: int) -> str:
    """Clear the password, end the user's sessions and issue a new one-time link."""
    user.password_hash = None
    end_all_sessions(actor, user)
    # Someone who lost their authenticator app and recovery codes is reset the same way: they
    # set a new password and enrol again.
    second_factor.remove(actor, user)
    token = issue_setup_token(user, hours)
    audit.record(actor, "password_reset", user, {"password": ("(hidden)", "(reset)")})
    return token
