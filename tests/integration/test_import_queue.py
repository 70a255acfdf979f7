"""Imports on the job queue (issue 21): real worker processes (Huey's consumer) on SQLite and on
Redis take uploads queued by the web; a worker killed in the middle of an apply leaves nothing
half-written and its job is marked failed by the queue's periodic check; a run overtaken by
another writes nothing; uploads go after 7 days; an upload is never read whole into memory."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from huey.storage import SqliteStorage
from sqlalchemy import func, select

from portal import clock as portal_clock
from tests.conftest import sign_in
from tests.integration.test_records_web import (
    count_episodes,
    job_id_of,
    upload,
    wait_for,
)
from tests.queue_workers import ROOT, real_queue, redis_url, start_worker, stop
from tests.records_csv import csv_text, nhs_number, row


def _count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _upload_and_apply(client, db, rows: int = 40) -> int:
    text = csv_text([row(nhs_number=nhs_number(n)) for n in range(rows)])
    job_id = job_id_of(upload(client, text.encode()))
    job = wait_for(db, job_id, ("previewed", "failed"), timeout=120)
    assert job.status == "previewed", job.error
    assert client.post(f"/records/import/{job_id}/apply", data={"mode": "all"}).status_code == 303
    return job_id


@pytest.mark.parametrize("queue_in", ["sqlite", "redis"])
def test_a_real_worker_checks_and_applies_an_upload(
    queue_in, app, signed_in, db, database_url, tmp_path
):
    """The web queues, a worker process on another "host" (its own process and instance folder)
    takes the job, and the page's progress comes from the database."""
    name = f"fls-test-{uuid.uuid4().hex[:8]}"
    if queue_in == "redis":
        from huey.storage import RedisStorage

        url = redis_url()
        storage, settings, worker_redis = RedisStorage, {"url": url}, url
    else:
        storage, settings, worker_redis = (
            SqliteStorage,
            {"filename": str(tmp_path / "queue.db")},
            None,
        )
    client, user, _service = signed_in()
    with real_queue(storage, name, **settings):
        worker = start_worker(
            app.config["SQLALCHEMY_DATABASE_URI"], tmp_path, name=name, redis=worker_redis
        )
        try:
            job_id = _upload_and_apply(client, db)
            job = wait_for(db, job_id, ("applied", "failed"), timeout=120)
        finally:
            stop(worker)
    assert job.status == "applied", job.error
    assert job.attempts == 2  # the check, then the apply: each run claimed once
    assert count_episodes(db) == 40
    from portal.models import Episode
    from portal.records import uploads

    assert set(db.session.scalars(select(Episode.created_by_id))) == {user.id}
    assert not uploads.is_kept(job_id)  # deleted after use
    page = client.get(f"/records/import/{job_id}").get_data(as_text=True)
    assert "Added 40, updated 0, unchanged 0, refused 0." in page


def test_a_worker_killed_mid_apply_leaves_nothing_half_written(app, signed_in, db, tmp_path, clock):
    """SIGKILL while the apply's transaction has written the patients and not the episodes: the
    database rolls it back; the queue's periodic check marks the job failed."""
    from portal import background
    from portal.models import AuditEvent, ImportJob, Patient
    from portal.records import jobs as import_jobs
    from portal.records import uploads

    name = f"fls-test-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "stuck"
    client, user, _service = signed_in()
    audit_before = _count(db, AuditEvent)
    with real_queue(SqliteStorage, name, filename=str(tmp_path / "queue.db")):
        worker = start_worker(
            app.config["SQLALCHEMY_DATABASE_URI"],
            tmp_path,
            name=name,
            command=[sys.executable, str(ROOT / "tests" / "stuck_apply_worker.py")],
            extra_env={"STUCK_MARKER": str(marker)},
        )
        try:
            job_id = _upload_and_apply(client, db)
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert worker.poll() is None, "the worker ended before the apply"
                assert time.monotonic() < deadline, "the apply never started"
                time.sleep(0.05)
            db.session.expire_all()
            running = db.session.get(ImportJob, job_id)
            assert running.status == "applying" and running.heartbeat_at is not None
            if db.engine.dialect.name == "postgresql":
                # Alive in its transaction, however long since its last sign of life: the
                # periodic check skips the job whose row the apply holds.
                clock.move_to(running.heartbeat_at.replace(tzinfo=UTC) + import_jobs.STALL * 2)
                background.settle_stalled_imports.call_local()
                db.session.expire_all()
                assert db.session.get(ImportJob, job_id).status == "applying"
        finally:
            stop(worker, signal.SIGKILL)
    assert worker.returncode == -signal.SIGKILL

    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "applying"
    assert _count(db, Patient) == 0 and count_episodes(db) == 0  # rolled back
    stalled_at = job.heartbeat_at.replace(tzinfo=UTC)

    # Not yet stalled: left alone (a worker may be between two chunks).
    clock.move_to(stalled_at + import_jobs.STALL - timedelta(seconds=30))
    background.settle_stalled_imports.call_local()
    db.session.expire_all()
    assert db.session.get(ImportJob, job_id).status == "applying"

    clock.move_to(stalled_at + import_jobs.STALL + timedelta(seconds=30))
    background.settle_stalled_imports.call_local()
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "failed" and job.error == import_jobs.ABANDONED
    assert not uploads.is_kept(job_id)
    assert _count(db, Patient) == 0 and count_episodes(db) == 0
    # Only the upload and the request to apply were audited: no import, no patient, no episode.
    assert _count(db, AuditEvent) - audit_before == 2
    sign_in(client, user)  # the clock moved on past the session's idle limit
    html = client.get(f"/records/import/{job_id}").get_data(as_text=True)
    assert "The import stopped" in html and "hx-get" not in html


