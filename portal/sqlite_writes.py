"""One writer at a time on a SQLite file, queued in the kernel instead of in SQLite's busy handler.

SQLite lets one connection write at a time. A connection that finds the write lock taken sleeps in
SQLite's busy handler in growing steps (1, 2, 5, 10 ... 100 ms) and tries again, so under
concurrent saves most of a request's time is spent asleep long after the lock was released. Here
each connection takes an exclusive `flock` on `<database>.write-lock` just before its first
writing statement and lets it go when its transaction ends: waiting writers block in the kernel
and the next one wakes as soon as the lock is free. SQLite's own locking still guards the data;
this only decides who goes next.

A second connection of a thread that already holds the lock does not wait for it (it would wait
for itself): it falls back to SQLite's busy handler, as before. PostgreSQL is left alone.
"""

from __future__ import annotations

import fcntl
import os
import threading

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

_READS = ("SELECT", "PRAGMA")
_KEY = "portal_write_lock"
_held = threading.local()


def _lock_file(database: str | None) -> str | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database + ".write-lock"


def _descriptor(info: dict, path: str) -> int:
    """This connection's own open lock file (flock locks belong to an open file, not a process)."""
    pid, fd = info.get(_KEY, (None, None))
    if pid != os.getpid():  # a forked worker opens its own
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        info[_KEY] = (os.getpid(), fd)
    return fd


@event.listens_for(Engine, "before_cursor_execute")
def _before_write(conn, cursor, statement, parameters, context, executemany) -> None:
    if conn.dialect.name != "sqlite" or statement.lstrip()[:6].upper() in _READS:
        return
    info = conn.connection.info
    if info.get(_KEY + "_held") or getattr(_held, "count", 0):
        return
    path = _lock_file(conn.engine.url.database)
    if path is None:
        return
    fcntl.flock(_descriptor(info, path), fcntl.LOCK_EX)  # releases the GIL while it waits
    info[_KEY + "_held"] = True
    _held.count = 1


def _release(info: dict) -> None:
    if info.pop(_KEY + "_held", False):
        _held.count = 0
        fcntl.flock(info[_KEY][1], fcntl.LOCK_UN)


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_ended(conn) -> None:
    # Fired just before the DBAPI commit/rollback: the next writer wakes while it completes, and
    # SQLite's own lock covers those microseconds.
    if conn.dialect.name == "sqlite":
        _release(conn.connection.info)


@event.listens_for(Pool, "checkin")
def _returned(dbapi_connection, record) -> None:
    if record is not None:
        _release(record.info)
