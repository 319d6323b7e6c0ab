"""Folds of the event log into DuckDB read models, and read-only SQL over them. No Ray here.

May import ``events``. The public surface::

    from projections import Projector, query_file, export_parquet

    with Projector(store, ".council/projection.duckdb") as projector:
        projector.catch_up()                      # fold the log from the checkpoint to its head
        projector.query("SELECT status, count(*) FROM tasks GROUP BY ALL")
    query_file(".council/projection.duckdb", "SELECT * FROM queue")   # read-only, no projector
    export_parquet(".council/projection.duckdb", "exports/")          # one <name>.parquet each

The tables and views, column by column, are in :mod:`projections.schema` (``schema.markdown()``).
"""

from projections.errors import (
    ExportError,
    NotAProjection,
    ProjectionBusy,
    ProjectionError,
    ProjectionLogMismatch,
    ProjectionSchemaMismatch,
    ProjectorClosed,
    QueryFailed,
    ReadOnlyQueryError,
)
from projections.export import export_parquet
from projections.fold import Changed, Fold
from projections.projector import Projector
from projections.query import QueryResult, check_read_only, query_file
from projections.schema import READ_MODELS, SCHEMA_VERSION, TABLES, VIEWS, markdown

__all__ = [
    "READ_MODELS",
    "SCHEMA_VERSION",
    "TABLES",
    "VIEWS",
    "Changed",
    "ExportError",
    "Fold",
    "NotAProjection",
    "ProjectionBusy",
    "ProjectionError",
    "ProjectionLogMismatch",
    "ProjectionSchemaMismatch",
    "Projector",
    "ProjectorClosed",
    "QueryFailed",
    "QueryResult",
    "ReadOnlyQueryError",
    "check_read_only",
    "export_parquet",
    "markdown",
    "query_file",
]