def test_a_run_overtaken_by_the_periodic_check_writes_nothing(signed_in, db, monkeypatch, clock):
    """A worker that only seemed dead (no sign of life for STALL) finds its job settled when it
    comes to write: it writes nothing, and the job stays failed."""
    from portal import background
    from portal.models import ImportJob, Patient
    from portal.records import importing as record_import
    from portal.records import jobs as import_jobs

    client, _user, _service = signed_in()
    job_id = job_id_of(upload(client, csv_text([row()]).encode()))
    assert wait_for(db, job_id).status == "previewed"
    check_file = record_import.check_file

    def slow_check(*args, **kwargs):
        plan = check_file(*args, **kwargs)
        clock.shift(import_jobs.STALL + timedelta(minutes=1))
        background.settle_stalled_imports.call_local()
        return plan

    monkeypatch.setattr(record_import, "check_file", slow_check)
    client.post(f"/records/import/{job_id}/apply", data={"mode": "all"})
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "failed" and job.error == import_jobs.ABANDONED
    assert _count(db, Patient) == 0 and count_episodes(db) == 0


def test_a_job_is_run_once_however_often_it_is_queued(signed_in, db):
    from portal import background
    from portal.models import ImportJob
    from portal.records import jobs as import_jobs

    client, user, _service = signed_in()
    job_id = job_id_of(upload(client, csv_text([row()]).encode()))
    assert wait_for(db, job_id).status == "previewed"
    client.post(f"/records/import/{job_id}/apply", data={"mode": "all"})
    db.session.expire_all()
    assert db.session.get(ImportJob, job_id).status == "applied"
    from portal.audit.actor import Actor

    background.run_import.call_local(job_id, True, Actor(user_id=user.id))
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert (job.status, job.attempts, count_episodes(db)) == ("applied", 2, 1)
    assert import_jobs.UPLOAD_DAYS == 7


def test_uploads_are_deleted_after_seven_days_by_the_periodic_task(signed_in, db, clock):
    from portal import background
    from portal.models import ImportJob
    from portal.records import jobs as import_jobs
    from portal.records import uploads

    client, user, service = signed_in()
    week = timedelta(days=import_jobs.UPLOAD_DAYS)

    def job(status, age, heartbeat=False):
        made = ImportJob(
            service_id=service.id,
            user_id=user.id,
            file_name="clinic.csv",
            file_sha256="0" * 64,
            status=status,
            created_at=portal_clock.utcnow() - age,
            heartbeat_at=portal_clock.utcnow() if heartbeat else None,
        )
        db.session.add(made)
        db.session.flush()
        uploads.keep(made.id, io.BytesIO(b"nhs_number\n" * 10))
        db.session.commit()
        return made.id

    minute = timedelta(minutes=1)
    old_preview = job("previewed", week + minute)
    old_waiting = job("checking", week + minute)
    old_failed = job("failed", week + minute)
    running = job("applying", week + minute, heartbeat=True)  # a worker has it: not expired
    new_preview = job("previewed", week - minute)

    background.delete_old_uploads.call_local()
    db.session.expire_all()

    def state(job_id):
        found = db.session.get(ImportJob, job_id)
        return found.status, found.error, uploads.is_kept(job_id)

    assert state(old_preview) == ("discarded", import_jobs.EXPIRED, False)
    assert state(old_waiting) == ("failed", import_jobs.EXPIRED, False)
    assert state(old_failed)[2] is False
    assert state(running) == ("applying", None, True)
    assert state(new_preview) == ("previewed", None, True)
    assert import_jobs.EXPIRED in client.get(f"/records/import/{old_preview}").get_data(
        as_text=True
    )
    # Any upload also tidies up, whether or not a worker runs the periodic task.
    clock.shift(2 * minute)
    job_id_of(upload(client, csv_text([row()]).encode()))
    db.session.expire_all()
    assert state(new_preview) == ("discarded", import_jobs.EXPIRED, False)


