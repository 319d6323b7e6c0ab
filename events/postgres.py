"""The cluster backend: one PostgreSQL database, shared by every process on every node.

Layout. The same as :mod:`events.sqlite`'s, in three tables of the connection's current schema
(``public`` unless the URL's ``options=-csearch_path=...`` says otherwise): each append is one row
of ``council_commits`` (stream, last position, last stream version, ``recorded_at``, the last
event's hash, and the events as one MessagePack array of ``[event_id, type, schema_version,
metadata, payload, hash]``); ``council_event_ids`` maps every event id to its position, for
recognising retries; ``council_commit_types`` is the type index of :mod:`events.commits`;
``council_meta`` says what the database holds. The ledger's rows and hashes are byte for byte
those SQLite stores, so ``verify`` and ``council migrate`` compare them as they are.

Durability: every session runs with ``synchronous_commit = on``, so an append that returned is in
PostgreSQL's write-ahead log on disk; one transaction per group of appends, so a writer killed
mid-batch leaves the batch wholly present or wholly absent. Triggers refuse UPDATE, DELETE and
TRUNCATE on every table but ``council_meta``; a role granted only SELECT and INSERT cannot even
drop the triggers. Appends take one round trip: see :mod:`events.postgres_append`.

Ordering invariant (the one :class:`events.recorder.Recorder` promises): see ``_LOCK``. Live
subscriptions: every append sends ``NOTIFY`` on the schema's channel inside its transaction, so
the notification is delivered only once the append is committed and visible; ``wait_for`` wakes on it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from events import postgres_append
from events.commits import COLUMNS, FORMAT, CommitTable, expand, needs_type_index, pack, type_index
from events.envelope import AppendResult
from events.errors import (
    ConcurrencyError,
    IdempotencyConflict,
    InvalidStoreUrl,
    NotAStore,
    StoreClosed,
    StoreError,
    StoreUnavailable,
)
from events.ledger import GENESIS, Row
from events.recorder import AppendRequest, Stored, plan_append, seal_batch

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
except ImportError:  # pragma: no cover - the extra is not installed
    psycopg = None  # type: ignore[assignment]

_CHANNEL = "council_events"
_RETRIES = 3  # attempts of an operation whose connection broke (a server restart, a dropped link)

_SCHEMA = (
    "CREATE TABLE council_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE council_commits (
        last_position  bigint  PRIMARY KEY,
        first_position bigint  NOT NULL,
        stream         text    NOT NULL,
        last_version   bigint  NOT NULL,
        recorded_at    bigint  NOT NULL,
        last_hash      bytea   NOT NULL,
        events         bytea   NOT NULL,
        UNIQUE (stream, last_version)
    )""",
    "CREATE TABLE council_event_ids (event_id bytea PRIMARY KEY, position bigint NOT NULL)",
    """CREATE FUNCTION council_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the event log is append-only' USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    *(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"FOR EACH {'STATEMENT' if op == 'TRUNCATE' else 'ROW'} EXECUTE FUNCTION council_append_only()"
        for table in ("council_commits", "council_event_ids")
        for op in ("UPDATE", "DELETE", "TRUNCATE")
    ),
    f"INSERT INTO council_meta VALUES ('format', '{FORMAT}'), ('schema', '1')",
)
# Schema 2 adds the type index (see events.commits) and the append function (events.postgres_append);
# a schema-1 log gains them, filled from its
# commits, in the transaction that opens it — the commits themselves are not touched.
_TYPE_INDEX = (
    """CREATE TABLE council_commit_types (
        type          text   NOT NULL,
        last_position bigint NOT NULL,
        PRIMARY KEY (type, last_position)
    )""",
    *(
        f"CREATE TRIGGER council_commit_types_no_{op.lower()} BEFORE {op} ON council_commit_types "
        f"FOR EACH {'STATEMENT' if op == 'TRUNCATE' else 'ROW'} EXECUTE FUNCTION council_append_only()"
        for op in ("UPDATE", "DELETE", "TRUNCATE")
    ),
)
_INSERT_TYPES = "INSERT INTO council_commit_types SELECT * FROM unnest(%s::text[], %s::bigint[])"

# THE ordering invariant. Positions are assigned from the head read inside the append's transaction
# (by council_append on the server, see events/postgres_append.py, or by _append_group here), and a
# reader must never see position n+1 before position n. PostgreSQL makes rows
# visible at commit, and two transactions commit in any order, so without a lock a later
# position could become visible first and a tailing reader would move past the hole for good.
# Every append therefore takes this EXCLUSIVE table lock *before* it reads the head, and holds it
# to its commit: appenders run one at a time, each reads the head its predecessor committed
# (READ COMMITTED takes a fresh snapshot per statement, after the lock is granted — inside
# council_append too, because a VOLATILE function takes one for each query it runs), and a
# commit is visible before the lock is released (PostgreSQL ends the transaction in the process
# array before it releases its locks). EXCLUSIVE conflicts with other writers only: readers'
# ACCESS SHARE is not blocked, so reads never wait for appends. (The same lock as the
# `eventsourcing` library's PostgreSQL recorder; nothing is ever skipped on a timer.)
#
# Why a lock and not a transaction-id horizon (positions from a sequence, no lock; readers take
# only rows whose xid is below their snapshot's xmin, with an (xid, position) cursor): the ledger.
# An event's hash covers its position and its predecessor's hash, and a transaction cannot see a
# predecessor that has not committed (and may still abort), so appenders must pass through their
# commits one at a time whatever assigns the positions; the horizon also reads positions out of
# order and leaves holes where a transaction aborts, which the Recorder contract forbids. The
# price is one disk flush per transaction in series; the store actor's group commit
# (actors/combiner.py) shares each flush among every append that arrives meanwhile, and
# bench/store_postgres.py measures it against an unchained horizon in the same run.
_LOCK = "LOCK TABLE council_commits IN EXCLUSIVE MODE"
_HEAD = "SELECT last_position, last_hash, recorded_at FROM council_commits ORDER BY last_position DESC LIMIT 1"
# What an append group decides on, in one statement (each statement in the transaction costs
# client CPU, the scarce thing when many writers share a machine): the head, the streams'
# versions (aligned with the streams given) and which of the group's event ids are stored.
_BEFORE_APPEND = (
    "SELECT h.last_position, h.last_hash, h.recorded_at, v.versions, i.ids, i.positions FROM (SELECT 1) AS one "
    f"LEFT JOIN LATERAL ({_HEAD}) AS h ON true "
    "CROSS JOIN LATERAL (SELECT array_agg(COALESCE((SELECT MAX(last_version) FROM council_commits "
    "WHERE stream = s), 0) ORDER BY o) AS versions FROM unnest(%s::text[]) WITH ORDINALITY AS u(s, o)) AS v "
    "CROSS JOIN LATERAL (SELECT array_agg(event_id) AS ids, array_agg(position) AS positions "
    "FROM council_event_ids WHERE event_id = ANY(%s)) AS i"
)
_COMMIT_OF = f"SELECT {COLUMNS} FROM council_commits WHERE last_position >= %s ORDER BY last_position LIMIT 1"
# One statement stores a group: its commits, its ids (arrays cut apart by unnest), and the
# notification, which PostgreSQL delivers to listeners only when the transaction commits.
_STORE_GROUP = (
    "WITH c AS (INSERT INTO council_commits SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], "
    "%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[])), "
    "i AS (INSERT INTO council_event_ids SELECT * FROM unnest(%s::bytea[], %s::bigint[])), "
    f"t AS ({_INSERT_TYPES}) "
    f"SELECT pg_notify('{_CHANNEL}_' || current_schema(), %s)"
)


T = TypeVar("T")


def _where(conninfo: dict[str, Any]) -> str:
    """The server and database a connection string names, for messages."""
    host = conninfo.get("host") or "localhost"
    port = conninfo.get("port") or "5432"
    return f"database {conninfo.get('dbname') or conninfo.get('user') or '?'!r} on {host}:{port}"


class PostgresRecorder(CommitTable):
    """Commits in one PostgreSQL database, shared safely by any number of threads, processes and nodes."""

    TABLE = "council_commits"
    TYPES = "council_commit_types"
    MARK = "%s"
    shared_across_processes = True

    def __init__(self, url: str, *, create: bool = True, pool_size: int = 8, connect_timeout: float = 10.0,
                 poll_interval: float = 1.0) -> None:
        if psycopg is None:
            raise StoreError("the PostgreSQL event store needs psycopg; install agent-council[postgres]")
        self.url = url
        try:
            self._conninfo = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise InvalidStoreUrl(f"store URL {url!r} is not a PostgreSQL connection URL ({exc}); use "
                                  "postgresql://user@host:5432/dbname") from None
        self._where = _where(self._conninfo)
        self._poll = poll_interval
        self._closed = False
        self._appended = threading.Condition()
        self._notified_head = 0
        self._listener: threading.Thread | None = None
        self._listener_lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._initialise(create)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False, configure=self._configure,
                                    kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
                                    timeout=connect_timeout, name=f"council-store {self._where}")
        self._pool.open(wait=False)

    @staticmethod
    def writer_grants(role: str) -> list[str]:
        """The statements (run by the tables' owner) that let ``role`` append and read, and nothing else.

        Append-only then holds even against that role: it cannot delete or truncate, and, not
        owning the tables, cannot drop or disable the triggers that refuse every change. UPDATE on
        ``council_commits`` is granted only because PostgreSQL lets nobody else take the
        EXCLUSIVE lock of ``_LOCK``; the triggers refuse every UPDATE all the same.
        """
        who = sql.Identifier(role).as_string(None)
        return [f"GRANT SELECT ON council_meta TO {who}",
                f"GRANT SELECT, INSERT ON council_commits, council_event_ids, council_commit_types TO {who}",
                f"GRANT UPDATE ON council_commits TO {who}"]

    # -- connections -------------------------------------------------------------------------

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET synchronous_commit = on")  # an append that returned is on disk, whatever the default

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not the pool's), in autocommit; errors say what to do."""
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None
        self._configure(conn)
        return conn

    def _unavailable(self, exc: Exception) -> StoreError:
        text = " ".join(str(exc).split())
        if "does not exist" in text and "database" in text:
            return NotAStore(f"there is no {self._where} ({text}); create it (createdb) or check --store")
        if "password" in text or "authentication" in text or "role" in text:
            return StoreUnavailable(f"PostgreSQL refused the login to {self._where} ({text}); check the user "
                                    "and password in the store URL")
        return StoreUnavailable(f"the PostgreSQL {self._where} cannot be reached ({text}); check that the server "
                                "is running and the store URL is right, then retry")

    def _initialise(self, create: bool) -> None:
        with self._connect() as conn:
            try:
                with conn.transaction():
                    # Two processes opening a new database at once: one creates, the other then sees it.
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('agent-council.events'))")
                    tables = {r[0] for r in conn.execute(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                        "AND table_name IN ('council_meta', 'council_commits', 'council_event_ids')")}
                    if not tables:
                        if not create:
                            raise NotAStore(f"there is no event store in the {self._where}; check --store, or "
                                            "append to create one")
                        for statement in _SCHEMA:
                            conn.execute(statement)
                    elif len(tables) < 3:
                        raise NotAStore(f"the {self._where} holds only part of an agent-council event store "
                                        f"({', '.join(sorted(tables))}); point --store at another database")
                    meta = dict(conn.execute("SELECT key, value FROM council_meta").fetchall())
                    if needs_type_index(meta, f"the {self._where}", "has a council_meta table"):
                        self._upgrade_to_2(conn)
            except psycopg.Error as exc:
                raise StoreError(f"the PostgreSQL {self._where} could not be opened as an event store "
                                 f"({' '.join(str(exc).split())})") from None

    @staticmethod
    def _upgrade_to_2(conn: psycopg.Connection[Any]) -> None:
        """Upgrade a schema-1 log to 2 inside the opening transaction: the append function
        (:mod:`events.postgres_append`), and the type index, filled from the commits.

        The commit lock keeps out appenders of an older agent-council meanwhile (see ``_LOCK``).
        """
        conn.execute(_LOCK)
        for statement in (*_TYPE_INDEX, *postgres_append.FUNCTIONS):
            conn.execute(statement)
        with conn.cursor(name="council_type_index") as commits:
            commits.itersize = 2000
            commits.execute("SELECT last_position, events FROM council_commits")
            entries = list(type_index((p, bytes(blob)) for p, blob in commits))
        conn.execute(_INSERT_TYPES, ([t for t, _ in entries], [p for _, p in entries]))
        conn.execute("UPDATE council_meta SET value = '2' WHERE key = 'schema'")

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` on a pooled connection; retry it when the connection broke under it.

        Retrying is safe for reads, and for appends too: a retried append carries the same event
        ids, so if the first attempt committed before the link broke, the retry is recognised as
        one (:func:`events.recorder.plan_append`) and writes nothing.
        """
        for attempt in range(_RETRIES):
            if self._closed:
                raise StoreClosed(f"the store at {self.url} is closed")
            try:
                with self._pool.connection() as conn:
                    try:
                        return work(conn)
                    except psycopg.OperationalError as exc:
                        if not conn.broken or attempt == _RETRIES - 1:
                            raise self._unavailable(exc) from None
            except PoolClosed:
                raise StoreClosed(f"the store at {self.url} is closed") from None
            except PoolTimeout as exc:
                raise self._unavailable(exc) from None
            time.sleep(0.1 * (attempt + 1))
            with contextlib.suppress(psycopg.Error, PoolClosed):
                self._pool.check()  # a restarted server broke every idle connection: drop them all at once
        raise AssertionError("unreachable")  # pragma: no cover

    # -- writing ----------------------------------------------------------------------------

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | StoreError]:
        results, head = self._run(lambda conn: self._append(conn, requests))
        if head:
            with self._appended:
                self._notified_head = max(self._notified_head, head)
                self._appended.notify_all()
        return results

    def _append(self, conn: psycopg.Connection[Any],
                requests: Sequence[AppendRequest]) -> tuple[list[AppendResult | StoreError], int]:
        """One group in one transaction; returns the results and the new head (0: none).

        The server seals and stores the group in one statement (:mod:`events.postgres_append`);
        a group it declines — a retry, a conflict, a stale expected version — is decided here.
        """
        args = postgres_append.arguments(requests, time.time_ns() // 1000)
        if args is not None:
            row = conn.execute(postgres_append.CALL, args, prepare=True).fetchone()
            if row is not None and row[0] is not None:
                stored, head = postgres_append.results(requests, row[0])
                return list[AppendResult | StoreError](stored), head
        return self._append_group(conn, requests)

    def _append_group(self, conn: psycopg.Connection[Any],
                      requests: Sequence[AppendRequest]) -> tuple[list[AppendResult | StoreError], int]:
        """One group, decided in Python, in one transaction of two round trips; as :meth:`_append`."""
        streams = list({r[0] for r in requests})
        ids = [e[0] for r in requests for e in r[2]]
        with conn.pipeline(), conn.transaction():
            conn.execute(_LOCK)  # see _LOCK: taken before the head is read, held to the commit
            # The first round trip. Never prepared: a cached generic plan for "= ANY(ids)" may scan the
            # whole id table, under the lock, while its statistics lag its growth.
            row = conn.execute(_BEFORE_APPEND, (streams, ids), prepare=False).fetchone()
            assert row is not None
            head: tuple[int, bytes, int] = (row[0], bytes(row[1]), row[2]) if row[0] else (0, GENESIS, 0)
            versions: dict[str, int] = dict(zip(streams, row[3], strict=True))
            found = list(zip(row[4], row[5], strict=True)) if row[4] else []
            stored = self._stored(conn, found) if found else {}
            start = head[0]
            results: list[AppendResult | StoreError] = []
            written_ids: dict[bytes, Stored] = {}
            commits: list[list[Any]] = [[], [], [], [], [], [], []]
            new_ids: list[bytes] = []
            new_positions: list[int] = []
            types: tuple[list[str], list[int]] = ([], [])
            for stream, expected, batch in requests:
                mine = {e[0]: stored.get(e[0]) or written_ids[e[0]] for e in batch
                        if e[0] in stored or e[0] in written_ids}
                try:
                    decided = plan_append(stream, expected, batch, versions.get(stream, 0), mine)
                except (ConcurrencyError, IdempotencyConflict) as exc:
                    results.append(exc)
                    continue
                if decided is not None:
                    results.append(decided)
                    continue
                sealed = seal_batch(stream, batch, versions.get(stream, 0), *head)
                n = len(batch)
                last = sealed.first_position + n - 1
                for column, value in zip(commits, (last, sealed.first_position, stream, sealed.first_version + n - 1,
                                                   sealed.recorded_at, sealed.hashes[-1], pack(sealed.events)),
                                         strict=True):
                    column.append(value)
                for type_ in {e[1] for e in batch}:
                    types[0].append(type_)
                    types[1].append(last)
                for i, (eid, type_, _, _, payload) in enumerate(batch):
                    new_ids.append(eid)
                    new_positions.append(sealed.first_position + i)
                    written_ids[eid] = Stored(sealed.first_position + i, stream, sealed.first_version + i, type_,
                                              payload)
                versions[stream] = sealed.first_version + n - 1
                head = (last, sealed.hashes[-1], sealed.recorded_at)
                results.append(sealed.result())
            if head[0] != start:
                conn.execute(_STORE_GROUP, (*commits, new_ids, new_positions, *types, str(head[0])), prepare=True)
        return results, (head[0] if head[0] != start else 0)

    def _stored(self, conn: psycopg.Connection[Any], found: list[tuple[Any, ...]]) -> dict[bytes, Stored]:
        """What the log holds of the event ids ``found`` (id, position pairs), for deciding retries."""
        stored: dict[bytes, Stored] = {}
        for eid, position in found:
            commit = conn.execute(_COMMIT_OF, (position,)).fetchone()
            assert commit is not None  # the id index and the commits are written in one transaction
            r = expand(*commit)[position - commit[1]]
            stored[bytes(eid)] = Stored(r[0], r[1], r[2], r[4], r[8])
        return stored

    def import_rows(self, rows: Sequence[Row]) -> int:
        """Store ledger rows copied from another log exactly as they are (positions, times, hashes).

        For :func:`events.migrate.copy_log` only: the rows must continue this log's chain — the
        first at ``head() + 1`` — or :class:`events.errors.StoreError` is raised and nothing of
        them is stored. Consecutive rows of one stream and one ``recorded_at`` become one commit.
        Returns the new head.
        """
        def store(conn: psycopg.Connection[Any]) -> int:
            with conn.pipeline(), conn.transaction():
                conn.execute(_LOCK)  # see _LOCK
                row = conn.execute(_HEAD).fetchone()
                head = row[0] if row else 0
                if rows and rows[0][0] != head + 1:
                    raise StoreError(f"the copied rows start at position {rows[0][0]}, but the log's head is {head}; "
                                     "nothing was written")
                commits: list[list[Any]] = [[], [], [], [], [], [], []]
                types: tuple[list[str], list[int]] = ([], [])
                group: list[Row] = []
                for r in [*rows, None]:
                    if group and (r is None or r[1] != group[0][1] or r[6] != group[0][6]):
                        last = group[-1]
                        events = [(g[3], g[4], g[5], g[7], g[8], g[9]) for g in group]
                        for column, value in zip(commits, (last[0], group[0][0], last[1], last[2], last[6], last[9],
                                                           pack(events)), strict=True):
                            column.append(value)
                        for type_ in {g[4] for g in group}:
                            types[0].append(type_)
                            types[1].append(last[0])
                        group = []
                    if r is not None:
                        group.append(r)
                if rows:
                    conn.execute(_STORE_GROUP, (*commits, [r[3] for r in rows], [r[0] for r in rows], *types,
                                                str(rows[-1][0])))
                return rows[-1][0] if rows else head
        return self._run(store)

    # -- reading ----------------------------------------------------------------------------

    def _query(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        def fetch(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            rows = conn.execute(query, params, prepare=True).fetchall()
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
        return self._run(fetch)

    def head(self) -> int:
        head: int = self._query("SELECT COALESCE(MAX(last_position), 0) FROM council_commits", ())[0][0]
        return head

    # -- following --------------------------------------------------------------------------

    def wait_for(self, position: int, timeout: float) -> bool:
        # Appends anywhere wake the waiter through LISTEN/NOTIFY; the head is re-read every poll
        # interval as well, so a listener that lost its connection delays a wake-up, never loses one.
        self._ensure_listener()
        deadline = time.monotonic() + timeout
        while True:
            if self._notified_head >= position or self.head() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return False
            with self._appended:
                if self._notified_head < position and not self._closed:
                    self._appended.wait(min(self._poll, remaining))

    def _ensure_listener(self) -> None:
        with self._listener_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(target=self._listen, name="council-store-listen", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        """Receive the appends' notifications until closed; reconnect when the connection is lost."""
        while not self._closed:
            try:
                with self._connect() as conn:
                    schema = conn.execute("SELECT current_schema()").fetchone()
                    channel = f"{_CHANNEL}_{schema[0] if schema else 'public'}"
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    while not self._closed:
                        for note in conn.notifies(timeout=0.2):
                            with self._appended:
                                with contextlib.suppress(ValueError):
                                    self._notified_head = max(self._notified_head, int(note.payload))
                                self._appended.notify_all()
            except (StoreError, psycopg.Error):
                time.sleep(self._poll)  # the waiters poll meanwhile

    def close(self) -> None:
        self._closed = True
        with self._appended:
            self._appended.notify_all()
        self._pool.close()
        if self._listener is not None:
            self._listener.join(timeout=5)
