"""Imports started from the page: the upload, and checking and applying on the job queue's
workers (portal.background, Huey).

The upload is kept in the database (uploads.py), so whichever instance took it, any worker can
run the job. Progress lives in the `import_jobs` table, so whichever instance answers the page's
polling can read it.

A job waits in the queue with no `heartbeat_at`. A worker claims it (one conditional UPDATE:
`attempts` goes up by one, `heartbeat_at` is set), and every chunk of rows it checks is a sign of
life. Everything the run writes to the job is conditional on its attempt still being the latest,
and an apply takes the job's row first in its one transaction; so a run overtaken by another
writes nothing. When a worker dies (SIGKILL, a host lost) its transaction is rolled back by the
database: nothing half-written. A periodic task of the queue then finds the job with no sign of
life for STALL and marks it failed; a passing database error is retried by the queue itself
(background.RETRIES). Uploads are deleted after use, or after UPLOAD_DAYS days.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from flask import Flask
from sqlalchemy import CursorResult, Table, delete, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from portal import background, clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import ImportJob, ImportUploadChunk, Service
from portal.models.base import Base
from portal.operations import statistics
from portal.records import csv_files as csv_reading
from portal.records import importing as record_import
from portal.records import uploads
from portal.records.csv_files import FileRefused

RUNNING = ("checking", "applying")
# An upload is deleted after this many days, applied or not.
UPLOAD_DAYS = 7
# A running job whose worker has shown no sign of life for this long is taken to have died. A
# chunk of rows takes well under a second; an apply's transaction holds the job's row (skipped).
STALL = timedelta(minutes=5)
ABANDONED = (
    "The import stopped: the worker running it ended (a restart or a crash). Nothing "
    "was written. Upload the file again."
)
UNEXPECTED = "The import failed unexpectedly: nothing was written."
EXPIRED = f"Not applied within {UPLOAD_DAYS} days: the uploaded file was deleted."

_jobs: Table = Base.metadata.tables["import_jobs"]


class Superseded(RuntimeError):
    """This run of a job is no longer its latest (it was settled, discarded or run again)."""


def receive_upload(
    actor: Actor,
    stream: IO[bytes],
    file_name: str,
    *,
    service: Service,
    max_bytes: int,
) -> ImportJob:
    """Keep an uploaded file in the database and check what can be checked at once (size,
    encoding, header). Returns a new job in status "checking", not yet queued; raises
    FileRefused (nothing kept). The file passes through a private temporary file, a megabyte
    at a time: never whole in memory."""
    file_name = Path(file_name or "").name.strip() or "upload.csv"
    handle, name = tempfile.mkstemp(prefix="fls-upload-", suffix=".csv")  # 0600: patient data
    path = Path(name)
    try:
        size = 0
        with os.fdopen(handle, "wb") as out:
            while chunk := stream.read(uploads.CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise FileRefused(
                        f"The file is over the limit of {csv_reading.size_text(max_bytes)}"
                    )
                out.write(chunk)
        facts = csv_reading.inspect_file(path, max_bytes)
        with csv_reading.open_text(path, facts.encoding) as text:
            columns = csv_reading.map_header(csv_reading.read_header(text))
        if not service.active:
            raise FileRefused(f"Service {service.code} is inactive: its records cannot be changed")
        expire_uploads(clock.utcnow())
        job = ImportJob(
            service_id=service.id,
            user_id=actor.user_id,
            file_name=file_name[:255],
            file_sha256=facts.sha256,
            status="checking",
            total_rows=max(facts.lines - 1, 0),
            processed_rows=0,
            report={"unknown_columns": columns.unknown},
        )
        db.session.add(job)
        db.session.flush()
        with path.open("rb") as kept:
            uploads.keep(job.id, kept)
    finally:
        path.unlink(missing_ok=True)
    audit.record(actor, "upload", job, detail=f"{job.file_name} (sha256 {job.file_sha256})")
    return job


def queue(job: ImportJob, *, apply: bool, actor: Actor) -> None:
    """Hand a job to the queue's workers, after the caller has committed it: check it
    (apply=False), or check and write it (apply=True) as `actor` (who uploaded or applies it:
    the author of the changes in the audit trail)."""
    background.run_import(job.id, apply, actor)


def run(app: Flask, job_id: int, *, apply: bool, actor: Actor, last_try: bool) -> None:
    """A worker's run of a job (background.run_import); it commits its own transactions."""
    attempt = _claim(job_id, "applying" if apply else "checking")
    if attempt is None:
        return  # already run, discarded or settled
    try:
        if apply:
            _apply(app, job_id, attempt, actor)
        else:
            _check(app, job_id, attempt)
    except Superseded:
        db.session.rollback()
    except (OperationalError, InterfaceError) as error:
        # Only the kind of error: its text may quote a row's values (no patient data in logs).
        app.logger.warning("import job %s met %s", job_id, type(error).__name__)
        db.session.rollback()
        if last_try:
            _fail(job_id, attempt, UNEXPECTED)
            return
        _release(job_id, attempt)
        raise background.TryAgain(f"import job {job_id}") from None
    except Exception as error:  # the job must not stay "running" for ever
        app.logger.error("import job %s failed: %s", job_id, type(error).__name__)
        db.session.rollback()
        _fail(job_id, attempt, UNEXPECTED)


