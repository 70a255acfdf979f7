"""Real job-queue workers for tests: `scripts/worker` (Huey's consumer) as a process of its own on
the test's database, and this process's queue pointed at the same storage, so that a task queued
here is taken there (the suite's default is Huey's immediate mode: tests/conftest.py).

- `real_queue(storage_class, name, **settings)`: this process queues into that storage.
- `start_worker(database_url, instance, ...)`: a worker process with the environment it needs.
- `redis_url()`: a reachable Redis, or the test skips loudly (fails with CI=true).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


@contextmanager
def real_queue(storage_class: type, name: str, **settings: Any) -> Iterator[Any]:
    """Queue this process's tasks into a real storage (not run at once) while inside."""
    from portal import background

    huey = background.huey
    saved = (huey.name, huey.storage_class, huey.storage_kwargs, huey.immediate)
    huey.immediate = True  # so that leaving immediate mode below makes the new storage
    huey.name, huey.storage_class, huey.storage_kwargs = name, storage_class, settings
    huey.immediate = False
    try:
        yield huey
    finally:
        huey.flush()
        huey.name, huey.storage_class, huey.storage_kwargs = saved[:3]
        huey.immediate = True
        huey.immediate = saved[3]


def worker_environment(
    database_url: str, instance: Path, *, name: str, redis: str | None = None
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PORTAL_QUEUE_IMMEDIATE", "REDIS_URL", "DATABASE_URL")
    }
    env.update(
        DATABASE_URL=database_url,
        PORTAL_INSTANCE_PATH=str(instance),
        PORTAL_QUEUE_NAME=name,
        SECRET_KEY="test-secret-key",
        PYTHONPATH=str(ROOT),
    )
    if redis:
        env["REDIS_URL"] = redis
    return env


def start_worker(
    database_url: str,
    instance: Path,
    *,
    name: str,
    redis: str | None = None,
    command: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process (scripts/worker unless `command` is given); stop it with stop()."""
    env = worker_environment(database_url, instance, name=name, redis=redis)
    env.update(extra_env or {})
    with (instance / f"worker-{name}.log").open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            command or [str(ROOT / "scripts" / "worker"), "--workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Stop a worker (gracefully by default), killing it if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def redis_url() -> str:
    """TEST_REDIS_URL (default redis://127.0.0.1:6379/0) if it answers; else skip loudly."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as error:  # any failure to reach it
        message = f"REDIS NOT AVAILABLE at {url} ({type(error).__name__}): queue-on-Redis test"
        if IN_CI:
            pytest.fail(message + " cannot be skipped in CI")
        print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
        pytest.skip(message)
    return url
