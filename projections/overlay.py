"""Fresh answers before the file catches up: the stored read models overlaid with the fold's unstored rows.

The projector folds events into memory as soon as they are in the log, but stores rows in its
DuckDB file only now and then (each time in one transaction with the checkpoint, so the file is
always a whole prefix of the log). A query must see the newest fold, so queries run on a
connection of their own on which every table (``tasks``, ``requests``, ``agents``, ``llm_calls``)
is a *temporary view*: the stored table without the rows the fold changed since the last store,
plus those rows, registered as Arrow tables. The read models' views (``agent_load``, ``queue``,
``model_costs``...) name the tables unqualified, so on this connection they read the overlay too.

Temporary views and registered tables belong to the one connection that made them: the file,
``query_file`` and every other reader see only what is stored.

The overlay's :attr:`Overlay.lock` is what keeps an answer whole: it is held from the moment
the unstored rows are registered until the query has run, and the projector takes it around
every commit to the file. So no rows move from "unstored" to "stored" while a query reads both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import duckdb
import pyarrow as pa

from projections.query import QueryResult, run_read_only
from projections.schema import Table, arrow_schema

_UNSTORED = "_unstored_{}"
"""The name a table's unstored rows are registered under on the overlay's connection."""


class Overlay:
    """A query connection on which each table in ``tables`` shows stored rows replaced by newer unstored ones."""

    def __init__(self, con: duckdb.DuckDBPyConnection, tables: Sequence[Table]) -> None:
        """Make the overlay on a new cursor of ``con`` (whose database must hold ``tables``)."""
        self._tables = tuple(tables)
        self.lock = threading.Lock()
        """Held by a query from :meth:`show` to the end of :meth:`run`, and by the projector around each commit."""
        self._cursor = con.cursor()
        database = self._cursor.execute("SELECT current_database()").fetchall()[0][0]
        self._stored = '"' + str(database).replace('"', '""') + '".main'
        self._version: object = None
        self._shown: list[pa.Table | None] = [None] * len(self._tables)
        for i, table in enumerate(self._tables):
            self._lay(i, arrow_schema(table).empty_table())

    def show(self, unstored: Callable[[], Sequence[pa.Table]], version: object) -> None:
        """Lay the unstored rows (one Arrow table per table, in order, copies) over the stored ones; hold :attr:`lock`.

        ``version`` names the unstored rows: while it is the same as last time, the tables
        registered then are used again and ``unstored`` is not called.
        """
        if version == self._version:
            return
        for i, rows in enumerate(unstored()):
            shown = self._shown[i]
            if shown is None or not rows.equals(shown):
                self._lay(i, rows)
        self._version = version

    def _lay(self, i: int, rows: pa.Table) -> None:
        """Make table ``i``'s view show ``rows`` over the stored rows (just the stored rows if there are none)."""
        table, shown = self._tables[i], self._shown[i]
        unstored = _UNSTORED.format(table.name)
        if rows.num_rows:
            self._cursor.register(unstored, rows)
        # The view is redefined only when the table goes from no unstored rows to some or back:
        # with none, it reads just the stored table (a registered Arrow table costs a scan even
        # when empty). It reads the stored table by its full name (a bare ``tasks`` here would be
        # the view itself): stored rows whose key has an unstored version, then those versions.
        if shown is None or bool(shown.num_rows) != bool(rows.num_rows):
            stored = f"SELECT * FROM {self._stored}.{table.name}"
            self._cursor.execute(
                f"CREATE OR REPLACE TEMP VIEW {table.name} AS " + (
                    f"{stored} WHERE {table.key} NOT IN (SELECT {table.key} FROM {unstored}) "
                    f"UNION ALL SELECT * FROM {unstored}" if rows.num_rows else stored))
        if not rows.num_rows and shown is not None and shown.num_rows:
            self._cursor.unregister(unstored)
        self._shown[i] = rows

    def run(self, sql: str) -> QueryResult:
        """Run read-only ``sql`` over the rows last shown (:func:`projections.query.run_read_only`); hold
        :attr:`lock`."""
        return run_read_only(self._cursor, sql, rollback=True)

    def close(self) -> None:
        """Close the overlay's connection (its views and registrations go with it)."""
        self._cursor.close()
