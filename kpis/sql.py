"""Two portable date expressions, compiled for SQLite and PostgreSQL alike.

SQLite keeps dates as ISO text (`YYYY-MM-DD`), PostgreSQL as `date`; both compare correctly,
but adding days and naming the month need each dialect's own function.
"""

from __future__ import annotations

from sqlalchemy import Date, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, literal_column


class plus_days(FunctionElement):
    """`day + n days` for a date column and a whole number of days known in Python."""

    type = Date()
    inherit_cache = True
    name = "plus_days"

    def __init__(self, day: ColumnElement, days: int) -> None:
        # The day count is written into the SQL text (SQLite needs it inside a modifier string),
        # so it is a literal column: part of the statement and of its cache key.
        super().__init__(day, literal_column(str(int(days))))


@compiles(plus_days)
def _plus_days_default(element, compiler, **kw):
    day, days = list(element.clauses)
    return f"({compiler.process(day, **kw)} + {compiler.process(days, **kw)})"


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element, compiler, **kw):
    day, days = list(element.clauses)
    return f"date({compiler.process(day, **kw)}, '+{compiler.process(days, **kw)} days')"


class month_key(FunctionElement):
    """The `YYYY-MM` of a date column: the run chart's month."""

    type = String()
    inherit_cache = True
    name = "month_key"


@compiles(month_key)
def _month_key_default(element, compiler, **kw):
    (day,) = list(element.clauses)
    return f"to_char({compiler.process(day, **kw)}, 'YYYY-MM')"


@compiles(month_key, "sqlite")
def _month_key_sqlite(element, compiler, **kw):
    (day,) = list(element.clauses)
    return f"substr({compiler.process(day, **kw)}, 1, 7)"
