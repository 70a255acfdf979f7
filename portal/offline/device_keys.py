"""The per-user key that encrypts drafts and waiting submissions in the browser (offline.md).

The key is never stored: it is derived from the portal's SECRET_KEY, the user's id and the user's
key generation, so the server can hand the same key back to the same user after a new sign-in (the
items waiting on the device stay readable) and never to anyone else. Rotating raises the
generation: items encrypted with an older key become unreadable on every device, which is the
point when a device is lost. The generation is the number of `device_key_rotated` audit events of
the user, so a rotation is audited by construction and needs no column of its own.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import func, select

from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import AuditEvent, User

ROTATED = "device_key_rotated"


@dataclass(frozen=True)
class DeviceKey:
    user_id: int
    generation: int
    key: bytes  # 32 bytes: an AES-256-GCM key


def key_generation(user: User) -> int:
    """How many times the user's device key was rotated."""
    return (
        db.session.scalar(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.action == ROTATED,
                AuditEvent.entity_type == "user",
                AuditEvent.entity_id == user.id,
            )
        )
        or 0
    )


def device_key(user: User, secret_key: str | bytes) -> DeviceKey:
    """The user's current device key: HMAC-SHA256(SECRET_KEY, user id and key generation)."""
    generation = key_generation(user)
    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    message = f"fls-portal device key|user {user.id}|generation {generation}".encode()
    return DeviceKey(user.id, generation, hmac.new(secret, message, hashlib.sha256).digest())


def rotate_device_key(actor: Actor, user: User, reason: str) -> int:
    """Make every item the user keeps on any device unreadable; returns the new generation."""
    old = key_generation(user)
    audit.record(
        actor, ROTATED, user, {"device_key_generation": (old, old + 1)}, detail=reason or None
    )
    db.session.flush()
    return old + 1