class _Upload(io.RawIOBase):
    """An upload stream made on the fly (never whole anywhere), recording the reads asked for."""

    def __init__(self, rows: int) -> None:
        self.header, self.line = (
            text.encode() for text in csv_text([row()]).splitlines(keepends=True)
        )
        self.left = rows
        self.pending = self.header
        self.asked: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        assert size > 0, "the upload was read whole"
        while len(self.pending) < size and self.left:
            count = min(self.left, 4096)
            self.pending += self.line * count
            self.left -= count
        chunk, self.pending = self.pending[:size], self.pending[size:]
        return chunk


def test_an_upload_is_never_read_whole_into_memory(app, signed_in, db):
    """A 30 MB upload is stored a megabyte at a time; a worker's copy is made likewise."""
    from portal.audit.actor import Actor
    from portal.models import ImportUploadChunk
    from portal.records import jobs as import_jobs
    from portal.records import uploads

    _client, user, service = signed_in()
    stream = _Upload(rows=180_000)
    expected = len(stream.header) + 180_000 * len(stream.line)
    assert expected > 25 * 1024 * 1024
    tracemalloc.start()
    try:
        job = import_jobs.receive_upload(
            Actor(user_id=user.id),
            stream,
            "big.csv",
            service=service,
            max_bytes=app.config["IMPORT_MAX_BYTES"],
        )
        db.session.commit()
        _size, stored_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with uploads.local_copy(job.id) as path:
            assert path.stat().st_size == expected
            assert path.stat().st_mode & 0o077 == 0
        _size, copy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert max(stream.asked) <= uploads.CHUNK_BYTES
    chunks = db.session.scalar(select(func.count()).select_from(ImportUploadChunk))
    assert chunks == -(-expected // uploads.CHUNK_BYTES)
    # A few chunks' worth at most, never the file's 30 MB.
    assert stored_peak < 8 * uploads.CHUNK_BYTES, stored_peak
    assert copy_peak < 8 * uploads.CHUNK_BYTES, copy_peak
    assert os.path.exists(path) is False
    assert not Path(app.instance_path, "imports").exists()


def test_a_passing_database_error_is_retried_by_the_queue_then_fails(signed_in, db, monkeypatch):
    """Huey's retries: the job goes back to waiting and the queue runs it again later; after the
    last retry it fails, with nothing written."""
    from sqlalchemy.exc import OperationalError

    from portal import background
    from portal.models import ImportJob
    from portal.records import importing as record_import
    from portal.records import jobs as import_jobs

    check_file = record_import.check_file
    failures = {"left": 1}

    def flaky(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        return check_file(*args, **kwargs)

    monkeypatch.setattr(record_import, "check_file", flaky)
    client, _user, _service = signed_in()
    huey = background.huey

    def run_retries() -> int:
        """Run the retries the queue has scheduled, as a worker would when they fall due."""
        retries = huey.scheduled()
        huey.storage.flush_schedule()  # taken off the schedule, as a worker takes them
        for task in retries:
            assert task.retries < background.RETRIES
            huey.execute(task, timestamp=task.eta)
        return len(retries)

    job_id = job_id_of(upload(client, csv_text([row()]).encode()))
    db.session.expire_all()
    waiting = db.session.get(ImportJob, job_id)
    assert (waiting.status, waiting.heartbeat_at, waiting.attempts) == ("checking", None, 1)
    assert run_retries() == 1
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert (job.status, job.attempts) == ("previewed", 2)

    failures["left"] = 10  # every run fails: the last retry marks the job failed
    assert client.post(f"/records/import/{job_id}/apply", data={"mode": "all"}).status_code == 303
    assert run_retries() == 1
    assert run_retries() == 1
    assert huey.scheduled() == []
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "failed" and job.error == import_jobs.UNEXPECTED
    assert job.attempts == 2 + 1 + background.RETRIES
    assert count_episodes(db) == 0


def test_postgresql_statistics_are_gathered_after_a_bulk_import(signed_in, db, monkeypatch):
    """After an import that wrote many rows the worker gathers PostgreSQL's statistics at once
    (the planner would otherwise take the service for the few rows it had until autovacuum came
    by): the planner's row count of episodes is then the true one."""
    from sqlalchemy import text

    from portal.operations import statistics

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics: this database is SQLite")
    monkeypatch.setattr(statistics, "AFTER_ROWS", 30)
    client, _, _ = signed_in()
    _upload_and_apply(client, db, rows=30)
    db.session.commit()
    stored = db.session.scalar(text("SELECT count(*) FROM episodes"))
    estimated = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'episodes'"))
    assert stored >= 30
    assert estimated == stored