def _claim(job_id: int, status: str) -> int | None:
    """Take a job waiting in the queue for this run; its attempt, or None if not waiting."""
    result = db.session.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.status == status, _jobs.c.heartbeat_at.is_(None))
        .values(attempts=_jobs.c.attempts + 1, heartbeat_at=clock.utcnow(), processed_rows=0)
    )
    if _count(result) != 1:
        db.session.rollback()
        return None
    attempt: int = db.session.execute(
        select(_jobs.c.attempts).where(_jobs.c.id == job_id)
    ).scalar_one()
    db.session.commit()
    return attempt


def _release(job_id: int, attempt: int) -> None:
    """Put a job back to waiting, for the queue's retry of this run."""
    db.session.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.attempts == attempt)
        .values(heartbeat_at=None, processed_rows=0)
    )
    db.session.commit()


def _hold(job_id: int, attempt: int, status: str) -> None:
    """In the current transaction, take the job's row for this run (a sign of life too), or
    raise Superseded when the run is no longer the job's latest."""
    result = db.session.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.attempts == attempt, _jobs.c.status == status)
        .values(heartbeat_at=clock.utcnow())
    )
    if _count(result) != 1:
        raise Superseded(f"import job {job_id}")


def _count(result: Any) -> int:
    # The result of an UPDATE is a CursorResult, which counts the rows matched.
    return cast("CursorResult[Any]", result).rowcount


def _progress_writer(job_id: int, attempt: int) -> Callable[[int, int], None]:
    """Record progress, and a sign of life, on its own short transaction, so every instance can
    read it at once."""

    def progress(done: int, total: int) -> None:
        try:
            with db.engine.begin() as connection:
                connection.execute(
                    update(_jobs)
                    .where(_jobs.c.id == job_id, _jobs.c.attempts == attempt)
                    .values(processed_rows=done, total_rows=total, heartbeat_at=clock.utcnow())
                )
        except OperationalError:
            # Another import holding SQLite's write lock must not fail this one: the bar
            # simply moves at the next chunk.
            pass

    return progress


def _fail(job_id: int, attempt: int, message: str) -> None:
    try:
        _hold(job_id, attempt, db.session.get_one(ImportJob, job_id).status)
    except Superseded:
        db.session.rollback()
        return
    _mark_failed(db.session.get_one(ImportJob, job_id), message)
    db.session.commit()


def _mark_failed(job: ImportJob, message: str) -> None:
    job.status = "failed"
    job.error = message
    job.finished_at = clock.utcnow()
    uploads.forget(job.id)


def _check(app: Flask, job_id: int, attempt: int) -> None:
    job = db.session.get_one(ImportJob, job_id)
    service = db.session.get(Service, job.service_id)
    with uploads.local_copy(job_id) as path:
        try:
            plan = record_import.check_file(
                path,
                service=service,
                file_name=job.file_name,
                max_bytes=app.config["IMPORT_MAX_BYTES"],
                progress=_progress_writer(job_id, attempt),
            )
        except FileRefused as error:
            db.session.rollback()
            _fail(job_id, attempt, str(error))
            return
    plan.close()
    _hold(job_id, attempt, "checking")
    _set_preview(db.session.get_one(ImportJob, job_id), plan.report)
    db.session.commit()


def _set_preview(job: ImportJob, report: record_import.ImportReport) -> None:
    job.status = "previewed"
    job.heartbeat_at = None
    job.total_rows = job.processed_rows = report.rows
    job.added, job.updated, job.unchanged, job.refused = (
        report.added,
        report.updated,
        report.unchanged,
        report.refused,
    )
    job.report = report.as_dict()


