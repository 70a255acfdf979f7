"""Imports started from the page: the upload, and checking and applying in a background thread.

Progress lives in the `import_jobs` table, so whichever gunicorn worker answers the page's
polling can read it. The thread runs in the portal's own process: no external queue. The job
names that process (`runner`), so that if the process ends mid-way (a restart, a crash) the
next page showing the job marks it failed instead of "running" for ever; an apply is one
transaction, so nothing was written. An upload checked but never applied is deleted after
UNAPPLIED_DAYS days.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from flask import Flask
from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.exc import OperationalError

from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.files import open_private
from portal.models import ImportJob, Service
from portal.models.base import Base
from portal.records import csv_files as csv_reading
from portal.records import importing as record_import
from portal.records.csv_files import FileRefused

_COPY_CHUNK = 1 << 20
RUNNING = ("checking", "applying")
# An upload checked but neither applied nor discarded is deleted after this many days.
UNAPPLIED_DAYS = 7
ABANDONED = (
    "The import stopped: the server process running it ended (a restart or a crash). Nothing "
    "was written. Upload the file again."
)
EXPIRED = f"Not applied within {UNAPPLIED_DAYS} days: the uploaded file was deleted."

_jobs: Table = Base.metadata.tables["import_jobs"]


def this_process() -> str:
    """The current process as a job's runner: host, pid and start time (a pid can be reused)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid)}"


