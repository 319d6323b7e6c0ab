"""The embedded default backend: one SQLite file in WAL mode.

Layout. Each append is one row of ``commits``: the batch's stream, its last position and stream
version, its ``recorded_at``, and the events themselves as one
MessagePack array of ``[event_id, type, schema_version, metadata, payload, hash]``. Positions
``first_position..last_position`` belong to it; ``last_position`` is the rowid, so the commit
holding any position is one index probe away. ``event_ids`` maps every event id to its position,
for recognising retries. Storing a batch as one row costs one table insert per batch instead of
one per event; the id index is the only per-event B-tree insert, and time-ordered ids keep it at
the index's right edge. ``commit_types`` is the type index of :mod:`events.commits`: one row per
type per commit (one, usually), for reads of a few types.

Durability: ``synchronous=FULL``, so an append that returned is in the write-ahead log on disk,
and one transaction per append, so a writer killed mid-batch leaves the batch wholly present or
wholly absent. Triggers refuse UPDATE and DELETE on every table but ``meta``.

Ordering invariant (the one :class:`events.recorder.Recorder` promises): every append runs inside
``BEGIN IMMEDIATE``, which takes SQLite's single write lock for the whole database before the
head is read. Positions are therefore assigned and committed one transaction at a time, in order,
by every process that shares the file; a reader's snapshot holding position ``n`` holds every
position below it. Subscriptions rely on this to never skip an event.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from events.commits import COLUMNS, FORMAT, CommitTable, expand, needs_type_index, pack, type_index
from events.envelope import AppendResult, ExpectedVersion
from events.errors import (
    ConcurrencyError,
    CorruptLog,
    NotAStore,
    StoreClosed,
    StoreError,
    StoreUnavailable,
)
from events.ledger import GENESIS
from events.recorder import AppendRequest, EncodedEvent, Stored, plan_append, seal_batch

_LOOKUP_CHUNK = 500

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE commits (
        last_position  INTEGER PRIMARY KEY,
        first_position INTEGER NOT NULL,
        stream         TEXT    NOT NULL,
        last_version   INTEGER NOT NULL,
        recorded_at    INTEGER NOT NULL,
        events         BLOB    NOT NULL,
        UNIQUE (stream, last_version)
    )""",
    "CREATE TABLE event_ids (event_id BLOB PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
    *(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
        for table in ("commits", "event_ids")
        for op in ("UPDATE", "DELETE")
    ),
    f"INSERT INTO meta VALUES ('format', '{FORMAT}'), ('schema', '1')",
)
# Schema 2 adds the type index (see events.commits); a schema-1 log gains it, filled from its
# commits, in the transaction that opens it — the commits themselves are not touched.
_TYPE_INDEX = (
    """CREATE TABLE commit_types (
        type          TEXT    NOT NULL,
        last_position INTEGER NOT NULL,
        PRIMARY KEY (type, last_position)
    ) WITHOUT ROWID""",
    *(
        f"CREATE TRIGGER commit_types_no_{op.lower()} BEFORE {op} ON commit_types "
        "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
        for op in ("UPDATE", "DELETE")
    ),
)
_INSERT_TYPE = "INSERT INTO commit_types VALUES (?,?)"
_INSERT_COMMIT = "INSERT INTO commits VALUES (?,?,?,?,?,?)"
# One statement indexes a whole batch: the ids arrive as one blob of 16-byte ids, cut apart in
# SQLite, which costs half of binding one row per id from Python.
_INSERT_ID = "INSERT INTO event_ids VALUES (?,?)"
_INSERT_IDS = (
    "WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n + 1 < ?) "
    "INSERT INTO event_ids SELECT substr(?, n * 16 + 1, 16), ? + n FROM k"
)

_unpack_raw = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode
_unpack_one = msgspec.msgpack.Decoder(tuple[bytes, str, int, bytes, bytes, bytes]).decode