def _apply(app: Flask, job_id: int, attempt: int, actor: Actor) -> None:
    job = db.session.get_one(ImportJob, job_id)
    service = db.session.get(Service, job.service_id)
    with uploads.local_copy(job_id) as path:
        try:
            report = record_import.import_file(
                path,
                actor,
                service=service,
                file_name=job.file_name,
                keep_valid=job.keep_valid,
                max_bytes=app.config["IMPORT_MAX_BYTES"],
                job=job,
                progress=_progress_writer(job_id, attempt),
                # The first write of the one transaction: the job's row, held to the commit.
                before_write=lambda: _hold(job_id, attempt, "applying"),
            )
        except (FileRefused, record_import.StaleRecords) as error:
            db.session.rollback()
            _fail(job_id, attempt, str(error))
            return
    if report.written:
        uploads.forget(job_id)
        db.session.commit()
        statistics.after_bulk_write(report.added + report.updated)
        return
    # All or nothing, and rows were refused: nothing written; the preview shows them again.
    db.session.rollback()
    _hold(job_id, attempt, "applying")
    job = db.session.get_one(ImportJob, job_id)
    refused_before = job.refused
    _set_preview(job, report)
    job.error = (
        "Rows are refused and all or nothing was chosen. Correct the file, or choose to import "
        "the rows that pass."
        if refused_before
        else "The records changed since the preview, and rows are now refused: check them below."
    )
    db.session.commit()


def request_apply(actor: Actor, job: ImportJob, *, keep_valid: bool) -> bool:
    """Move a previewed job to "applying", waiting in the queue; False when it is not waiting
    for that. The caller commits, then queues it."""
    # One conditional UPDATE, so two clicks (or two instances) cannot start it twice.
    result = db.session.execute(
        update(_jobs)
        .where(_jobs.c.id == job.id, _jobs.c.status == "previewed")
        .values(
            status="applying",
            keep_valid=keep_valid,
            processed_rows=0,
            error=None,
            heartbeat_at=None,
        )
    )
    db.session.expire(job)
    if _count(result) != 1:
        return False
    audit.record(actor, "apply_requested", job, detail="rows that pass" if keep_valid else "all")
    return True


def discard(actor: Actor, job: ImportJob) -> None:
    """Drop a previewed (or failed) import and its file."""
    if job.status in RUNNING:
        return
    if job.status != "applied":
        job.status = "discarded"
        audit.record(actor, "discard", job)
    uploads.forget(job.id)


def settle_stalled(now: datetime) -> int:
    """Mark failed the running jobs whose worker has shown no sign of life for STALL (it died);
    how many. A job whose apply transaction is still open holds its row, and is skipped
    (PostgreSQL; SQLite waits for the writer instead). The caller commits."""
    stalled = db.session.scalars(
        select(ImportJob)
        .where(ImportJob.status.in_(RUNNING), ImportJob.heartbeat_at < now - STALL)
        .with_for_update(skip_locked=True)
    ).all()
    for job in stalled:
        _mark_failed(job, ABANDONED)
    return len(stalled)


def expire_uploads(now: datetime) -> int:
    """Delete the uploads kept more than UPLOAD_DAYS days: a job previewed and never applied is
    discarded, one never taken from the queue fails. How many jobs ended so. The caller
    commits."""
    cutoff = now - timedelta(days=UPLOAD_DAYS)
    stale = db.session.scalars(
        select(ImportJob)
        .where(
            ImportJob.created_at < cutoff,
            (ImportJob.status == "previewed")
            | (ImportJob.status.in_(RUNNING) & ImportJob.heartbeat_at.is_(None)),
        )
        .with_for_update(skip_locked=True)
    ).all()
    for job in stale:
        job.status = "discarded" if job.status == "previewed" else "failed"
        job.error = EXPIRED
        job.finished_at = job.finished_at or now
    # Any other upload that old (its job ended without deleting it, or it lost its job).
    old = select(ImportJob.id).where(
        ImportJob.created_at < cutoff, ImportJob.status.not_in(RUNNING)
    )
    db.session.execute(delete(ImportUploadChunk).where(ImportUploadChunk.job_id.in_(old)))
    return len(stale)


def recent_jobs(service: Service, limit: int = 10) -> list[ImportJob]:
    """The service's latest imports, newest first."""
    return list(
        db.session.scalars(
            select(ImportJob)
            .where(ImportJob.service_id == service.id)
            .order_by(ImportJob.id.desc())
            .limit(limit)
        )
    )
