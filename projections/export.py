"""Export every read model to Parquet, one ``<name>.parquet`` per table and view.

The files are written by pyarrow from Arrow tables DuckDB hands over, so the connection that
serves SQL never needs file access (it has none: see :mod:`projections.query`). All models are
read in one transaction, so the files are a snapshot of one checkpoint. Each file is written
beside its final name and renamed into place: a reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from projections.errors import ExportError
from projections.projector import Projector
from projections.query import open_read_only
from projections.schema import READ_MODELS, TABLES, VIEWS


def export_parquet(source: Projector | str | Path, directory: str | Path) -> list[Path]:
    """Write each table and view of ``source`` to ``directory/<name>.parquet``; return the paths written.

    ``source`` is a running :class:`Projector` or the path of a projection file (opened
    read-only). ``directory`` is created if missing; a path that exists and is not a directory
    raises :class:`ExportError`. Existing files of the same names are replaced. The private state
    table is not exported. Rows are ordered by each model's first column.
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a directory; give a directory to export the read models into")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"could not create the export directory {target} ({exc}); give a directory you can "
                          "write") from None
    con = _open(source)
    written: list[Path] = []
    try:
        con.begin()  # one snapshot for every model
        try:
            for name in READ_MODELS:
                first = (TABLES[name].columns if name in TABLES else VIEWS[name].columns)[0].name
                table = con.sql(f"SELECT * FROM {name} ORDER BY {first}").to_arrow_table()
                final = target / f"{name}.parquet"
                partial = target / f".{name}.parquet.partial"
                pq.write_table(table, partial)
                os.replace(partial, final)
                written.append(final)
        finally:
            con.rollback()
    except duckdb.Error as exc:
        raise ExportError(f"could not read the read models to export them ({str(exc).splitlines()[0]}); "
                          "is this a projection file?") from None
    except OSError as exc:
        raise ExportError(f"could not write the export into {target} ({exc}); check the directory's permissions "
                          "and free space") from None
    finally:
        con.close()  # a cursor of the projector's, or our own read-only connection
    return written


def _open(source: Projector | str | Path) -> duckdb.DuckDBPyConnection:
    """A connection to read ``source`` from, which the caller closes."""
    if isinstance(source, Projector):
        return source.connection()
    return open_read_only(source)
