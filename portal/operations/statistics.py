"""PostgreSQL's planner statistics, gathered at once after a bulk write (an import, the demo).

Autovacuum gathers them a minute or so after many rows change. Until then the planner takes a
table, or a service just filled, for the few rows it had, and can plan the worklists' joins for
one row each: a nested loop over thousands (docs/benchmarks.md). SQLite plans without statistics.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from portal.extensions import db

# After a write of this many rows the statistics are gathered at once.
AFTER_ROWS = 1000


def after_bulk_write(rows: int) -> None:
    """Gather the statistics when a committed write (an import) changed `rows` rows, if many."""
    if rows >= AFTER_ROWS:
        gather()


def gather() -> None:
    """ANALYZE the tables the worklists and KPI pages read, outside any transaction. The bulk
    write is committed already: a refusal (a database user that does not own the tables) is
    logged, not raised."""
    if db.engine.dialect.name != "postgresql":
        return
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE episodes, patients")
    except (OperationalError, InterfaceError, ProgrammingError) as error:
        current_app.logger.warning("statistics not gathered: %s", type(error).__name__)