def _started(pid: int) -> str:
    """When a process started (clock ticks since boot, Linux /proc); "" where it cannot be read,
    or when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def runner_gone(runner: str | None) -> bool:
    """Whether the process a job names has ended. A process of another host cannot be seen from
    here, so it counts as still running."""
    try:
        host, pid_text, started = (runner or "").rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False  # no runner named (a job from before migration 0004)
    if host != socket.gethostname():
        return False
    now = _started(pid)
    if now or started:
        return now != started
    try:  # no /proc: ask the kernel whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def settle(job: ImportJob) -> bool:
    """Mark a running job failed when the process running it has ended; True when it did."""
    if job.status not in RUNNING or not runner_gone(job.runner):
        return False
    _mark_failed(job, ABANDONED)
    return True


def expire_unapplied(now: datetime) -> int:
    """Delete the files of uploads previewed more than UNAPPLIED_DAYS days ago and never applied
    (their jobs become discarded); how many."""
    stale = db.session.scalars(
        select(ImportJob).where(
            ImportJob.status == "previewed",
            ImportJob.created_at < now - timedelta(days=UNAPPLIED_DAYS),
        )
    ).all()
    for job in stale:
        job.status = "discarded"
        job.error = EXPIRED
        _forget_file(job)
    return len(stale)


def receive_upload(
    actor: Actor,
    stream: IO[bytes],
    file_name: str,
    *,
    service: Service,
    folder: Path,
    max_bytes: int,
) -> ImportJob:
    """Keep an uploaded file on disk and check what can be checked at once (size, encoding,
    header). Returns a new job in status "checking"; raises FileRefused (nothing kept)."""
    file_name = Path(file_name or "").name.strip() or "upload.csv"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # also a folder made before uploads were kept private
    path = folder / f"{secrets.token_hex(16)}.csv"
    size = 0
    try:
        with open_private(path) as out:  # patient data: the owner's only (security.md)
            while chunk := stream.read(_COPY_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FileRefused(
                        f"The file is over the limit of {csv_reading.size_text(max_bytes)}"
                    )
                out.write(chunk)
        facts = csv_reading.inspect_file(path, max_bytes)
        with csv_reading.open_text(path, facts.encoding) as text:
            columns = csv_reading.map_header(csv_reading.read_header(text))
    except (FileRefused, OSError):
        path.unlink(missing_ok=True)
        raise
    if not service.active:
        path.unlink(missing_ok=True)
        raise FileRefused(f"Service {service.code} is inactive: its records cannot be changed")
    expire_unapplied(clock.utcnow())
    job = ImportJob(
        service_id=service.id,
        user_id=actor.user_id,
        runner=this_process(),  # start() runs it in this process
        file_name=file_name[:255],
        file_sha256=facts.sha256,
        status="checking",
        total_rows=max(facts.lines - 1, 0),
        processed_rows=0,
        stored_path=str(path),
        report={"unknown_columns": columns.unknown},
    )
    db.session.add(job)
    db.session.flush()
    audit.record(actor, "upload", job, detail=f"{job.file_name} (sha256 {job.file_sha256})")
    return job


def _progress_writer(job_id: int) -> Callable[[int, int], None]:
    """Record progress on its own short transaction, so every worker can read it at once."""
    table = _jobs

    def progress(done: int, total: int) -> None:
        try:
            with db.engine.begin() as connection:
                connection.execute(
                    update(table)
                    .where(table.c.id == job_id)
                    .values(processed_rows=done, total_rows=total)
                )
        except OperationalError:
            # Another import holding SQLite's write lock must not fail this one: the bar
            # simply moves at the next chunk.
            pass

    return progress


def start(
    app: Flask,
    job_id: int,
    *,
    apply: bool,
    actor: Actor,
) -> None:
    """Check (apply=False) or check and write (apply=True) a job in a background thread, as
    `actor` (who uploaded or applies it: the author of the changes in the audit trail)."""
    thread = threading.Thread(
        target=_run,
        args=(app, job_id, apply, actor),
        name=f"import-job-{job_id}",
        daemon=True,
    )
    thread.start()


def _run(app: Flask, job_id: int, apply: bool, actor: Actor) -> None:
    with app.app_context():
        try:
            if apply:
                _apply(app, job_id, actor)
            else:
                _check(app, job_id)
        except Exception as error:  # the job must not stay "running" forever
            # Only the kind of error: its text may quote a row's values (no patient data in logs).
            app.logger.error("import job %s failed: %s", job_id, type(error).__name__)
            db.session.rollback()
            _fail(job_id, "The import failed unexpectedly: nothing was written.")
        finally:
            db.session.remove()


def _fail(job_id: int, message: str) -> None:
    _mark_failed(db.session.get_one(ImportJob, job_id), message)
    db.session.commit()


def _mark_failed(job: ImportJob, message: str) -> None:
    job.status = "failed"
    job.error = message
    job.finished_at = clock.utcnow()
    _forget_file(job)


def _forget_file(job: ImportJob) -> None:
    if job.stored_path:
        Path(job.stored_path).unlink(missing_ok=True)
        job.stored_path = None


def _upload(job: ImportJob) -> Path:
    """The file kept for a job being checked or applied."""
    assert job.stored_path is not None, "a job keeps its upload until it is applied or fails"
    return Path(job.stored_path)


def _check(app: Flask, job_id: int) -> None:
    job = db.session.get_one(ImportJob, job_id)
    service = db.session.get(Service, job.service_id)
    try:
        plan = record_import.check_file(
            _upload(job),
            service=service,
            file_name=job.file_name,
            max_bytes=app.config["IMPORT_MAX_BYTES"],
            progress=_progress_writer(job_id),
        )
    except FileRefused as error:
        db.session.rollback()
        _fail(job_id, str(error))
        return
    plan.close()
    _set_preview(db.session.get_one(ImportJob, job_id), plan.report)
    db.session.commit()


def _set_preview(job: ImportJob, report: record_import.ImportReport) -> None:
    job.status = "previewed"
    job.total_rows = job.processed_rows = report.rows
    job.added, job.updated, job.unchanged, job.refused = (
        report.added,
        report.updated,
        report.unchanged,
        report.refused,
    )
    job.report = report.as_dict()


def _apply(app: Flask, job_id: int, actor: Actor) -> None:
    job = db.session.get_one(ImportJob, job_id)
    service = db.session.get(Service, job.service_id)
    try:
        report = record_import.import_file(
            _upload(job),
            actor,
            service=service,
            file_name=job.file_name,
            keep_valid=job.keep_valid,
            max_bytes=app.config["IMPORT_MAX_BYTES"],
            job=job,
            progress=_progress_writer(job_id),
        )
    except (FileRefused, record_import.StaleRecords) as error:
        db.session.rollback()
        _fail(job_id, str(error))
        return
    if report.written:
        _forget_file(job)
        db.session.commit()
        return
    # All or nothing, and rows were refused: nothing written; the preview shows them again.
    db.session.rollback()
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
    """Move a previewed job to "applying"; False when it is not waiting for that."""
    table = _jobs
    # One conditional UPDATE, so two clicks (or two workers) cannot start it twice.
    result = db.session.execute(
        update(table)
        .where(table.c.id == job.id, table.c.status == "previewed")
        .values(
            status="applying",
            keep_valid=keep_valid,
            processed_rows=0,
            error=None,
            runner=this_process(),  # start() runs it in this process
        )
    )
    db.session.expire(job)
    # The result of an UPDATE is a CursorResult, which counts the rows matched.
    if cast("CursorResult[Any]", result).rowcount != 1:
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
    _forget_file(job)


def recent_jobs(service: Service, limit: int = 10) -> list[ImportJob]:
    """The service's latest imports, newest first; any whose process has ended is settled."""
    jobs = list(
        db.session.scalars(
            select(ImportJob)
            .where(ImportJob.service_id == service.id)
            .order_by(ImportJob.id.desc())
            .limit(limit)
        )
    )
    for job in jobs:
        settle(job)
    return jobs
