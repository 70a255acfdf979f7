"""kpis/ names the tables it reads with SQLAlchemy Core; hold those names against the schema the
migrations build, so a renamed column fails here rather than in a KPI."""

from __future__ import annotations

from sqlalchemy import inspect

from kpis import schema


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
