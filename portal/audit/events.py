"""The audit trail's one write path: every change records who (an Actor), when, what, and its old
and new values, in the same transaction as the change (security.md, "Audit trail")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from portal import clock
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import AuditEvent, Base

_EVENTS = insert(AuditEvent)
# The table's own insert for many rows at once: the ORM's bulk path costs an import more.
_EVENT_ROWS = insert(Base.metadata.tables["audit_events"])


def plain(value: Any) -> Any:
    """A JSON-safe form of a stored value."""
    if isinstance(value, date):  # a datetime is a date too
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def entity_type_of(entity: Any) -> str:
    """The name the trail gives a record's kind: its table's, in the singular."""
    return str(entity.__tablename__).rstrip("s")


def event_row(
    actor: Actor,
    action: str,
    *,
    at: datetime | None = None,
    service_id: int | None = None,
    entity_type: str | None = None,
    entity_id: int | None = None,
    changes: dict[str, Any] | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """One audit event as a row of audit_events; `changes` already JSON-safe ({field: [old, new]})."""
    return dict(
        at=at or clock.utcnow(),
        user_id=actor.user_id,
        operator=actor.operator,
        remote_addr=actor.address,
        service_id=service_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=changes or None,
        detail=detail,
    )


def record(
    actor: Actor,
    action: str,
    entity: Any = None,
    changes: dict[str, tuple[Any, Any]] | None = None,
    *,
    service_id: int | None = None,
    detail: str | None = None,
    entity_type: str | None = None,
    entity_id: int | None = None,
) -> int:
    """Write an audit event in the current transaction (it commits with the change it records,
    or is rolled back with it); returns the event's id."""
    if entity is not None:
        if entity.id is None:
            db.session.flush()
        entity_type = entity_type or entity_type_of(entity)
        entity_id = entity.id
        if service_id is None:
            service_id = getattr(entity, "service_id", None)
    row = event_row(
        actor,
        action,
        service_id=service_id,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=(
            {field: [plain(old), plain(new)] for field, (old, new) in changes.items()}
            if changes
            else None
        ),
        detail=detail,
    )
    event_id: int = db.session.execute(_EVENTS.returning(AuditEvent.id), row).scalar_one()
    return event_id


def record_many(rows: Iterable[dict[str, Any]]) -> int:
    """Write many events at once (an import's), each made by `event_row` with its actor; returns
    how many were written."""
    batch = list(rows)
    if batch:
        db.session.execute(_EVENT_ROWS, batch)
    return len(batch)


def changes_of(entity: Any, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (old, new)} for each value that differs from the entity's, as the trail writes them."""
    changes: dict[str, tuple[Any, Any]] = {}
    for field, new in values.items():
        old = getattr(entity, field)
        if plain(old) != plain(new):
            changes[field] = (old, new)
    return changes


def apply_changes(entity: Any, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set each value on the entity and return {field: (old, new)} for those that changed."""
    changes = changes_of(entity, values)
    for field, (_old, new) in changes.items():
        setattr(entity, field, new)
    return changes
