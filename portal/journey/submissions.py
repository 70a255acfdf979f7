"""Idempotent saves (spec/offline.md, "The mechanism").

Every form carries a `submission_id` minted when it was rendered. A successful save keeps that
id, scoped to the user, with a hash of what was posted and where its outcome can be shown again.
The same id with the same content answers the first outcome and writes nothing; the same id with
different content is refused. A save refused for its content is never kept, so the corrected form
can be sent again with the same id. The unique constraint (user_id, submission_id) tells a copy
of a saved submission, or two copies racing each other, from a new save: the caller inserts the
submission before it writes anything else, catches the IntegrityError, rolls back and answers
with the first outcome (`first_outcome`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

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


_SUBMISSIONS = Submission.__table__
# Statements built once: SQLAlchemy keeps a statement's cache key with it, instead of working it
# out again at every save (docs/bench-journey.md).
_FIND = select(
    _SUBMISSIONS.c.content_hash,
    _SUBMISSIONS.c.status_code,
    _SUBMISSIONS.c.outcome_url,
    _SUBMISSIONS.c.entity_type,
    _SUBMISSIONS.c.entity_id,
).where(
    _SUBMISSIONS.c.user_id == bindparam("user_id"),
    _SUBMISSIONS.c.submission_id == bindparam("submission_id"),
)
_KEEP = _SUBMISSIONS.insert()
_POINT = _SUBMISSIONS.update().where(_SUBMISSIONS.c.id == bindparam("kept_id"))


def first_outcome(user_id: int, submission_id: str | None, digest: str) -> Outcome | None:
    """The outcome of an earlier save of this submission, or None if it was never saved.

    Raises SubmissionReused when the id was kept for different content.
    """
    if submission_id is None:
        return None
    kept = (
        db.session.connection()
        .execute(_FIND, {"user_id": user_id, "submission_id": submission_id})
        .first()
    )
    if kept is None:
        return None
    if kept.content_hash != digest:
        raise SubmissionReused()
    return Outcome(kept.status_code, kept.outcome_url, kept.entity_type, kept.entity_id)


def remember(
    user_id: int,
    submission_id: str | None,
    digest: str,
    *,
    endpoint: str,
    entity: Any = None,
    status_code: int = 200,
    outcome_url: str | None = None,
) -> int | None:
    """Keep a successful save in the current transaction; returns the kept row's id.

    It is inserted at once, before the save writes anything else, so a racing copy of the
    submission meets the unique constraint first and its whole transaction is rolled back.
    """
    if submission_id is None:
        return None
    kept = dict(
        user_id=user_id,
        submission_id=submission_id,
        content_hash=digest,
        endpoint=endpoint[:100],
        entity_type=entity.__tablename__.rstrip("s") if entity is not None else None,
        entity_id=entity.id if entity is not None else None,
        status_code=status_code,
        outcome_url=outcome_url,
    )
    return db.session.connection().execute(_KEEP, kept).inserted_primary_key[0]


def point_at(kept: int | None, entity: Any, outcome_url: str | None) -> None:
    """Fill in the entity and outcome of a kept submission once the save has created them."""
    if kept is None:
        return
    if entity.id is None:
        db.session.flush()
    db.session.connection().execute(
        _POINT,
        {
            "kept_id": kept,
            "entity_type": entity.__tablename__.rstrip("s"),
            "entity_id": entity.id,
            "outcome_url": outcome_url,
        },
    )
