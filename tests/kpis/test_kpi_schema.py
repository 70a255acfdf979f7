"""kpis/ names the tables it reads with SQLAlchemy Core; hold those names against the schema the
migrations build, so a renamed column fails here rather than in a KPI."""

from __future__ import annotations

from sqlalchemy import inspect

from kpis import schema

# The partial index of live episodes by service and fracture date (migration 0003).
LIVE_INDEX = "ix_episodes_live_service_fracture_date"


def test_every_table_and_column_the_engine_reads_exists(db):
    inspector = inspect(db.engine)
    for name, table in schema.TABLES.items():
        actual = {column["name"] for column in inspector.get_columns(name)}
        wanted = {column.name for column in table.columns}
        assert wanted <= actual, f"{name}: missing {sorted(wanted - actual)}"


def test_the_engine_types_match_the_migrated_types(db):
    inspector = inspect(db.engine)
    for name, table in schema.TABLES.items():
        actual = {column["name"]: column["type"] for column in inspector.get_columns(name)}
        for column in table.columns:
            assert column.type._type_affinity is actual[column.name]._type_affinity, (
                f"{name}.{column.name}: {column.type!r} vs {actual[column.name]!r}"
            )


def test_live_episodes_of_a_service_have_their_own_index_by_fracture_date(db):
    """The partial index the service pages search (migration 0003): live episodes only."""
    from sqlalchemy import text

    indexes = {ix["name"]: ix for ix in inspect(db.engine).get_indexes("episodes")}
    index = indexes[LIVE_INDEX]
    assert index["column_names"] == ["service_id", "fracture_date"]
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            definition = conn.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = :name"),
                {"name": LIVE_INDEX},
            )
        else:
            definition = conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": LIVE_INDEX},
            )
    assert "deleted_at IS NULL" in definition.replace("(", "").replace(")", "")


def _plan(db, statement) -> str:
    """The query plan, as one line: SQLite's EXPLAIN QUERY PLAN (SQLite keeps no statistics here,
    so its choice is the one it makes in production).

    On PostgreSQL the choice follows the statistics, and those of a test table are those of
    whatever the last test left (autovacuum analyses it at any moment): among a few rows it may
    take any index. So the plan is read with every other index of episodes dropped (its keys and
    unique constraints included) and sequential scans priced out, in a transaction that is
    rolled back. The partial index then shows in the plan only if the statement states every
    term its predicate needs, which is what the statement controls. At full size the planner
    chooses it by itself (docs/bench-kpis.md).
    """
    from sqlalchemy import text

    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            return " / ".join(str(row[-1]) for row in rows)
        with conn.begin() as transaction:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            # Dropping needs the table to itself: fail rather than wait on an open session.
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            constraints = conn.scalars(
                text(
                    "SELECT conname FROM pg_constraint WHERE conrelid = 'episodes'::regclass "
                    "AND contype IN ('p', 'u')"
                )
            ).all()
            for name in constraints:
                conn.execute(text(f"ALTER TABLE episodes DROP CONSTRAINT {name} CASCADE"))
            indexes = conn.scalars(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'episodes'")
            ).all()
            for name in indexes:
                if name != LIVE_INDEX:
                    conn.execute(text(f"DROP INDEX {name}"))
            rows = conn.execute(text(f"EXPLAIN {compiled}")).all()
            transaction.rollback()
        return " / ".join(str(row[-1]) for row in rows)


def test_one_service_is_searched_by_its_months_and_every_service_by_date(db, make_service):
    """Query plans (docs/bench-kpis.md): a service's two years are one range of the partial
    index, on both databases; on SQLite a year of every service never walks it (walking an
    index over every service is several times slower than the date index or the table)."""
    from datetime import date

    from kpis import counting
    from kpis.periods import Period

    service = make_service()
    year, as_of = Period.year(2025), date(2026, 11, 27)
    one_service = _plan(db, counting.counts_query([year.previous(), year], as_of, [service.id]))
    assert LIVE_INDEX in one_service
    if db.engine.dialect.name == "sqlite":
        assert "(service_id=? AND fracture_date>? AND fracture_date<?)" in one_service
        every_service = _plan(db, counting.counts_query([year], as_of))
        assert LIVE_INDEX not in every_service
