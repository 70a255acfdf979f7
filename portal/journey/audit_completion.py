"""Complete for the audit: a lead marks an episode whose data are final for FLS-DB, which locks
it against casual edits (its stage forms are read only and refuse a save); a lead can reopen it,
with a reason kept in its history."""

from __future__ import annotations

from portal import clock
from portal.audit.actor import Actor
from portal.journey import versions
from portal.models import Episode

LOCKED = (
    "This episode is complete for the audit and locked against changes. A service lead can "
    "reopen it, with a reason."
)
MAX_REASON = 1000


class ReopenRefused(ValueError):
    """Reopening was refused: the message says why, beside the reason field."""


def is_locked(episode: Episode) -> bool:
    return episode.audit_complete_at is not None


def mark_complete(actor: Actor, episode: Episode) -> None:
    """Mark the episode complete for the audit (nothing happens when it already is)."""
    if is_locked(episode):
        return
    versions.record_update(
        actor,
        episode,
        {"audit_complete_at": clock.utcnow(), "audit_complete_by_id": actor.user_id},
        action="complete_for_audit",
    )


def reopen(actor: Actor, episode: Episode, reason: str) -> None:
    """Reopen a complete episode for changes; the reason goes into its history."""
    reason = (reason or "").strip()
    if not reason:
        raise ReopenRefused("Enter the reason for reopening this episode")
    if len(reason) > MAX_REASON:
        raise ReopenRefused(f"The reason must be {MAX_REASON} characters or fewer")
    if not is_locked(episode):
        return
    versions.record_update(
        actor,
        episode,
        {"audit_complete_at": None, "audit_complete_by_id": None},
        action="reopen_for_audit",
        detail=reason,
    )
