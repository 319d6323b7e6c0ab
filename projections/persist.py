"""Moving fold rows in and out of DuckDB in bulk: Arrow batches in, whole tables out.

Rows go in as one Arrow table per read model and batch, replacing the stored rows with the same
keys in two set-based statements; nothing is written a row at a time. These functions run inside
the caller's transaction and never commit: the projector decides what is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TypeVar

import duckdb
import msgspec
import pyarrow as pa

from projections.schema import Table, arrow_schema

R = TypeVar("R", bound=msgspec.Struct)

_BATCH = "_projection_batch"
"""The name an Arrow batch is registered under while it is written; private to the writer."""


def to_arrow(table: Table, rows: Sequence[msgspec.Struct]) -> pa.Table:
    """``rows`` (structs whose fields are ``table``'s columns, in order) as an Arrow table of its schema."""
    schema = arrow_schema(table)
    # Column by column: no tuple per row, so a large batch does not set off the garbage collector.
    return pa.Table.from_arrays([pa.array(list(map(attrgetter(f.name), rows)), type=f.type) for f in schema],
                                schema=schema)


def upsert(con: duckdb.DuckDBPyConnection, table: Table, rows: pa.Table) -> None:
    """Store ``rows`` (from :func:`to_arrow`) in ``table``, replacing stored rows with the same keys. Does not commit.

    Requires an open transaction on ``con`` if the delete and insert are to be seen together;
    each key appears at most once in ``rows`` (the fold reports a changed row once).
    """
    if not rows.num_rows:
        return
    con.register(_BATCH, rows)
    try:
        con.execute(f"DELETE FROM {table.name} WHERE {table.key} IN (SELECT {table.key} FROM {_BATCH})")
        con.execute(f"INSERT INTO {table.name} SELECT * FROM {_BATCH}")
    finally:
        con.unregister(_BATCH)


def load(con: duckdb.DuckDBPyConnection, table: Table, cls: type[R]) -> list[R]:
    """Every stored row of ``table`` as a ``cls`` (times back to integer UTC microseconds)."""
    select = ", ".join(f"epoch_us({c.name})" if c.sql == "TIMESTAMPTZ" else c.name for c in table.columns)
    return [cls(*row) for row in con.execute(f"SELECT {select} FROM {table.name}").fetchall()]
