"""SQLite writers queue on the write-lock file (portal/sqlite_writes.py) instead of sleeping in
SQLite's busy handler; a thread never waits for a lock it holds itself."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import portal.sqlite_writes  # noqa: F401  (the engine events)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY, who TEXT)"))
    yield engine
    engine.dispose()


def test_a_second_writer_waits_for_the_first_to_commit(engine, tmp_path):
    order: list[str] = []
    first_wrote = threading.Event()

    def first():
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO rows (who) VALUES ('first')"))
            first_wrote.set()
            time.sleep(0.5)
            order.append("first commits")

    def second():
        first_wrote.wait()
        with engine.begin() as conn:
            # Far shorter than the first writer holds the lock: SQLite's busy handler alone would
            # give up ("database is locked"); the queue makes it wait its turn.
            conn.execute(text("PRAGMA busy_timeout=100"))
            conn.execute(text("INSERT INTO rows (who) VALUES ('second')"))
            order.append("second wrote")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["first commits", "second wrote"]
    assert (tmp_path / "w.db.write-lock").exists()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rows")).scalar() == 2


def test_a_thread_holding_the_lock_does_not_wait_for_itself(engine):
    with engine.connect() as holder:
        holder.execute(text("INSERT INTO rows (who) VALUES ('holder')"))
        # Another connection of the same thread meets SQLite's own lock and its busy timeout,
        # as it would without the queue, instead of waiting forever.
        with engine.connect() as other:
            other.execute(text("PRAGMA busy_timeout=200"))  # the portal's 15 s, shortened
            with pytest.raises(OperationalError, match="locked"):
                other.execute(text("INSERT INTO rows (who) VALUES ('other')"))
        holder.commit()
    with engine.begin() as conn:  # the lock was released at commit
        conn.execute(text("INSERT INTO rows (who) VALUES ('after')"))
        assert conn.execute(text("SELECT count(*) FROM rows")).scalar() == 2


def test_reads_do_not_take_the_lock(engine):
    with engine.connect() as holder:
        holder.execute(text("INSERT INTO rows (who) VALUES ('holder')"))
        done = []

        def reader():
            with engine.connect() as conn:
                done.append(conn.execute(text("SELECT count(*) FROM rows")).scalar())

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=5)
        assert done == [0]  # a read never queues behind a writer (WAL, portal pragmas)
        holder.rollback()
