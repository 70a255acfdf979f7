"""Record versions and conflicts between two people editing one record (spec/offline.md).

Patients and episodes carry a version number (SQLAlchemy's version_id_col) that rises with every
update. Each change records, in its audit event, the version it moved the record from and to
(`_version: [old, new]` among the changes), so what others changed since a form was rendered can be
read back from the audit trail. A save from an older version merges the fields only one side
changed and stops, with both values, on a field both sides changed differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import AuditEvent, Service

VERSION_KEY = "_version"


@dataclass(frozen=True)
class Conflict:
    """A field both sides changed since the form was rendered, with both values."""

    field: str
    yours: Any
    theirs: Any


def same(a: Any, b: Any) -> bool:
    """Two stored values are the same once written the way the audit trail writes them."""
    return bool(audit.plain(a) == audit.plain(b))


def changed_since(entity: Any, base_version: int) -> dict[str, Any] | None:
    """{field: value at base_version} for each field changed after base_version.

    None when the audit trail does not account for every version in between (a change recorded
    without its version): the caller must then treat every difference as a conflict.
    """
    if base_version >= entity.version:
        return {}
    events = db.session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.entity_type == audit.entity_type_of(entity),
            AuditEvent.entity_id == entity.id,
            AuditEvent.changes.is_not(None),
        )
        .order_by(AuditEvent.id)
    )
    steps: list[tuple[int, int, dict[str, Any]]] = []
    for event in events:
        changes = event.changes or {}
        versions = changes.get(VERSION_KEY)
        if not versions or versions[1] is None or versions[1] <= base_version:
            continue
        steps.append((int(versions[0] or 0), int(versions[1]), changes))
    steps.sort(key=lambda step: step[1])
    reached = base_version
    base_values: dict[str, Any] = {}
    for old, new, changes in steps:
        if old != reached:
            return None
        reached = new
        for field, (before, _after) in changes.items():
            if field != VERSION_KEY:
                base_values.setdefault(field, before)
    if reached != entity.version:
        return None
    return base_values


def merge(
    entity: Any, values: dict[str, Any], base_version: int | None
) -> tuple[dict[str, Any], list[Conflict]]:
    """Merge what the user saved (from base_version) with what others saved since.

    Returns the values to store and the conflicts: fields both sides changed, differently.
    """
    if base_version is None or base_version >= entity.version:
        return dict(values), []
    others = changed_since(entity, base_version)
    merged: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    for field, yours in values.items():
        theirs = getattr(entity, field)
        if others is not None and field not in others:
            merged[field] = yours  # only this user touched it
        elif same(yours, theirs):
            merged[field] = theirs
        elif others is not None and audit.plain(yours) == others[field]:
            merged[field] = theirs  # this user left it as it was: the other change stands
        else:
            conflicts.append(Conflict(field, yours, theirs))
    return merged, conflicts


def record_update(
    actor: Actor,
    entity: Any,
    values: dict[str, Any],
    *,
    action: str = "update",
    detail: str | None = None,
    noted: dict[str, tuple[Any, Any]] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Write the values that changed and audit them with the versions they move between.

    Returns the changes; nothing is written (and the version stays) when nothing changed.
    `noted` is kept in the audit event beside the changes (a confirmation that came with them). The ORM
    updates the row only from the version it was read at (the model's version_id_col: `UPDATE ...
    WHERE version = :read`), so a save that lost a race meets StaleDataError and writes nothing.
    """
    db.session.flush()  # whatever else is pending goes first, so the version read is current
    before = entity.version
    changes = audit.changes_of(entity, values)
    if not changes:
        return changes
    for field, (_old, new) in changes.items():
        setattr(entity, field, new)
    db.session.flush()
    audit.record(
        actor,
        action,
        entity,
        {**changes, **(noted or {}), VERSION_KEY: (before, entity.version)},
        detail=detail,
    )
    _advance_data_version(entity.service_id)
    return changes


def record_create(
    actor: Actor, entity: Any, fields: Iterable[str], *, detail: str | None = None
) -> None:
    """Add a new record and audit it: every field it was created with, and version 1."""
    db.session.add(entity)
    db.session.flush()
    changes = {
        field: (None, getattr(entity, field))
        for field in fields
        if getattr(entity, field) is not None
    }
    audit.record(
        actor, "create", entity, {**changes, VERSION_KEY: (None, entity.version)}, detail=detail
    )
    _advance_data_version(entity.service_id)


def _advance_data_version(service_id: int) -> None:
    """Every save and delete moves the service's data version on (the KPI cache keys on it).

    Written as `data_version + 1` in SQL so two saves at once never lose a step.
    """
    db.session.execute(
        update(Service)
        .where(Service.id == service_id)
        .values(data_version=Service.data_version + 1)
    )
