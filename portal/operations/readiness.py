"""Whether this process may take requests, for a load balancer's health checks (README,
"Production"): the database answers, Redis answers when one is configured, and the database holds
every migration this code needs.

A rolling deploy migrates the database before the new code starts (expand, then contract: README),
so an instance still running the old code meets a revision it does not know. That revision was
written for a later release and keeps the old code working by the expand/contract rule: the
instance stays ready. A database behind this code's head (a migration not run yet) is not ready.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# A health check must answer quickly: a Redis that does not answer within this is not reachable.
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Readiness:
    """Each check's name and what it found ("ok", or why not)."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(found == "ok" for found in self.checks.values())


@functools.cache
def _scripts(folder: Path) -> ScriptDirectory:
    """The code's migrations, read once per process (the files do not change while it runs)."""
    return ScriptDirectory(str(folder))


def migrations_state(engine: Engine, folder: Path = MIGRATIONS) -> str:
    """ "ok" when the database is at this code's head or at a later revision unknown to this code,
    else what is missing."""
    scripts = _scripts(folder)
    heads = set(scripts.get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return "ok"
    if not current:
        return "the database has no migrations applied"
    known = {revision.revision for revision in scripts.walk_revisions()}
    if current - known:
        return "ok"  # written by a later release (expand/contract: compatible with this one)
    return f"the database is at {', '.join(sorted(current))}, not at {', '.join(sorted(heads))}"


def database_state(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any driver's failure: the balancer only needs "not ready"
        return f"the database does not answer ({type(error).__name__})"
    return "ok"


def redis_state(url: str) -> str:
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except redis.RedisError as error:
        return f"Redis does not answer ({type(error).__name__})"
    finally:
        client.close()
    return "ok"


def readiness(engine: Engine, redis_url: str | None) -> Readiness:
    """Every check; the migrations are checked only once the database answers."""
    checks = {"database": database_state(engine)}
    if checks["database"] == "ok":
        checks["migrations"] = migrations_state(engine)
    if redis_url:
        checks["redis"] = redis_state(redis_url)
    return Readiness(checks)
