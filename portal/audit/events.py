"""The append-only audit trail: every change records who, when, what, and old and new values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from portal.extensions import db
from portal.models import AuditEvent

_INSERT = AuditEvent.__table__.insert()


def _plain(value: Any) -> Any:
    """A JSON-safe form of a stored value."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _actor():
    """The signed-in user of the current request, if there is one."""
    try:
        if has_request_context() and current_user.is_authenticated:
            return current_user._get_current_object()
    except RuntimeError:
        pass
    return None


def _remote_addr() -> str | None:
    return request.remote_addr if has_request_context() else None


def record(
    action: str,
    entity: Any = None,
    changes: dict[str, tuple[Any, Any]] | None = None,
    *,
    user: Any = None,
    service_id: int | None = None,
    detail: str | None = None,
    entity_type: str | None = None,
    entity_id: int | None = None,
) -> int:
    """Write an audit event in the current transaction (it commits with the change it records,
    or is rolled back with it); returns the event's id."""
    user = user if user is not None else _actor()
    if entity is not None:
        if entity.id is None:
            db.session.flush()
        entity_type = entity_type or entity.__tablename__.rstrip("s")
        entity_id = entity.id
        if service_id is None:
            service_id = getattr(entity, "service_id", None)
    event = dict(
        at=datetime.utcnow(),
        user_id=user.id if user is not None else None,
        service_id=service_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=(
            {field: [_plain(old), _plain(new)] for field, (old, new) in changes.items()}
            if changes
            else None
        ),
        detail=detail,
        remote_addr=_remote_addr(),
    )
    # A Core insert of a statement built once: the ORM's unit of work and a fresh statement's
    # cache key would cost a save more than the insert itself (docs/bench-journey.md).
    return db.session.connection().execute(_INSERT, event).inserted_primary_key[0]


def changes_of(entity: Any, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (old, new)} for each value that differs from the entity's, as the trail writes them."""
    changes: dict[str, tuple[Any, Any]] = {}
    for field, new in values.items():
        old = getattr(entity, field)
        if _plain(old) != _plain(new):
            changes[field] = (old, new)
    return changes


def apply_changes(entity: Any, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set each value on the entity and return {field: (old, new)} for those that changed."""
    changes = changes_of(entity, values)
    for field, (_old, new) in changes.items():
        setattr(entity, field, new)
    return changes
