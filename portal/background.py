"""The job queue: long work (checking and applying imports) runs on worker processes through
Huey, never in a web worker's thread, so any instance can take an upload and any worker can run
it, and a web restart stops no import.

Where the queue is kept comes from the environment, as the rest of the configuration does:
- REDIS_URL set (production, several instances): Redis, which every host reaches.
- otherwise (scripts/dev, one machine): a SQLite file in the instance folder, `queue.db`, so
  development needs no other service.
- PORTAL_QUEUE_IMMEDIATE=1: tasks run at once in the process that queues them (Huey's immediate
  mode, in memory), with no worker; the test suite's default.

`scripts/worker` starts the consumer (`huey_consumer portal.background.huey`). A task makes the
application itself from the same environment (or, run at once, uses the one it is called from)
and works in an application context of its own.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from flask import Flask, current_app, has_app_context
from huey import Huey, crontab
from huey.api import Task
from huey.storage import RedisStorage, SqliteStorage
from werkzeug.local import LocalProxy

from portal.audit.actor import Actor

# A task that meets a passing database error (a lost connection, SQLite busy) is run again this
# many times, this many seconds apart, before its job is marked failed.
RETRIES = 2
RETRY_SECONDS = 20


class TryAgain(RuntimeError):
    """A task met a passing database error: the queue runs it again. Carries no text of the
    original error, which may quote a row's values (no patient data in logs)."""


def _instance_path() -> str:
    """The instance folder create_app uses (PORTAL_INSTANCE_PATH, else Flask's default)."""
    return Flask("portal", instance_path=os.environ.get("PORTAL_INSTANCE_PATH")).instance_path


def storage_settings(environ: Any = os.environ) -> tuple[type, dict[str, Any]]:
    """The queue's storage and its settings, from the environment."""
    if environ.get("REDIS_URL"):
        return RedisStorage, {"url": environ["REDIS_URL"]}
    folder = Path(_instance_path())
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteStorage, {"filename": str(folder / "queue.db")}


def _make_queue() -> Huey:
    immediate = os.environ.get("PORTAL_QUEUE_IMMEDIATE", "").lower() in ("1", "true", "yes")
    storage_class, settings = (None, {}) if immediate else storage_settings()
    return Huey(
        os.environ.get("PORTAL_QUEUE_NAME", "fls-portal"),
        # No result store: tasks report through the database (import_jobs), and an error's
        # traceback kept in the queue could quote patient data.
        results=False,
        utc=True,
        immediate=immediate,
        storage_class=storage_class,
        **settings,
    )


huey = _make_queue()

_app: Flask | None = None
_app_lock = threading.Lock()


def application() -> Flask:
    """The application a task works in: the one it was queued from when run at once, else one
    made once per worker process from the environment."""
    global _app
    if has_app_context():
        app: Flask = cast("LocalProxy[Flask]", current_app)._get_current_object()
        return app
    with _app_lock:
        if _app is None:
            from portal import create_app

            _app = create_app()
        return _app


@huey.task(retries=RETRIES, retry_delay=RETRY_SECONDS, context=True)
def run_import(job_id: int, apply: bool, actor: Actor, task: Task | None = None) -> None:
    """Check (apply=False) or check and write (apply=True) an uploaded file, as `actor`."""
    from portal.records import jobs

    app = application()
    with app.app_context():
        jobs.run(
            app,
            job_id,
            apply=apply,
            actor=actor,
            last_try=task is None or not task.retries,
        )


@huey.periodic_task(crontab(minute="*"))
def settle_stalled_imports() -> None:
    """Every minute: a running import whose worker has shown no sign of life for a while (it
    died, or its host did) is marked failed. An apply is one transaction: nothing was written."""
    from portal.extensions import db
    from portal.records import jobs

    with application().app_context():
        jobs.settle_stalled(_now())
        db.session.commit()


@huey.periodic_task(crontab(minute="13"))
def delete_old_uploads() -> None:
    """Every hour: uploads kept for more than 7 days are deleted (jobs.expire_uploads)."""
    from portal.extensions import db
    from portal.records import jobs

    with application().app_context():
        jobs.expire_uploads(_now())
        db.session.commit()


def _now() -> datetime:
    from portal import clock

    return clock.utcnow()
