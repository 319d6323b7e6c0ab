"""The projector: keeps a DuckDB file of read models equal to a fold of the log up to its checkpoint.

It reads the log onwards in batches and folds them in memory (:class:`projections.fold.Fold`).
The changed rows and the new checkpoint are stored in one DuckDB transaction: after every batch
(:meth:`Projector.catch_up`), or, for a projector following a live log, every so often
(:meth:`Projector.advance` folds, :meth:`Projector.flush` stores) so that a trickle of small
appends does not cost a transaction each. Queries always answer from the newest fold: rows not
stored yet are laid over the stored ones (:mod:`projections.overlay`). Opened again, the
projector loads the stored rows and continues from the checkpoint; what was folded and not
stored is folded again, once. The file is a cache of the log: :meth:`Projector.rebuild` (or
deleting the file) recreates it from position 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec
import pyarrow as pa

from events import EventStore
from projections import persist
from projections.errors import (
    NotAProjection,
    ProjectionBusy,
    ProjectionLogMismatch,
    ProjectionSchemaMismatch,
    ProjectorClosed,
    QueryFailed,
)
from projections.fold import FIELDS, Changed, Fold
from projections.overlay import Overlay
from projections.payloads import PayloadReader
from projections.query import QueryResult, configure, result_of
from projections.rows import AgentRow, ModelCallRow, RequestRow, TaskRow
from projections.schema import (
    AGENTS,
    LLM_CALLS,
    REQUESTS,
    SCHEMA_VERSION,
    STATE_TABLE,
    TABLES,
    TASKS,
    Table,
    create_statements,
    drop_statements,
)

DEFAULT_BATCH = 50_000
"""Events folded per DuckDB transaction."""


class _Batch(NamedTuple):
    """A folded batch on its way to the file: the changed rows per table, and the checkpoint they reach."""

    tables: list[tuple[Table, pa.Table]]
    position: int
    hash: bytes


class Projector:
    """DuckDB read models of ``store``'s log, at ``path`` (a file) or in memory (``path=None``).

    Its methods may be called from several threads; they take one lock and run one at a time.
    One projector per file: DuckDB lets only one process write a file, and two projectors in one
    process would fold the same events twice into it.
    """

    def __init__(self, store: EventStore, path: str | Path | None = None, *, batch_size: int = DEFAULT_BATCH,
                 rebuild: bool = False) -> None:
        """Open (or create) the projection at ``path`` over ``store`` and load its rows.

        ``rebuild=True`` empties the projection first (its next :meth:`catch_up` folds the log
        from position 1); use it for a file written with another layout or over another log.
        Raises :class:`NotAProjection`, :class:`ProjectionBusy`, :class:`ProjectionSchemaMismatch`
        or :class:`ProjectionLogMismatch` (whose messages say what to do).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._store = store
        self._batch = batch_size
        self.path = None if path is None else Path(path)
        self._lock = threading.RLock()
        self._fold = Fold()
        self._payloads = PayloadReader(store.registry, FIELDS)
        self._position = 0
        self._hash: bytes | None = None
        self._folded_hash: bytes | None = None
        self._unstored_since: float | None = None
        self._generation = 0
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._con = _connect(self.path)
        try:
            self._open(rebuild)
            self._overlay = Overlay(self._con, tuple(TABLES.values()))
        except BaseException:
            self._con.close()
            raise

    # -- opening --------------------------------------------------------------------------------

    def _open(self, rebuild: bool) -> None:
        names = {r[0] for r in self._con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        where = self.path or "the in-memory projection"
        if names and STATE_TABLE not in names:
            raise NotAProjection(f"{where} is a DuckDB database but not an agent-council projection; "
                                 "give the projector a new file")
        if names and not rebuild:
            version = self._con.execute(f"SELECT schema_version FROM {STATE_TABLE}").fetchone()
            if version is None or version[0] != SCHEMA_VERSION:
                found = "no" if version is None else version[0]
                raise ProjectionSchemaMismatch(
                    f"{where} has projection schema {found}, this agent-council writes schema {SCHEMA_VERSION}; "
                    "open it with Projector(store, path, rebuild=True) to rebuild it from the log, or delete it")
        if rebuild or not names:
            self._reset()
        self._reload()
        self._check_log()

    def _reset(self) -> None:
        """Drop every read model and the checkpoint and create them empty, in one transaction."""
        self._con.begin()
        try:
            for statement in (*drop_statements(), *create_statements()):
                self._con.execute(statement)
            self._con.execute(f"UPDATE {STATE_TABLE} SET store_url = ?", [self._store.url])
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise

    def _reload(self) -> None:
        """Make the fold and checkpoint exactly what the file holds (discarding anything not committed)."""
        state = self._con.execute(f"SELECT position, last_hash FROM {STATE_TABLE}").fetchone()
        if state is None:
            raise NotAProjection(f"{self.path or 'the projection'} has lost its checkpoint; open it with "
                                 "Projector(store, path, rebuild=True) to rebuild it from the log")
        position, self._hash = state
        self._fold.load(position, persist.load(self._con, TASKS, TaskRow),
                        persist.load(self._con, REQUESTS, RequestRow), persist.load(self._con, AGENTS, AgentRow),
                        persist.load(self._con, LLM_CALLS, ModelCallRow))
        self._position, self._folded_hash, self._unstored_since = position, self._hash, None
        self._generation += 1

    def _check_log(self) -> None:
        """Refuse a log that does not hold the checkpoint's event with the hash it had when folded."""
        if self._position == 0:
            return
        rows = list(self._store.scan_rows(self._position, self._position))
        if not rows or rows[0][9] != self._hash:
            problem = (f"ends at position {self._store.head()}" if not rows
                       else f"holds a different event at position {self._position}")
            raise ProjectionLogMismatch(
                f"{self.path or 'the projection'} was folded up to position {self._position}, but the log at "
                f"{self._store.url} {problem}: it is a different or truncated log; rebuild the projection from "
                "this log with Projector(store, path, rebuild=True), or delete the file")

    # -- following the log ----------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The log position of the last event folded: what :meth:`query` answers from."""
        return self._fold.position

    @property
    def checkpoint(self) -> int:
        """The log position of the last event whose rows are stored in the file (at most :attr:`position`)."""
        return self._position

    @property
    def unstored_events(self) -> int:
        """How many events are folded but not stored yet (``position - checkpoint``)."""
        return self._fold.position - self._position

    @property
    def unstored_age(self) -> float:
        """Seconds since the oldest folded-but-unstored event was folded; 0.0 when everything is stored."""
        return 0.0 if self._unstored_since is None else time.monotonic() - self._unstored_since

    def catch_up(self, max_events: int | None = None) -> int:
        """Fold the log from :attr:`position` to its head (at most ``max_events``) and store it; return how many events.

        Each batch is stored with its checkpoint atomically, so a crash at any moment leaves the
        file at the end of a whole batch; anything :meth:`advance` folded before is stored with
        the first one. Returns once every batch is stored (``checkpoint == position``). Raises
        :class:`ProjectionLogMismatch` if the log is shorter than the checkpoint.
        """
        with self._lock:
            self._check_open()
            start = folded = self._fold.position
            end = self._end(max_events)
            pending: Future[None] | None = None
            try:
                while folded < end:
                    if self._fold_events(folded + 1, min(end, folded + self._batch)) is None:
                        break  # the log holds nothing past this point after all
                    folded = self._fold.position
                    # One batch is stored while the next is folded (DuckDB releases the GIL as it
                    # writes); at most one is in flight, and they are stored in order.
                    batch = self._take()
                    if pending is not None:
                        pending.result()
                    pending = self._writer().submit(self._store_batch, batch)
                if pending is not None:
                    pending.result()
                    pending = None
                if self._fold.position > self._position:
                    self._store_batch(self._take())
            except BaseException:
                if pending is not None:
                    wait([pending])
                # The fold may hold events the file does not: forget them, so the next attempt
                # folds them again from the stored checkpoint, once.
                self._reload()
                raise
            return self._fold.position - start

    def advance(self, max_events: int | None = None) -> int:
        """Fold the log from :attr:`position` to its head (at most ``max_events``) without storing; return how many
        events.

        :meth:`query` answers from them at once; the file gets them at the next :meth:`flush`
        or :meth:`catch_up`. A crash before then loses nothing but the work: the next projector
        folds them again from the checkpoint. Raises as :meth:`catch_up` does.
        """
        with self._lock:
            self._check_open()
            start = folded = self._fold.position
            end = self._end(max_events)
            try:
                while folded < end:
                    if self._fold_events(folded + 1, min(end, folded + self._batch)) is None:
                        break
                    folded = self._fold.position
            except BaseException:
                self._reload()
                raise
            if folded > start and self._unstored_since is None:
                self._unstored_since = time.monotonic()
            return folded - start

    def flush(self) -> int:
        """Store every folded row not stored yet, with the checkpoint, in one transaction; return how many events
        that covers."""
        with self._lock:
            self._check_open()
            before = self._position
            if self._fold.position > before:
                try:
                    self._store_batch(self._take())
                except BaseException:
                    self._reload()
                    raise
            return self._position - before

    def _end(self, max_events: int | None) -> int:
        """Where a fold from :attr:`position` should stop: the log's head, or ``max_events`` past the start."""
        head = self._store.head()
        if head < self._fold.position:
            self._check_log()
        start = self._fold.position
        return head if max_events is None else min(head, start + max(0, max_events))

    def _fold_events(self, first: int, until: int) -> int | None:
        """Fold events ``first..until`` into memory; return the last position folded, None if there were none."""
        fold = self._fold
        reads, apply, decode = fold.reads, fold.apply_payload, self._payloads.decode
        last = None
        for row in self._store.scan_rows(first, until):
            if row[4] in reads:
                apply(row[0], row[4], row[6], decode(row[4], row[5], row[8]))
            last = row
        if last is None:
            return None
        fold.position, self._folded_hash = last[0], last[9]
        self._generation += 1
        return last[0]

    def _take(self) -> _Batch:
        """Everything folded and not stored, as Arrow tables with the checkpoint they reach; the fold forgets them."""
        # Copied into Arrow now: the fold goes on changing these rows while the batch is stored.
        batch = _Batch(_arrow(self._fold.take_changed()), self._fold.position, self._folded_hash or b"")
        self._unstored_since = None
        self._generation += 1
        return batch

    def _store_batch(self, batch: _Batch) -> None:
        """Store a folded batch's rows and its checkpoint in one transaction (on the writer thread)."""
        # THE invariant: the rows changed by a batch's events and the checkpoint at its last event
        # commit in ONE transaction. A crash before COMMIT leaves the file at the previous
        # checkpoint with none of these changes, and reopening folds the batch again; a crash
        # after leaves all of them and the new checkpoint. Either way no event is applied twice or
        # skipped. Writing the checkpoint in a separate transaction, or the rows in several, would
        # break this; so would storing batches out of order (catch_up waits for each in turn).
        con = self._con
        with self._overlay.lock:  # no query is between showing its unstored rows and reading them
            con.begin()
            try:
                for table, rows in batch.tables:
                    persist.upsert(con, table, rows)
                con.execute(f"UPDATE {STATE_TABLE} SET position = ?, last_hash = ?", [batch.position, batch.hash])
                con.commit()
            except BaseException:
                con.rollback()
                raise
        self._position, self._hash = batch.position, batch.hash

    def _writer(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projector-writer")
        return self._executor

    def rebuild(self) -> int:
        """Drop every read model and fold the whole log again from position 1; return how many events."""
        with self._lock:
            self._check_open()
            with self._overlay.lock:
                self._reset()
            self._reload()
            return self.catch_up()

    # -- reading --------------------------------------------------------------------------------

    def query(self, sql: str) -> QueryResult:
        """Run read-only ``sql`` (see :func:`projections.query.run_read_only`) on the read models as folded.

        Rows folded but not stored yet are included (:mod:`projections.overlay`); the result's
        ``position`` is the fold's position the answer reflects.
        """
        overlay = self._overlay
        with self._lock:
            self._check_open()
            position = self._fold.position
            # Taken before the fold lock is let go: from here until the query ends no commit can
            # move rows from the snapshot of unstored rows into the file (see projections.overlay),
            # while the fold itself may go on folding.
            overlay.lock.acquire()
            try:
                overlay.show(self._unstored, self._generation)
            except BaseException:
                overlay.lock.release()
                raise
        try:
            result = overlay.run(sql)
        finally:
            overlay.lock.release()
        return QueryResult(result.columns, result.rows, position)

    def changes(self, table: str, after: int) -> QueryResult:
        """The rows of ``table`` (``tasks``, ``requests``, ``agents`` or ``llm_calls``) changed after log position
        ``after``: a change feed.

        Each changed row comes once, as it is now (as :meth:`query` shows it), oldest change
        first; the result's ``position`` is the fold's, to pass as ``after`` next time for only
        what changed since. Rows changed after the checkpoint come straight from the fold;
        older changes are read with SQL. Raises :class:`QueryFailed` for any other table name.
        """
        spec = TABLES.get(table) if isinstance(table, str) else None
        if spec is None:
            raise QueryFailed(f"there is no table {table!r} with a change feed; follow one of {', '.join(TABLES)}")
        after = int(after)
        with self._lock:
            self._check_open()
            if after >= self._position:  # every row changed since the checkpoint is among the unstored ones
                rows = sorted((r for r in self._fold.changed(spec.name) if r.position > after),
                              key=lambda r: r.position)
                return result_of(persist.to_arrow(spec, rows), self._fold.position)
        return self.query(f"SELECT * FROM {spec.name} WHERE position > {after} ORDER BY position")

    def _unstored(self) -> list[pa.Table]:
        """The folded rows not stored yet, one Arrow table per table in the overlay's order (copies)."""
        return [rows for _, rows in _arrow(self._fold.peek_changed())]

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the projection's database for a reader in this process (e.g. export); close it after.

        Everything folded is stored first (:meth:`flush`), so the cursor sees all of it. It has
        the projector's settings (no file access, UTC). Writes through it are not checked and are
        lost at the next rebuild; use :meth:`query` for anything a user typed.
        """
        self.flush()
        return self._con.cursor()

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Store what is folded (:meth:`flush`) and close the DuckDB connection; the log is not touched."""
        with self._lock:
            if self._closed:
                return
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            try:
                self.flush()
            finally:
                self._closed = True
                with self._overlay.lock:
                    self._overlay.close()
                    self._con.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ProjectorClosed(f"the projector of {self.path or 'the in-memory projection'} is closed; "
                                  "open a new Projector")

    def __enter__(self) -> Projector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Projector({self._store.url!r}, {str(self.path) if self.path else None!r}, position={self._position})"


def _arrow(changed: Changed) -> list[tuple[Table, pa.Table]]:
    """Changed rows as one Arrow table per table, in :data:`TABLES`' order (copies: the fold may go on changing the
    rows)."""
    rows: dict[str, Sequence[msgspec.Struct]] = {TASKS.name: changed.tasks, REQUESTS.name: changed.requests,
                                                 AGENTS.name: changed.agents, LLM_CALLS.name: changed.calls}
    return [(table, persist.to_arrow(table, rows[table.name])) for table in TABLES.values()]


def _connect(path: Path | None) -> duckdb.DuckDBPyConnection:
    """A connection to the projection file (created if missing), set up by :func:`projections.query.configure`."""
    if path is None:
        return configure(duckdb.connect(":memory:"))
    if path.is_dir():
        raise NotAProjection(f"{path} is a directory; give the projector a file path, like {path}/projection.duckdb")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return configure(duckdb.connect(str(path)))
    except duckdb.ConnectionException as exc:  # this process has the file open already, read-only
        raise ProjectionBusy(f"{path} is open in this process already ({_first_line(exc)}); close that "
                             "connection first") from None
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise ProjectionBusy(f"{path} is open in another process (a running projector?); stop it, or query "
                                 "through it") from None
        raise NotAProjection(f"{path} cannot be opened as a projection ({_first_line(exc)}); give a new file") from None
    except duckdb.Error as exc:
        raise NotAProjection(f"{path} cannot be opened as a projection ({_first_line(exc)}); give a new file") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
