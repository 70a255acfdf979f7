"""Uploaded files, kept in the database a megabyte a row (`import_upload_chunks`), so that every
web instance and every queue worker can read them, whichever host took the upload.

A file is read and written a chunk at a time, never whole in memory. A worker copies it to a
private temporary file of its own for checking (the check reads it more than once); that copy
goes when the check or apply ends. The rows go after use (applied, failed, discarded) or after
7 days (jobs.expire_uploads).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Table, delete, insert, select

from portal.extensions import db
from portal.models.base import Base

# Bytes a row: big enough for few rows, small enough for any database's row and memory.
CHUNK_BYTES = 1 << 20

_chunks: Table = Base.metadata.tables["import_upload_chunks"]


def keep(job_id: int, source: IO[bytes]) -> int:
    """Store a file, read a chunk at a time, as the job's upload (in the current transaction);
    its size in bytes."""
    number = size = 0
    while chunk := source.read(CHUNK_BYTES):
        db.session.execute(insert(_chunks).values(job_id=job_id, number=number, data=chunk))
        number += 1
        size += len(chunk)
    return size


def chunks(job_id: int) -> Iterator[bytes]:
    """The job's upload, a chunk at a time (one row read per query, so one chunk in memory)."""
    number = 0
    while True:
        data = db.session.execute(
            select(_chunks.c.data).where(_chunks.c.job_id == job_id, _chunks.c.number == number)
        ).scalar_one_or_none()
        if data is None:
            return
        yield bytes(data)
        number += 1


def is_kept(job_id: int) -> bool:
    return (
        db.session.execute(select(_chunks.c.number).where(_chunks.c.job_id == job_id).limit(1))
        .scalars()
        .first()
        is not None
    )


@contextmanager
def local_copy(job_id: int) -> Iterator[Path]:
    """The job's upload as a private temporary file (0600) of this process, removed after."""
    handle, name = tempfile.mkstemp(prefix="fls-import-", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks(job_id):
                out.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


def forget(job_id: int) -> None:
    """Delete the job's upload (in the current transaction)."""
    db.session.execute(delete(_chunks).where(_chunks.c.job_id == job_id))
