"""Writing a checked plan: one short transaction of bulk statements, after checking that no
episode or patient it updates changed since the check (their `version`), with one audit event
per patient and per episode holding its field changes, and one for the import itself.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, func, insert, select, text, update

from kpis.dataset import EPISODE_FIELDS
from portal import clock
from portal.audit import events
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey.versions import VERSION_KEY
from portal.models import ImportJob
from portal.models.base import Base
from portal.records import direct_care
from portal.records.importing.report import ImportReport, audit_changes, created_changes
from portal.records.importing.spool import (
    PATIENT_VALUE_FIELDS,
    STORED_PATIENT_FIELDS,
    EpisodeAddition,
    EpisodeUpdate,
    ImportPlan,
    PatientState,
)

# Rows per bulk statement.
BATCH_ROWS = 1000

_episodes: Table = Base.metadata.tables["episodes"]
_patients: Table = Base.metadata.tables["patients"]
_services: Table = Base.metadata.tables["services"]

_Item = TypeVar("_Item")


class StaleRecords(RuntimeError):
    """A record the plan updates changed after it was checked: nothing is written."""


def apply_plan(
    plan: ImportPlan,
    actor: Actor,
    *,
    service_id: int | None = None,
    job: ImportJob | None = None,
) -> ImportJob:
    """Write a checked plan in the current transaction with bulk statements; the caller commits.

    Raises StaleRecords (the caller rolls back) when an episode or patient the plan updates was
    changed by someone else after the check.
    """
    now = clock.utcnow()
    if plan.services_written:
        # Taking the write lock first (SQLite) means the version checks below read fresh rows.
        db.session.execute(
            update(_services)
            .where(_services.c.id.in_(plan.services_written))
            .values(data_version=_services.c.data_version + 1)
        )
    trail = _AuditTrail(actor, now)
    patient_ids = _write_patients(plan, trail, now)
    _EpisodeWriter(patient_ids, actor, trail, now).write(plan)
    job = _record_job(plan.report, actor, service_id, job, now)
    report = plan.report
    trail.add(
        "import",
        service_id=job.service_id,
        entity_type="import_job",
        entity_id=job.id,
        detail=(
            f"{report.file_name} (sha256 {report.sha256}): added {report.added}, "
            f"updated {report.updated}, unchanged {report.unchanged}, "
            f"refused {report.refused}"
        ),
    )
    trail.flush()
    return job


class _AuditTrail:
    """The import's audit events, written through the trail's one write path a batch at a time."""

    def __init__(self, actor: Actor, at: datetime) -> None:
        self.actor = actor
        self.at = at
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        action: str,
        *,
        service_id: int | None,
        entity_type: str,
        entity_id: int,
        changes: dict[str, Any] | None = None,
        detail: str = "CSV import",
    ) -> None:
        self.rows.append(
            events.event_row(
                self.actor,
                action,
                at=self.at,
                service_id=service_id,
                entity_type=entity_type,
                entity_id=entity_id,
                changes=changes,
                detail=detail,
            )
        )
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        events.record_many(self.rows)
        self.rows = []


def _batches(items: Iterable[_Item], size: int = BATCH_ROWS) -> Iterator[list[_Item]]:
    """Lists of up to `size` items, read lazily from any iterable."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _check_versions(table: Table, expected: dict[int, int]) -> None:
    """Lock the rows the plan updates and refuse if any changed since it was checked."""
    for ids in _batches(list(expected)):
        found = {
            row_id: version
            for row_id, version in db.session.execute(
                select(table.c.id, table.c.version).where(table.c.id.in_(ids)).with_for_update()
            )
        }
        for row_id in ids:
            if found.get(row_id) != expected[row_id]:
                raise StaleRecords(
                    "Records changed while the file was being checked: nothing was written. "
                    "Import the file again"
                )


# Patients ---------------------------------------------------------------------------------


