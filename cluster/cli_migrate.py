"""``council migrate``: copy a log into another store (SQLite into PostgreSQL), verified hash for hash."""

from __future__ import annotations

from typing import Annotated

import typer

from cluster.cli_app import app, out


@app.command()
def migrate(
    source: Annotated[str, typer.Option("--from", help="The log to copy: sqlite:///path/events.db (it must exist).",
                                        show_default=False)],
    target: Annotated[str, typer.Option("--to", help="An empty PostgreSQL database: postgresql://user@host/db.",
                                        show_default=False)],
) -> None:
    """Copy every event of a log into an empty PostgreSQL store, then verify the copy hash for hash.

    Positions, times and hashes are kept, so the copy has the source's Merkle root and its signed
    checkpoints still verify. Stop the council writing the source first; the source is not changed.
    """
    from events.migrate import copy_log

    def progress(done: int, total: int) -> None:
        out.print(f"copied {done:,} of {total:,} events")

    report = copy_log(source, target, progress=progress)
    out.print(f"ok: {report.events:,} events copied and verified, root {report.root.hex()}; start the council with "
              f"--store {target} (or COUNCIL_STORE)", markup=False)
