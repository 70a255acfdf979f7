"""Reading the audit trail (security.md): who may see which events, filtered and paged.

A lead sees the events of their current service. An admin sees every event, but the field values
(`changes`) of an event of a service the admin is not a member of are withheld: they can hold
patient-identifiable data, and membership is what grants access to a service's patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from portal.extensions import db
from portal.models import AuditEvent, Service, User

PER_PAGE = 50


class AuditAccessError(PermissionError):
    """The viewer may not read the audit trail (or has no service to read it for)."""


@dataclass
class AuditFilters:
    """What the viewer narrowed the trail to; every field optional."""

    user: str | None = None  # an email, or part of one
    entity_type: str | None = None
    entity_id: int | None = None
    action: str | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class AuditRow:
    event: AuditEvent
    user_email: str | None
    service_code: str | None
    changes: dict[str, Any] | None
    changes_withheld: bool


@dataclass
class AuditPage:
    rows: list[AuditRow]
    total: int
    page: int
    pages: int
    scope: str  # "all services" or the service's code
    actions: list[str] = field(default_factory=list)
    entity_types: list[str] = field(default_factory=list)


def _scoped(query: Select, viewer: User, service: Service | None) -> tuple[Select, str]:
    if viewer.role == "admin":
        return query, "all services"
    if viewer.role == "lead":
        if service is None or service.id not in viewer.service_ids:
            raise AuditAccessError("no current service")
        return query.where(AuditEvent.service_id == service.id), service.code
    raise AuditAccessError(f"role {viewer.role} may not read the audit trail")


def _filtered(query: Select, filters: AuditFilters) -> Select:
    if filters.user:
        query = query.where(
            AuditEvent.user_id.in_(
                select(User.id).where(User.email.contains(filters.user.strip().lower()))
            )
        )
    if filters.entity_type:
        query = query.where(AuditEvent.entity_type == filters.entity_type)
    if filters.entity_id is not None:
        query = query.where(AuditEvent.entity_id == filters.entity_id)
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.date_from:
        query = query.where(AuditEvent.at >= datetime.combine(filters.date_from, time.min))
    if filters.date_to:
        # Inclusive: the whole of the last day.
        query = query.where(
            AuditEvent.at < datetime.combine(filters.date_to + timedelta(days=1), time.min)
        )
    return query


def search(
    viewer: User, service: Service | None, filters: AuditFilters, page: int = 1
) -> AuditPage:
    """The page of audit events `viewer` may see, newest first."""
    base, scope = _scoped(select(AuditEvent), viewer, service)
    query = _filtered(base, filters)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    events = db.session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    ).all()
    emails = dict(
        db.session.execute(
            select(User.id, User.email).where(User.id.in_({e.user_id for e in events if e.user_id}))
        ).all()
    )
    codes = dict(
        db.session.execute(
            select(Service.id, Service.code).where(
                Service.id.in_({e.service_id for e in events if e.service_id})
            )
        ).all()
    )
    member_of = viewer.service_ids
    rows = []
    for event in events:
        withheld = bool(event.changes) and (
            event.service_id is not None and event.service_id not in member_of
        )
        rows.append(
            AuditRow(
                event=event,
                user_email=emails.get(event.user_id),
                service_code=codes.get(event.service_id),
                changes=None if withheld else event.changes,
                changes_withheld=withheld,
            )
        )
    # The choices of the filter come from what this viewer may see.
    actions = db.session.scalars(
        base.with_only_columns(AuditEvent.action).distinct().order_by(AuditEvent.action)
    ).all()
    entity_types = db.session.scalars(
        base.with_only_columns(AuditEvent.entity_type)
        .where(AuditEvent.entity_type.is_not(None))
        .distinct()
        .order_by(AuditEvent.entity_type)
    ).all()
    return AuditPage(
        rows, total, page, pages, scope, list(actions), [t for t in entity_types if t is not None]
    )
