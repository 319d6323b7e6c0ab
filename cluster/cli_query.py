"""``council sql`` and ``council export``: the read models, from the running projector or the file."""

from __future__ import annotations

import csv
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cluster.cli_app import AddressOption, StoreOption, app, cell, out, quiet_ray, settings_for, text_table
from cluster.settings import Settings


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One read-only statement: SELECT, WITH, DESCRIBE, SHOW, EXPLAIN...")],
    store: StoreOption = None,
    address: AddressOption = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json (one object per line) or csv.")] = "table",
) -> None:
    """Answer a SQL query from the read models: through the projector if the council runs, else from the file."""
    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter("--format is table, json or csv")
    result = _running_projector_or_file(settings_for(store, address), "query", query, named=_named(store))
    if fmt == "json":
        for row in result.rows:
            sys.stdout.write(json.dumps(dict(zip(result.columns, row, strict=True)), default=str) + "\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        show(result, internal_hidden=query.strip().upper().startswith("SHOW"))


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="Where to write one <table>.parquet per read model.")],
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Write every read model as Parquet, for the DuckDB CLI or any other tool."""
    written = _running_projector_or_file(settings_for(store, address), "export", str(directory), named=_named(store))
    for path in written:
        out.print(str(path))


def show(result: Any, *, internal_hidden: bool = False) -> None:
    """A result for a person: cells as people read them (:func:`cluster.cli_app.cell`); a table if it fits the
    terminal, else one record per row, a field a line (as psql's expanded display). ``internal_hidden`` drops the
    projector's own tables (names starting with ``_``) and repeated rows, for SHOW TABLES."""
    now = datetime.now(UTC)
    rows = [tuple(cell(v, now) for v in row) for row in result.rows]
    if internal_hidden:
        rows = [r for r in dict.fromkeys(rows) if not (r and r[0].startswith("_"))]
    columns = list(result.columns)
    width = sum(max([len(c), *(len(r[i]) for r in rows)]) + 3 for i, c in enumerate(columns)) + 1
    if width <= out.width or not rows:
        out.print(text_table(columns, rows))
        return
    label = max(len(c) for c in columns)
    for n, row in enumerate(rows, start=1):
        out.print(f"-[ row {n} ]" + "-" * max(0, min(out.width, 40) - 12), markup=False)
        for column, value in zip(columns, row, strict=True):
            out.print(f"{column:<{label}} | {value}", markup=False)


def _named(store: str | None) -> bool:
    return store is not None or bool(os.environ.get("COUNCIL_STORE"))


def _running_projector_or_file(settings: Settings, what: str, argument: str, *, named: bool) -> Any:
    """Ask the running projector (it holds the DuckDB file), or open the file read-only if none runs.

    When a log was ``named`` (``--store``, ``COUNCIL_STORE``) and the running council writes another, it is
    refused with one line (:class:`cluster.settings.AnotherLog`) rather than answered about that other log.
    """
    projector = _running_projector(settings)
    if projector is not None:
        import ray

        if named:
            from cluster.driver import Council

            Council.connect(settings, same_log=True)

        if what == "query":
            ray.get(projector.catch_up.remote())
            return ray.get(projector.query.remote(argument))
        return ray.get(projector.export.remote(argument))
    from projections import export_parquet, query_file

    path = settings.projection_path()
    if what == "query":
        return query_file(path, argument)
    return export_parquet(path, argument)


def _running_projector(settings: Settings) -> Any:
    from actors import names
    from cluster.runtime import RayUnavailable, connect

    quiet_ray()
    try:
        connect(settings.address, start="none")
    except RayUnavailable:
        return None
    import ray

    try:
        return ray.get_actor(names.PROJECTOR, namespace=names.NAMESPACE)
    except ValueError:
        return None
