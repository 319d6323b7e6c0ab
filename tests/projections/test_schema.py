"""The layout is written down once: rows, tables, views and their documentation agree."""

from __future__ import annotations

import duckdb
import msgspec
import pytest

from projections import READ_MODELS, TABLES, VIEWS, markdown
from projections.query import configure
from projections.rows import AgentRow, RequestRow, TaskRow
from projections.schema import STATE_TABLE, create_statements, drop_statements


@pytest.mark.parametrize(("name", "row"), [("tasks", TaskRow), ("requests", RequestRow), ("agents", AgentRow)])
def test_each_row_has_its_tables_columns_in_order(name: str, row: type[msgspec.Struct]) -> None:
    assert row.__struct_fields__ == TABLES[name].names


def test_the_database_has_exactly_the_documented_columns_and_types() -> None:
    con = configure(duckdb.connect())
    for statement in create_statements():
        con.execute(statement)
    for name in READ_MODELS:
        model = TABLES.get(name) or VIEWS[name]
        described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {name}").fetchall()]
        documented = [(c.name, c.sql.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for c in model.columns]
        assert described == documented, name
    for statement in drop_statements():
        con.execute(statement)
    assert con.execute("SHOW TABLES").fetchall() == []


def test_the_markdown_documents_every_column() -> None:
    text = markdown()
    for name in READ_MODELS:
        model = TABLES.get(name) or VIEWS[name]
        assert f"### `{name}`" in text
        for column in model.columns:
            assert f"| `{column.name}` | {column.sql} | {column.meaning} |" in text
    assert STATE_TABLE not in text
