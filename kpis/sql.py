"""Portable expressions, compiled for SQLite and PostgreSQL alike.

SQLite keeps dates as ISO text (`YYYY-MM-DD`), PostgreSQL as `date`; both compare correctly,
but adding days and naming the month need each dialect's own function. `unindexed` steers
SQLite's choice of index where its planner, which has no statistics, would choose badly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, literal_column


class plus_days(FunctionElement[Any]):
    """`day + n days` for a date column and a whole number of days known in Python."""

    type = Date()
    inherit_cache = True
    name = "plus_days"

    def __init__(self, day: ColumnElement[Any], days: int) -> None:
        # The day count is written into the SQL text (SQLite needs it inside a modifier string),
        # so it is a literal column: part of the statement and of its cache key.
        super().__init__(day, literal_column(str(int(days))))


@compiles(plus_days)
def _plus_days_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    day, days = list(element.clauses)
    return f"({compiler.process(day, **kw)} + {compiler.process(days, **kw)})"


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    day, days = list(element.clauses)
    return f"date({compiler.process(day, **kw)}, '+{compiler.process(days, **kw)} days')"


class month_key(FunctionElement[Any]):
    """The `YYYY-MM` of a date column: the run chart's month."""

    type = String()
    inherit_cache = True
    name = "month_key"


@compiles(month_key)
def _month_key_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    (day,) = list(element.clauses)
    return f"to_char({compiler.process(day, **kw)}, 'YYYY-MM')"


@compiles(month_key, "sqlite")
def _month_key_sqlite(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    (day,) = list(element.clauses)
    return f"substr({compiler.process(day, **kw)}, 1, 7)"


class unindexed(FunctionElement[Any]):
    """A column written so that SQLite uses no index for the term comparing it: SQLite's own
    unary `+` (https://sqlite.org/optoverview.html, "Disqualifying WHERE clause terms using
    unary-'+'"). PostgreSQL plans by statistics and gets the column as it is.

    Used on `deleted_at IS NULL` where a query reads every live episode of a service: that term
    would otherwise let SQLite walk the partial index `ix_episodes_live_service_fracture_date` in
    date order, fetching rows out of order, several times slower than `ix_episodes_service_id`.
    """

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return compiler.process(column, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return f"+{compiler.process(column, **kw)}"


class age_at(FunctionElement[Any]):
    """Whole years from a date of birth to a day, comparing month and day (dataset.md: someone
    born on 29 February turns a year older on 1 March in a year without one)."""

    type = Integer()
    inherit_cache = True
    name = "age_at"

    def __init__(self, born: ColumnElement[Any], day: ColumnElement[Any]) -> None:
        super().__init__(born, day)


@compiles(age_at)
def _age_at_default(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    born, day = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"(CAST(EXTRACT(YEAR FROM {day}) AS INTEGER) - CAST(EXTRACT(YEAR FROM {born}) AS INTEGER)"
        f" - CASE WHEN to_char({day}, 'MM-DD') < to_char({born}, 'MM-DD') THEN 1 ELSE 0 END)"
    )


@compiles(age_at, "sqlite")
def _age_at_sqlite(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    born, day = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"(CAST(substr({day}, 1, 4) AS INTEGER) - CAST(substr({born}, 1, 4) AS INTEGER)"
        f" - (substr({day}, 6, 5) < substr({born}, 6, 5)))"
    )