def _write_patients(plan: ImportPlan, trail: _AuditTrail, now: datetime) -> _PatientIds:
    """New patients inserted, changed ones updated, each audited; the new patients' ids."""

    def changed_patients() -> Iterator[list[PatientState]]:
        return _batches(s for s in plan.index.stored_patients() if s.changes())

    for batch in changed_patients():
        _check_versions(_patients, dict(s.id_and_version() for s in batch))
    new_ids = _add_patients(plan, trail, now)
    _update_patients(changed_patients(), trail, now)
    return new_ids


def _add_patients(plan: ImportPlan, trail: _AuditTrail, now: datetime) -> _PatientIds:
    new_ids = _PatientIds(_patients, plan.new_patients)
    for batch in _batches(plan.index.new_patients()):
        rows: list[dict[str, Any]] = [
            {
                "id": new_ids.of(state.id, state.place),
                "service_id": state.service_id,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            | {f: state.values.get(f) for f in STORED_PATIENT_FIELDS}
            | direct_care.search_names(state.values)
            for state in batch
        ]
        db.session.execute(insert(_patients), rows)
        for state, row in zip(batch, rows, strict=True):
            trail.add(
                "create",
                service_id=state.service_id,
                entity_type="patient",
                entity_id=row["id"],
                changes=created_changes(state.values.items()),
            )
    return new_ids


def _update_patients(
    batches: Iterable[list[PatientState]], trail: _AuditTrail, now: datetime
) -> None:
    statement = (
        update(_patients)
        .where(_patients.c.id == bindparam("_id"))
        .values(
            {f: bindparam(f) for f in PATIENT_VALUE_FIELDS + direct_care.SEARCH_COLUMNS}
            | {"version": _patients.c.version + 1, "updated_at": now}
        )
    )
    for batch in batches:
        db.session.execute(
            statement,
            [
                {"_id": s.id}
                | {f: s.values.get(f) for f in PATIENT_VALUE_FIELDS}
                | direct_care.search_names(s.values)
                for s in batch
            ],
        )
        for state in batch:
            patient_id, version = state.id_and_version()
            # `_version` lets a form opened before the import merge field by field (versions.py).
            trail.add(
                "update",
                service_id=state.service_id,
                entity_type="patient",
                entity_id=patient_id,
                changes=audit_changes(state.changes()) | {VERSION_KEY: [version, version + 1]},
            )


# Episodes ---------------------------------------------------------------------------------


class _EpisodeWriter:
    """Episodes from the spool, in file order: bulk inserts and bulk updates, each audited."""

    def __init__(
        self, patient_ids: _PatientIds, actor: Actor, trail: _AuditTrail, now: datetime
    ) -> None:
        self.patient_ids = patient_ids
        self.user_id = actor.user_id
        self.trail = trail
        self.now = now
        self.additions: list[EpisodeAddition] = []
        self.updates: list[EpisodeUpdate] = []
        self.added_ids: list[int] = []
        self.update_statement = (
            update(_episodes)
            .where(_episodes.c.id == bindparam("_id"))
            .values(
                {f: bindparam(f) for f in EPISODE_FIELDS if f != "fracture_date"}
                | {"version": _episodes.c.version + 1, "updated_at": now}
            )
        )

    def write(self, plan: ImportPlan) -> None:
        for write in plan.spool:
            if isinstance(write, EpisodeAddition):
                self.additions.append(write)
                if len(self.additions) >= BATCH_ROWS:
                    self._add()
            else:
                self.updates.append(write)
                if len(self.updates) >= BATCH_ROWS:
                    self._update()
        if self.additions:
            self._add()
        if self.updates:
            self._update()
        _link_refractures(self.added_ids)

    def _add(self) -> None:
        ids = _allocate_ids(_episodes, len(self.additions))
        rows = [
            {
                "id": new_id,
                "service_id": addition.service_id,
                "patient_id": (self.patient_ids.of(addition.patient_id, addition.new_patient)),
                "created_by_id": self.user_id,
                "created_at": self.now,
                "updated_at": self.now,
                "version": 1,
            }
            | dict(zip(EPISODE_FIELDS, addition.values, strict=True))
            for addition, new_id in zip(self.additions, ids, strict=True)
        ]
        db.session.execute(insert(_episodes), rows)
        for addition, new_id in zip(self.additions, ids, strict=True):
            self.added_ids.append(new_id)
            self.trail.add(
                "create",
                service_id=addition.service_id,
                entity_type="episode",
                entity_id=new_id,
                changes=created_changes(zip(EPISODE_FIELDS, addition.values, strict=True)),
            )
        self.additions = []

    def _update(self) -> None:
        _check_versions(_episodes, {u.episode_id: u.version for u in self.updates})
        db.session.execute(
            self.update_statement,
            [
                {"_id": u.episode_id} | dict(zip(EPISODE_FIELDS, u.values, strict=True))
                for u in self.updates
            ],
        )
        for u in self.updates:
            self.trail.add(
                "update",
                service_id=u.service_id,
                entity_type="episode",
                entity_id=u.episode_id,
                changes=u.changes | {VERSION_KEY: [u.version, u.version + 1]},
            )
        self.updates = []


def _link_refractures(added_ids: list[int]) -> None:
    """A new episode of a known patient links to that patient's latest earlier episode."""
    earlier = _episodes.alias("earlier")
    latest_earlier = (
        select(earlier.c.id)
        .where(
            earlier.c.patient_id == _episodes.c.patient_id,
            earlier.c.fracture_date < _episodes.c.fracture_date,
            earlier.c.deleted_at.is_(None),
        )
        .order_by(earlier.c.fracture_date.desc())
        .limit(1)
        .scalar_subquery()
    )
    for ids in _batches(added_ids):
        db.session.execute(
            update(_episodes)
            .where(_episodes.c.id.in_(ids))
            .values(previous_episode_id=latest_earlier)
        )


# Ids --------------------------------------------------------------------------------------


def _allocate_ids(table: Table, count: int) -> list[int]:
    """Ids for rows about to be inserted, so that one executemany needs no RETURNING.

    PostgreSQL takes them from the table's sequence. On SQLite this transaction already holds
    the database's write lock (apply_plan writes first), so nobody else can insert meanwhile.
    """
    if count == 0:
        return []
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.execute(
                text(
                    "SELECT nextval(CAST(pg_get_serial_sequence(:table, 'id') AS regclass)) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": table.name, "count": count},
            ).scalars()
        )
    start: int = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(start + 1, start + 1 + count))


