"""Writing generated rows in bulk: SQLAlchemy Core inserts in chunks, each patient and episode
with its `create` audit event (and a `delete` one for a soft-deleted episode), all in the
caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session, scoped_session

from kpis import dataset as ds
from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.models import AuditEvent, Episode, Patient, TreatmentCourse, TreatmentEvent
from portal.operations.progress import Progress, ProgressBar, quiet
from portal.operations.synthetic.people import Row

PATIENT_COLUMNS = ("service_id",) + ds.PATIENT_FIELDS + ds.DIRECT_CARE_FIELDS
# The names as the search compares them: written with the patient, never audited (derived).
SEARCH_COLUMNS = ("given_name_search", "family_name_search")
EPISODE_COLUMNS = ("service_id", "patient_id", "previous_episode_id") + ds.EPISODE_FIELDS

# A declarative model's __table__ is a Table; SQLAlchemy types it as any FromClause.
_PATIENTS = cast(Table, Patient.__table__)
_EPISODES = cast(Table, Episode.__table__)
_COURSES = cast(Table, TreatmentCourse.__table__)
_TREATMENT_EVENTS = cast(Table, TreatmentEvent.__table__)
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
COURSE_COLUMNS = ("drug", "route", "started_on", "stopped_on", "stop_reason")


# Writes rows of one table in the session's transaction: a faster path than SQLAlchemy's
# executemany for a benchmark-sized load (PostgreSQL's COPY, in bench/make_dataset.py).
BulkInsert = Callable[[Table, list[Row]], Any]


@dataclass
class Written:
    patients: int = 0
    episodes: int = 0
    deleted: int = 0
    first_fracture: date | None = None
    last_fracture: date | None = None


def _created(values: Mapping[str, Any], columns: Sequence[str]) -> dict[str, list[Any]]:
    """The changes of a create audit event: every recorded value, old value none."""
    plain = audit.plain
    return {c: [None, plain(v)] for c in columns if (v := values.get(c)) is not None}


@dataclass
class _Chunk:
    """The rows and audit events waiting for the next bulk insert."""

    session: Session | scoped_session[Any]
    bar: ProgressBar
    after_chunk: Callable[[], Any] | None
    bulk: BulkInsert | None = None
    patients: list[Row] = field(default_factory=list)
    episodes: list[Row] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    courses: list[Row] = field(default_factory=list)
    doses: list[Row] = field(default_factory=list)

    def insert(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        if self.bulk is not None:
            self.bulk(table, rows)
        elif table is _AUDIT_EVENTS:
            audit.record_many(rows)
        else:
            self.session.execute(insert(table), rows)

    def flush(self) -> None:
        self.insert(_PATIENTS, self.patients)
        self.insert(_EPISODES, self.episodes)
        # A switch points at its follow-on course, written in the same chunk after it.
        for switched in (False, True):
            self.insert(
                _COURSES, [c for c in self.courses if (c["follow_on_id"] is not None) == switched]
            )
        self.insert(_TREATMENT_EVENTS, self.doses)
        self.insert(_AUDIT_EVENTS, self.events)
        self.bar.update(len(self.episodes))
        if (
            self.after_chunk is not None
        ):  # e.g. a commit, so a huge load never sits in one transaction
            self.after_chunk()
        self.patients.clear()
        self.episodes.clear()
        self.events.clear()
        self.courses.clear()
        self.doses.clear()


def write(
    actor: Actor,
    session: Session | scoped_session[Any],
    rows: Iterable[tuple[Row, list[Row]]],
    *,
    total: int,
    progress: Progress | None = None,
    deleted_by: Mapping[int, int] | None = None,
    chunk: int = 5_000,
    audited: bool = True,
    now: datetime | None = None,
    after_chunk: Callable[[], Any] | None = None,
    bulk: BulkInsert | None = None,
) -> Written:
    """Bulk-insert generated rows with SQLAlchemy Core, in chunks, with a `create` audit event per
    patient and episode (and a `delete` one per soft-deleted episode, by the service's user in
    `deleted_by`). Writes in the session's transaction and never commits itself; `after_chunk` is
    called after each chunk; `bulk`, when given, writes each table's rows instead of SQLAlchemy
    Core inserts (and of `audit.record_many` for the events, made by `audit.event_row`)."""
    now = now or clock.utcnow()
    next_patient = (session.scalar(select(func.max(Patient.id))) or 0) + 1
    next_episode = (session.scalar(select(func.max(Episode.id))) or 0) + 1
    next_course = (session.scalar(select(func.max(TreatmentCourse.id))) or 0) + 1
    next_dose = (session.scalar(select(func.max(TreatmentEvent.id))) or 0) + 1
    written = Written()

    with (progress or quiet)(total, "Writing episodes") as bar:
        waiting = _Chunk(session, bar, after_chunk, bulk)

        def event(
            action: str,
            entity_id: int,
            service_id: int,
            changes: dict[str, Any],
            *,
            entity_type: str = "episode",
            detail: str | None = None,
            by: Actor = actor,
        ) -> None:
            if audited:
                waiting.events.append(
                    audit.event_row(
                        by,
                        action,
                        at=now,
                        service_id=service_id,
                        entity_type=entity_type,
                        entity_id=entity_id,
                        changes=changes,
                        detail=detail,
                    )
                )

        for patient, patient_episodes in rows:
            patient_id = next_patient
            next_patient += 1
            waiting.patients.append(
                {"id": patient_id, "version": 1, "created_at": now, "updated_at": now}
                | {c: patient.get(c) for c in PATIENT_COLUMNS + SEARCH_COLUMNS}
            )
            event(
                "create",
                patient_id,
                patient["service_id"],
                _created(patient, PATIENT_COLUMNS),
                entity_type="patient",
            )
            ids: list[int] = []
            for episode in patient_episodes:
                episode_id = next_episode
                next_episode += 1
                ids.append(episode_id)
                previous = episode.get("previous_index")
                values = {c: episode.get(c) for c in EPISODE_COLUMNS} | {
                    "patient_id": patient_id,
                    "previous_episode_id": ids[previous] if previous is not None else None,
                }
                reason = episode.get("deleted_reason")
                deleter = (deleted_by or {}).get(values["service_id"])
                waiting.episodes.append(
                    {
                        "id": episode_id,
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                        "created_by_id": None,
                        "deleted_at": now if reason else None,
                        "deleted_by_id": deleter if reason else None,
                        "deleted_reason": reason,
                    }
                    | values
                )
                event("create", episode_id, values["service_id"], _created(values, EPISODE_COLUMNS))
                if reason:
                    event(
                        "delete",
                        episode_id,
                        values["service_id"],
                        {"deleted_reason": [None, reason]},
                        detail=reason,
                        by=Actor(user_id=deleter, operator=actor.operator),
                    )
                    written.deleted += 1
                _widen(written, episode["fracture_date"])
                plan = episode.get("treatment_courses") or []
                course_ids = list(range(next_course, next_course + len(plan)))
                next_course += len(plan)
                for course_id, course in zip(course_ids, plan, strict=True):
                    follow_on = course.get("follow_on_index")
                    row = {c: course.get(c) for c in COURSE_COLUMNS} | {
                        "id": course_id,
                        "service_id": values["service_id"],
                        "episode_id": episode_id,
                        "follow_on_id": course_ids[follow_on] if follow_on is not None else None,
                        "no_follow_on_confirmed": bool(course.get("no_follow_on_confirmed")),
                        "version": 1,
                        "created_at": now,
                        "created_by_id": None,
                    }
                    waiting.courses.append(row)
                    event(
                        "create",
                        course_id,
                        values["service_id"],
                        _created(row, ("episode_id", *COURSE_COLUMNS)),
                        entity_type="treatment_course",
                    )
                    for kind in ("dose", "review"):
                        for day in course.get(f"{kind}s") or []:
                            waiting.doses.append(
                                {
                                    "id": next_dose,
                                    "service_id": values["service_id"],
                                    "course_id": course_id,
                                    "kind": kind,
                                    "event_date": day,
                                    "note": None,
                                    "created_at": now,
                                    "created_by_id": None,
                                }
                            )
                            next_dose += 1
            written.patients += 1
            written.episodes += len(patient_episodes)
            if len(waiting.episodes) >= chunk:
                waiting.flush()
        waiting.flush()
    _advance_sequences(session)
    return written


def _widen(written: Written, fracture: date) -> None:
    """Stretch the written span of fracture dates to take in this one."""
    if written.first_fracture is None or fracture < written.first_fracture:
        written.first_fracture = fracture
    if written.last_fracture is None or fracture > written.last_fracture:
        written.last_fracture = fracture


def _advance_sequences(session: Session | scoped_session[Any]) -> None:
    """PostgreSQL's id sequences do not see explicit ids: move them past the rows written."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in ("patients", "episodes", "treatment_courses", "treatment_events"):
        session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )
        )