class SqliteRecorder(CommitTable):
    """Commits in one SQLite file, shared safely by any number of threads and processes."""

    TABLE = "commits"
    TYPES = "commit_types"
    MARK = "?"
    shared_across_processes = True

    def __init__(self, path: str | Path, *, url: str | None = None, create: bool = True,
                 busy_timeout: float = 30.0, poll_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self._busy_timeout = busy_timeout
        self._poll = poll_interval
        self._closed = False
        self._last: tuple[int, bytes, int] | None = None  # (position, hash, recorded_at) of our last commit
        self._write_lock = threading.Lock()
        self._appended = threading.Condition()
        self._waiting = 0  # threads in wait_for; appends notify only when there are some
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        if self.path.is_dir():
            raise NotAStore(f"{self.path} is a directory; give the path of an event store file, like "
                            f"{self.path}/events.db")
        if not self.path.exists():
            if not create:
                raise NotAStore(f"there is no event store at {self.path}; check --store (or COUNCIL_STORE), or start a "
                               "council with `council up`")
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
            self.close()
            raise _unavailable(self.path, exc) from None
        except sqlite3.DatabaseError as exc:
            self.close()
            raise NotAStore(f"{self.path} is not an agent-council event store ({exc})") from None
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                for statement in _SCHEMA:
                    conn.execute(statement)
            elif not {"meta", "commits", "event_ids"} <= tables:
                raise NotAStore(f"{self.path} is an SQLite database but not an agent-council event store")
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            if needs_type_index(meta, str(self.path), "is an SQLite database"):
                for statement in _TYPE_INDEX:
                    conn.execute(statement)
                commits = conn.execute("SELECT last_position, events FROM commits")
                conn.executemany(_INSERT_TYPE, type_index(commits))
                conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.close()
            raise

    # -- writing ----------------------------------------------------------------------------

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | StoreError]:
        if self._closed:
            raise StoreClosed(f"the store at {self.url} is closed")
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _unavailable(self.path, exc) from None
            try:
                head = start = self._head(conn)
                isolate = len(requests) > 1  # one request needs no savepoint: its failure writes nothing
                results: list[AppendResult | StoreError] = []
                for stream, expected, batch in requests:
                    result, head = self._append_one(conn, stream, expected, batch, head, isolate)
                    results.append(result)
                conn.execute("COMMIT" if head is not start else "ROLLBACK")
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _unavailable(self.path, exc) from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if head is not start:
                self._last = head  # committed: safe to reuse as the next append's head
        if head is not start and self._waiting:  # an uncounted waiter re-checks within one poll interval
            with self._appended:
                self._appended.notify_all()
        return results

    def _append_one(self, conn: sqlite3.Connection, stream: str, expected: ExpectedVersion,
                    batch: Sequence[EncodedEvent], head: tuple[int, bytes, int],
                    isolate: bool) -> tuple[AppendResult | StoreError, tuple[int, bytes, int]]:
        """One append inside the group's transaction; returns its result and the log's new head."""
        current = conn.execute("SELECT MAX(last_version) FROM commits WHERE stream = ?", (stream,)).fetchone()[0] or 0
        # Fast path: the batch's ids are not looked up first. A stale expected version raises
        # ConcurrencyError here, a stored id a PRIMARY KEY violation below (which undoes the
        # statement, or the savepoint); then plan_append decides, from the ids that are stored,
        # between "a retry of a stored batch" and a real error.
        try:
            plan_append(stream, expected, batch, current, {})
            sealed = seal_batch(stream, batch, current, *head)
            first, n = sealed.first_position, len(batch)
            if isolate:
                conn.execute("SAVEPOINT one")
            try:
                if n == 1:
                    conn.execute(_INSERT_ID, (batch[0][0], first))
                else:
                    conn.execute(_INSERT_IDS, (n, b"".join([e[0] for e in batch]), first))
                conn.execute(_INSERT_COMMIT, (first + n - 1, first, stream, sealed.first_version + n - 1,
                                              sealed.recorded_at, pack(sealed.events)))
                for type_ in {e[1] for e in batch}:
                    conn.execute(_INSERT_TYPE, (type_, first + n - 1))
            except sqlite3.IntegrityError:
                if isolate:
                    conn.execute("ROLLBACK TO one")
                raise
            finally:
                if isolate:
                    conn.execute("RELEASE one")
            return sealed.result(), (first + n - 1, sealed.hashes[-1], sealed.recorded_at)
        except (ConcurrencyError, sqlite3.IntegrityError) as refused:
            try:
                decided = plan_append(stream, expected, batch, current, self._stored(conn, batch))
            except StoreError as exc:
                return exc, head
            if decided is None:  # pragma: no cover - a key violation always has stored ids
                return StoreError(f"append to {stream!r} failed: {refused}"), head
            return decided, head

    def _head(self, conn: sqlite3.Connection) -> tuple[int, bytes, int]:
        """The log's last position, hash and recorded_at, inside the write transaction.

        The hash is remembered from this recorder's own last commit and trusted only while that
        commit is still the head; after another process appended, it is read from the log.
        """
        row = conn.execute("SELECT last_position, recorded_at FROM commits ORDER BY last_position DESC "
                           "LIMIT 1").fetchone()
        if row is None:
            return 0, GENESIS, 0
        position, recorded_at = row
        if self._last is not None and self._last[0] == position:
            return self._last
        blob = conn.execute("SELECT events FROM commits WHERE last_position = ?", (position,)).fetchone()[0]
        try:
            last_hash = _unpack_one(_unpack_raw(blob)[-1])[5]
        except (msgspec.DecodeError, UnicodeDecodeError, IndexError) as exc:
            raise CorruptLog(position, f"the last commit cannot be decoded ({exc}); nothing was written") from None
        return position, last_hash, recorded_at

    def _stored(self, conn: sqlite3.Connection, batch: Sequence[EncodedEvent]) -> dict[bytes, Stored]:
        ids = [e[0] for e in batch]
        found: dict[bytes, Stored] = {}
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for eid, position in conn.execute(
                f"SELECT event_id, position FROM event_ids WHERE event_id IN ({marks})", chunk
            ).fetchall():
                commit = conn.execute(
                    f"SELECT {COLUMNS} FROM commits WHERE last_position >= ? ORDER BY last_position LIMIT 1",
                    (position,),
                ).fetchone()
                row = expand(*commit)[position - commit[1]]
                found[eid] = Stored(row[0], row[1], row[2], row[4], row[8])
        return found

    # -- reading ----------------------------------------------------------------------------

    def head(self) -> int:
        head: int = self._query("SELECT COALESCE(MAX(last_position), 0) FROM commits", ())[0][0]
        return head

    def _query(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            return self._reader().execute(query, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise _unavailable(self.path, exc) from None
        except sqlite3.ProgrammingError:
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
                self._waiting += 1
                try:
                    self._appended.wait(min(self._poll, remaining))
                finally:
                    self._waiting -= 1

    def close(self) -> None:
        self._closed = True
        with self._appended:
            self._appended.notify_all()
        with self._connections_lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                conn.close()


def _unavailable(path: Path, exc: sqlite3.OperationalError) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreUnavailable(f"the event store {path} stayed locked by another writer ({text}); retry the append")
    return StoreError(f"the event store {path} failed: {text}")
