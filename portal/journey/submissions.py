"""Idempotent saves (spec/offline.md, "The mechanism").

Every form carries a `submission_id` minted when it was rendered. A successful save keeps that
id, scoped to the user, with a hash of what was posted and where its outcome can be shown again.
The same id with the same content answers the first outcome and writes nothing; the same id with
different content is refused. A save refused for its content is never kept, so the corrected form
can be sent again with the same id. The unique constraint (user_id, submission_id) tells a copy
of a saved submission, or two copies racing each other, from a new save: the save engine
(journey/saving.py) inserts the submission before it writes anything else, so a copy meets the
constraint first, is rolled back whole and answers with the first outcome (`first_outcome`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import Submission

# Fields that change from one copy of the same submission to the next without changing its content.
IGNORED_FIELDS = frozenset({"csrf_token", "submission_id"})
# A submission id is a UUID; anything longer than the column is not one of ours.
MAX_ID_LENGTH = 64


class SubmissionReused(Exception):
    """The submission id was already used for a save with different content."""

    message = (
        "This form was already saved once with different answers. "
        "Your answers are still here: check them and save again."
    )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PostedSubmission:
    """A posted save: its id (the form's submission_id, or the Idempotency-Key header) and a hash
    of what was posted."""

    id: str | None
    digest: str

    @classmethod
    def posted(cls, raw_id: str | None, items: Iterable[tuple[str, Any]]) -> PostedSubmission:
        return cls(clean_id(raw_id), content_hash(items))


@dataclass(frozen=True)
class Outcome:
    """What the first save of a submission answered."""

    status_code: int
    outcome_url: str | None
    entity_type: str | None
    entity_id: int | None


def clean_id(raw: str | None) -> str | None:
    """The submission id as kept, or None when the request carries none usable."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > MAX_ID_LENGTH:
        return None
    return raw


def content_hash(items: Iterable[tuple[str, Any]]) -> str:
    """A hash of the posted fields, CSRF token and submission id aside, whatever their order."""
    kept = sorted((str(name), str(value)) for name, value in items if name not in IGNORED_FIELDS)
    return hashlib.sha256(json.dumps(kept, ensure_ascii=False).encode("utf-8")).hexdigest()


def first_outcome(actor: Actor, submission: PostedSubmission) -> Outcome | None:
    """The outcome of an earlier save of this submission by this user, or None if it was never
    saved. Raises SubmissionReused when the id was kept for different content."""
    if submission.id is None or actor.user_id is None:
        return None
    kept = db.session.scalar(
        select(Submission).where(
            Submission.user_id == actor.user_id,
            Submission.submission_id == submission.id,
        )
    )
    if kept is None:
        return None
    if kept.content_hash != submission.digest:
        raise SubmissionReused()
    return Outcome(kept.status_code, kept.outcome_url, kept.entity_type, kept.entity_id)


def remember(
    actor: Actor,
    submission: PostedSubmission,
    *,
    kind: str,
    entity: Any = None,
    outcome_url: str | None = None,
) -> int | None:
    """Keep a successful save in the current transaction; returns the kept row's id.

    It is inserted at once, before the save writes anything else, so a racing copy of the
    submission meets the unique constraint first and its whole transaction is rolled back.
    """
    if submission.id is None or actor.user_id is None:
        return None
    kept = Submission(
        user_id=actor.user_id,
        submission_id=submission.id,
        content_hash=submission.digest,
        endpoint=kind[:100],
        entity_type=audit.entity_type_of(entity) if entity is not None else None,
        entity_id=entity.id if entity is not None else None,
        status_code=200,
        outcome_url=outcome_url,
    )
    db.session.add(kept)
    db.session.flush()
    return kept.id


def point_at(actor: Actor, kept_id: int | None, entity: Any, outcome_url: str | None) -> None:
    """Fill in the entity and outcome of `actor`'s kept submission once the save has created
    them."""
    if kept_id is None:
        return
    db.session.execute(
        update(Submission)
        .where(Submission.id == kept_id, Submission.user_id == actor.user_id)
        .values(
            entity_type=audit.entity_type_of(entity),
            entity_id=entity.id,
            outcome_url=outcome_url,
        )
    )