class _PatientIds:
    """The ids of the patients episodes are added to: a stored patient's own, or one allocated
    for each of the file's new patients, by its place among them."""

    def __init__(self, table: Table, new_patients: int) -> None:
        self.start = 0
        self.ids: array[int] | None = None
        if new_patients and db.session.get_bind().dialect.name == "postgresql":
            self.ids = array("q", _allocate_ids(table, new_patients))
        elif new_patients:
            self.start = _allocate_ids(table, 1)[0]  # the rest follow it: the lock is held

    def of(self, stored_id: int | None, place: int | None) -> int:
        if stored_id is not None:
            return stored_id
        assert place is not None, "a new patient has its place among the file's new patients"
        return self.ids[place] if self.ids is not None else self.start + place


def _record_job(
    report: ImportReport,
    actor: Actor,
    service_id: int | None,
    job: ImportJob | None,
    now: datetime,
) -> ImportJob:
    """The import's job, made or brought up to date as applied, with its report."""
    if job is None:
        job = ImportJob(
            service_id=service_id,
            user_id=actor.user_id,
            file_name=report.file_name,
            file_sha256=report.sha256,
            created_at=now,
        )
        db.session.add(job)
    job.status = "applied"
    job.keep_valid = report.keep_valid
    job.total_rows = report.rows
    job.processed_rows = report.rows
    job.added, job.updated, job.unchanged, job.refused = (
        report.added,
        report.updated,
        report.unchanged,
        report.refused,
    )
    report.written = True
    job.report = report.as_dict()
    job.finished_at = now
    db.session.flush()
    return job
