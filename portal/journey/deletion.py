"""Deleting an episode (a lead, with a reason) hides it from every list, KPI and export; an admin
of its service can restore it (dataset.md, "Deleted episodes")."""

from __future__ import annotations

from sqlalchemy import select

from portal import clock
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey import versions
from portal.models import Episode, Service


class DeleteRefused(ValueError):
    """Deleting was refused: `field` names the form field the message belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def delete_episode(actor: Actor, episode: Episode, reason: str, confirmed: bool) -> None:
    """Soft-delete an episode (lead): hidden from every list, KPI and export; an admin can restore it."""
    reason = (reason or "").strip()
    if not reason:
        raise DeleteRefused("reason", "Enter the reason for deleting this episode")
    if len(reason) > 1000:
        raise DeleteRefused("reason", "The reason must be 1000 characters or fewer")
    if not confirmed:
        raise DeleteRefused("confirm", "Confirm that you want to delete this episode")
    versions.record_update(
        actor,
        episode,
        {"deleted_at": clock.utcnow(), "deleted_by_id": actor.user_id, "deleted_reason": reason},
        action="delete",
        detail=reason,
    )


def restore_episode(actor: Actor, episode: Episode) -> None:
    """Undo a soft delete (admin of the episode's service)."""
    versions.record_update(
        actor,
        episode,
        {"deleted_at": None, "deleted_by_id": None, "deleted_reason": None},
        action="restore",
    )


def deleted_episodes(service: Service) -> list[Episode]:
    """The deleted episodes of a service, the most recently deleted first."""
    return list(
        db.session.scalars(
            select(Episode)
            .where(Episode.service_id == service.id, Episode.deleted_at.is_not(None))
            .order_by(Episode.deleted_at.desc())
        )
    )
