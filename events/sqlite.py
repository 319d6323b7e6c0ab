"""The embedded default backend: one SQLite file in WAL mode.

Durability: ``synchronous=FULL``, so an append that returned is in the write-ahead log on disk,
and one transaction per append, so a writer killed mid-batch leaves the batch wholly present or
wholly absent. Triggers refuse UPDATE and DELETE on the events table.

Ordering invariant (the one :class:`events.recorder.Recorder` promises): every append runs inside
``BEGIN IMMEDIATE``, which takes SQLite's single write lock for the whole database before the
head is read. Positions are therefore assigned and committed one transaction at a time, in order,
by every process that shares the file; a reader's snapshot holding position ``n`` holds every
position below it. Subscriptions rely on this to never skip an event.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from events.envelope import AppendResult, ExpectedVersion
from events.errors import ConcurrencyError, NewerStoreSchema, NotAStore, StoreClosed, StoreError, StoreUnavailable
from events.ledger import GENESIS, Row
from events.recorder import EncodedEvent, Recorder, Stored, new_rows, plan_append, result_of

FORMAT = "agent-council.events"
SCHEMA_VERSION = 1
_COLUMNS = "position, stream, stream_version, event_id, type, schema_version, recorded_at, metadata, payload, hash"
_LOOKUP_CHUNK = 500

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        stream         TEXT    NOT NULL,
        stream_version INTEGER NOT NULL,
        event_id       BLOB    NOT NULL UNIQUE,
        type           TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        recorded_at    INTEGER NOT NULL,
        metadata       BLOB    NOT NULL,
        payload        BLOB    NOT NULL,
        hash           BLOB    NOT NULL,
        UNIQUE (stream, stream_version)
    )""",
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END",
    f"INSERT INTO meta VALUES ('format', '{FORMAT}'), ('schema', '{SCHEMA_VERSION}')",
)


class SqliteRecorder(Recorder):
    """Rows in one SQLite file, shared safely by any number of threads and processes."""

    shared_across_processes = True

    def __init__(self, path: str | Path, *, url: str | None = None, create: bool = True,
                 busy_timeout: float = 30.0, poll_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self._busy_timeout = busy_timeout
        self._poll = poll_interval
        self._closed = False
        self._write_lock = threading.Lock()
        self._appended = threading.Condition()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        if self.path.is_dir():
            raise NotAStore(f"{self.path} is a directory; give the path of an event store file, like {self.path}/events.db")
        if not self.path.exists():
            if not create:
                raise NotAStore(f"there is no event store at {self.path}; check --store, or append to create one")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._initialise()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False, cached_statements=64)
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise NotAStore(f"{self.path} is not an agent-council event store ({exc})") from None
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosed(f"the store at {self.url} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _initialise(self) -> None:
        conn = self._writer
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _unavailable(self.path, exc) from None
        except sqlite3.DatabaseError as exc:
            self.close()
            raise NotAStore(f"{self.path} is not an agent-council event store ({exc})") from None
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                for statement in _SCHEMA:
                    conn.execute(statement)
            elif "meta" not in tables or "events" not in tables:
                raise NotAStore(f"{self.path} is an SQLite database but not an agent-council event store")
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            if meta.get("format") != FORMAT:
                raise NotAStore(f"{self.path} is an SQLite database but not an agent-council event store")
            schema = int(meta.get("schema", "0"))
            if schema > SCHEMA_VERSION:
                raise NewerStoreSchema(
                    f"{self.path} was written by a newer agent-council (store schema {schema}; this one reads "
                    f"up to {SCHEMA_VERSION}); upgrade agent-council to open it"
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.close()
            raise

    # -- writing ----------------------------------------------------------------------------

    def append(self, stream: str, expected: ExpectedVersion, batch: Sequence[EncodedEvent]) -> AppendResult:
        if self._closed:
            raise StoreClosed(f"the store at {self.url} is closed")
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _unavailable(self.path, exc) from None
            try:
                result = self._append_in_transaction(conn, stream, expected, batch)
                conn.execute("COMMIT" if not result.duplicate else "ROLLBACK")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if not result.duplicate:
            with self._appended:
                self._appended.notify_all()
        return result

    def _append_in_transaction(self, conn: sqlite3.Connection, stream: str, expected: ExpectedVersion,
                               batch: Sequence[EncodedEvent]) -> AppendResult:
        current = conn.execute("SELECT MAX(stream_version) FROM events WHERE stream = ?", (stream,)).fetchone()[0] or 0
        # Fast path: no lookup of the batch's ids. A retried id surfaces as a UNIQUE violation,
        # a stale expected version as a ConcurrencyError; either way the ids are looked up and
        # plan_append decides between "retry of a stored batch" and a real error.
        try:
            plan_append(stream, expected, batch, current, {})
            head = conn.execute(
                "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
            ).fetchone() or (0, GENESIS, 0)
            rows = new_rows(stream, batch, current, *head)
            conn.execute("SAVEPOINT batch")
            try:
                conn.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO batch")
                raise
            conn.execute("RELEASE batch")
            return result_of(rows)
        except (ConcurrencyError, sqlite3.IntegrityError) as first:
            stored = self._stored(conn, batch)
            decided = plan_append(stream, expected, batch, current, stored)
            if decided is None:  # pragma: no cover - a UNIQUE violation always has stored ids
                raise StoreError(f"append to {stream!r} failed: {first}") from None
            return decided

    def _stored(self, conn: sqlite3.Connection, batch: Sequence[EncodedEvent]) -> dict[bytes, Stored]:
        ids = [e.event_id for e in batch]
        found: dict[bytes, Stored] = {}
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for eid, *rest in conn.execute(
                f"SELECT event_id, position, stream, stream_version, type, payload FROM events WHERE event_id IN ({marks})",
                chunk,
            ):
                found[eid] = Stored(*rest)
        return found

    # -- reading ----------------------------------------------------------------------------

    def read_stream(self, stream: str, from_version: int, limit: int | None) -> list[Row]:
        return self._query(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?",
            (stream, from_version, -1 if limit is None else limit),
        )

    def read_all(self, from_position: int, limit: int | None, types: Sequence[str] | None,
                 until: int | None) -> list[Row]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE position >= ? AND position <= ?"
        params: list[object] = [from_position, 2**62 if until is None else until]
        if types is not None:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            params.extend(types)
        sql += " ORDER BY position LIMIT ?"
        params.append(-1 if limit is None else limit)
        return self._query(sql, params)

    def head(self) -> int:
        return self._query("SELECT COALESCE(MAX(position), 0) FROM events", ())[0][0]

    def _query(self, sql: str, params: Sequence[object]) -> list:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise _unavailable(self.path, exc) from None
        except sqlite3.ProgrammingError as exc:
            if self._closed:
                raise StoreClosed(f"the store at {self.url} is closed") from None
            raise

    def wait_for(self, position: int, timeout: float) -> bool:
        # Appends in this process wake the waiter at once; appends by other processes on the
        # same file are seen at the next poll (SQLite has no cross-process notification).
        deadline = time.monotonic() + timeout
        while True:
            if self.head() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return False
            with self._appended:
                self._appended.wait(min(self._poll, remaining))

    def close(self) -> None:
        self._closed = True
        with self._appended:
            self._appended.notify_all()
        with self._connections_lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing is best effort
                pass


def _unavailable(path: Path, exc: sqlite3.OperationalError) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreUnavailable(f"the event store {path} stayed locked by another writer ({text}); retry the append")
    return StoreError(f"the event store {path} failed: {text}")
