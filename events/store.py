"""The event store: the one append-only log every part of agent-council writes to and reads from.

:func:`open_store` turns a URL into an :class:`EventStore`. The store validates and encodes
events once, hands rows to a backend (:class:`events.recorder.Recorder`), and decodes rows back
into typed :class:`events.envelope.RecordedEvent` envelopes. There is no update or delete.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import msgspec

from events import catalogue as _catalogue  # noqa: F401 - importing it registers the vocabulary
from events import merkle
from events.envelope import ANY, NO_METADATA, AppendResult, Expect, ExpectedVersion, Metadata, NewEvent, RecordedEvent
from events.errors import (
    CorruptLog,
    CouncilError,
    EventTooLarge,
    InvalidAppend,
    InvalidStoreUrl,
    InvalidStreamName,
    LedgerError,
)
from events.ids import event_id_bytes
from events.ledger import LedgerVerifier, Row, VerifyReport
from events.memory import MemoryRecorder
from events.recorder import AppendRequest, EncodedEvent, Recorder
from events.registry import VOCABULARY, Event, Registry
from events.sqlite import SqliteRecorder
from events.subscription import Subscription

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
_STREAM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/+=-]{0,199}$")
_METADATA = msgspec.json.Encoder(order="deterministic")
_METADATA_DECODER = msgspec.json.Decoder(Metadata)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BIN16 = b"\xc4\x10"  # MessagePack's header for 16 bytes of binary: msgspec then builds the UUID in C
_uuid = msgspec.msgpack.Decoder(UUID).decode


def open_store(url: str, *, create: bool = True, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
               registry: Registry = VOCABULARY) -> EventStore:
    """Open the event store at ``url``.

    * ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (or a bare file path):
      the embedded default, one SQLite file in WAL mode, shared by every process on the machine.
    * ``postgresql://user@host:5432/dbname``: a PostgreSQL database, shared by every process on
      every node (the ``postgres`` extra); for clusters.
    * ``memory://``: in this process only, gone when it exits; for tests.

    With ``create=False`` a missing SQLite file is an error instead of a new, empty store.
    Raises :class:`events.errors.InvalidStoreUrl`, :class:`events.errors.NotAStore` or
    :class:`events.errors.NewerStoreSchema` with a message that says what to do.
    """
    return EventStore(_recorder_for(url, create), registry=registry, max_event_bytes=max_event_bytes)


def _recorder_for(url: str, create: bool) -> Recorder:
    if not isinstance(url, str) or not url.strip():
        raise InvalidStoreUrl("the store URL is empty; use sqlite:///path/to/events.db or memory://")
    if url.startswith("memory://"):
        return MemoryRecorder(url)
    if url.startswith(("postgresql://", "postgres://")):
        from events.postgres import PostgresRecorder  # psycopg is an optional extra: imported only when used

        return PostgresRecorder(url, create=create)
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or len(rest) < 2:
            raise InvalidStoreUrl(
                f"store URL {url!r} has no path; use sqlite:///relative/events.db or sqlite:////absolute/events.db"
            )
        return SqliteRecorder(Path(rest[1:]), url=url, create=create)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise InvalidStoreUrl(f"store URL scheme {scheme!r} is not supported; use sqlite:///path/to/events.db, "
                              "postgresql://host/dbname or memory://")
    return SqliteRecorder(Path(url), url=f"sqlite:///{url}", create=create)


class EventStore:
    """The log: append typed events, read them by stream or by position, follow them live, verify.

    Thread-safe; with the SQLite backend, also safe to share between processes on one machine;
    with PostgreSQL, between processes on any number of machines.
    """

    def __init__(self, recorder: Recorder, *, registry: Registry = VOCABULARY,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be positive")
        self._recorder = recorder
        self._last_time: tuple[int, datetime] = (-1, _EPOCH)
        self.registry = registry
        self.max_event_bytes = max_event_bytes

    @property
    def url(self) -> str:
        """The URL the store was opened with."""
        return self._recorder.url

    @property
    def shared_across_processes(self) -> bool:
        """Whether other processes can append to and read this same log."""
        return self._recorder.shared_across_processes

    # -- writing ----------------------------------------------------------------------------

    def append(self, stream: str, events: Sequence[Event | NewEvent],
               expected_version: ExpectedVersion = ANY) -> AppendResult:
        """Append ``events`` to ``stream`` atomically: all of them are stored, or none.

        ``expected_version`` is the stream version the writer decided on (0 or ``NO_STREAM`` for a
        stream with no events) or ``ANY``; on a mismatch :class:`events.errors.ConcurrencyError`
        is raised and nothing is written. Appending events whose ids are all already stored (a
        retry) writes nothing and returns the original positions with ``duplicate=True``; see
        :func:`events.recorder.plan_append` for batches that mix stored and new ids. An unknown
        event type, a payload that does not fit its schema, an event over ``max_event_bytes``,
        a malformed stream name or an empty batch raises before anything is written.
        """
        return self._recorder.append(stream, expected_version, self._prepare(stream, events, expected_version))

    def append_many(
        self, requests: Sequence[tuple[str, Sequence[Event | NewEvent], ExpectedVersion]]
    ) -> list[AppendResult | CouncilError]:
        """Several appends ``(stream, events, expected_version)``, made durable together (a group commit).

        Each request is checked and decided on its own, in order, as :meth:`append` would: its
        result is an :class:`AppendResult`, or the :class:`events.errors.CouncilError` that refused
        it, in its place in the returned list; a refused request writes nothing. Accepted ones
        are stored in one transaction — one disk flush for all of them. If that transaction
        fails, this raises and none is stored.
        """
        results: list[AppendResult | CouncilError | None] = [None] * len(requests)
        accepted: list[int] = []
        batches: list[AppendRequest] = []
        for i, (stream, events, expected) in enumerate(requests):
            try:
                batches.append((stream, expected, self._prepare(stream, events, expected)))
                accepted.append(i)
            except CouncilError as exc:
                results[i] = exc
        if batches:
            for i, result in zip(accepted, self._recorder.append_many(batches), strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    def _prepare(self, stream: str, events: Sequence[Event | NewEvent],
                 expected: ExpectedVersion) -> list[EncodedEvent]:
        """Check an append's arguments and encode its events; raise before anything is written."""
        check_stream(stream)
        _check_expected(expected)
        if not events:
            raise InvalidAppend(f"the append to {stream!r} has no events; pass at least one")
        batch = self._encode(stream, events)
        if len({e[0] for e in batch}) != len(batch):
            raise InvalidAppend(f"the append to {stream!r} repeats an event id within the batch; each event needs "
                                "its own id")
        return batch

    def _encode(self, stream: str, events: Sequence[Event | NewEvent]) -> list[EncodedEvent]:
        kinds = {type(e) for e in events}
        if all(issubclass(kind, Event) for kind in kinds):  # plain events: fresh ids, no metadata
            names, versions, datas = self.registry.encode_many(events)  # type: ignore[arg-type]  # checked above
            fresh = event_id_bytes(len(datas))
            if max(map(len, datas)) + 2 > self.max_event_bytes:
                i = next(i for i, d in enumerate(datas) if len(d) + 2 > self.max_event_bytes)
                self._too_large(stream, i, names[i], len(datas[i]) + 2)
            return [(eid, name, version, b"{}", data)
                    for eid, name, version, data in zip(fresh, names, versions, datas, strict=True)]
        payloads, ids, metas = self._unwrap(stream, events)
        names, versions, datas = self.registry.encode_many(payloads)
        for i, (data, meta) in enumerate(zip(datas, metas, strict=True)):
            if len(data) + len(meta) > self.max_event_bytes:
                self._too_large(stream, i, names[i], len(data) + len(meta))
        new = iter(event_id_bytes(ids.count(None)))  # only plain events among them need an id
        return [(eid or next(new), name, version, meta, data)
                for eid, name, version, meta, data in zip(ids, names, versions, metas, datas, strict=True)]

    @staticmethod
    def _unwrap(stream: str, events: Sequence[Event | NewEvent]) -> tuple[list[Event], list[bytes | None], list[bytes]]:
        payloads: list[Event] = []
        ids: list[bytes | None] = []
        metas: list[bytes] = []
        for i, event in enumerate(events):
            if isinstance(event, NewEvent) and isinstance(event.payload, Event):
                payloads.append(event.payload)
                ids.append(event.event_id.bytes)
                metas.append(b"{}" if event.metadata is NO_METADATA else _METADATA.encode(event.metadata))
            elif isinstance(event, Event):
                payloads.append(event)
                ids.append(None)
                metas.append(b"{}")
            else:
                raise InvalidAppend(
                    f"item {i} of the append to {stream!r} is a {type(event).__name__}; pass Event or NewEvent "
                    "instances"
                )
        return payloads, ids, metas

    def _too_large(self, stream: str, index: int, name: str, size: int) -> None:
        raise EventTooLarge(
            f"event {index} of the append to {stream!r} ({name}) is {size:,} bytes, over the limit of "
            f"{self.max_event_bytes:,} (max_event_bytes); store large content elsewhere and reference it by digest"
        )

    # -- reading ----------------------------------------------------------------------------

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        """Events of ``stream`` from ``from_version`` (1-based, inclusive), in order; [] for an unknown stream."""
        check_stream(stream)
        _check_count("from_version", from_version, 1)
        _check_limit(limit)
        return [self._decode(r) for r in self._recorder.read_stream(stream, from_version, limit)]

    def read_all(self, from_position: int = 1, limit: int | None = None,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]:
        """Events from ``from_position`` (1-based, inclusive) in global order, at most ``limit``, only ``types`` if
        given."""
        _check_count("from_position", from_position, 1)
        _check_limit(limit)
        if types is not None:
            for t in types:
                self.registry.class_of(t)
        return [self._decode(r) for r in self._recorder.read_all(from_position, limit, types, None)]

    def head(self) -> int:
        """The position of the last stored event; 0 for an empty log."""
        return self._recorder.head()

    def wait_for(self, position: int, timeout: float) -> int:
        """Block until the log reaches ``position`` or ``timeout`` seconds pass; return the head then.

        Appends by this process wake the waiter at once; appends by other processes sharing the
        file are seen within the backend's poll interval (with PostgreSQL, at once: LISTEN/NOTIFY).
        """
        self._recorder.wait_for(position, max(0.0, timeout))
        return self._recorder.head()

    def subscribe(self, from_position: int = 1, types: Sequence[str] | None = None, *,
                  batch_size: int = 1000) -> Subscription:
        """Follow the log from ``from_position`` (inclusive): catch up, then receive new appends live.

        New appends by this process arrive at once; appends by other processes sharing the file
        arrive within the backend's poll interval. Iterating blocks until the subscription is
        closed; :meth:`Subscription.poll` waits at most a timeout.
        """
        _check_count("from_position", from_position, 1)
        if types is not None:
            for t in types:
                self.registry.class_of(t)
        return Subscription(self._recorder, self._decode, from_position, types, batch_size)

    def _decode(self, row: Row) -> RecordedEvent:
        position, stream, version, eid, name, schema, at_us, meta, data, digest = row
        last = self._last_time  # the events of one append share recorded_at: convert it once
        if last[0] != at_us:
            last = self._last_time = (at_us, _EPOCH + timedelta(microseconds=at_us))
        return RecordedEvent(
            position, stream, version, _uuid(_BIN16 + eid), name, schema, last[1],
            NO_METADATA if meta == b"{}" else _METADATA_DECODER.decode(meta),
            self.registry.decode(name, schema, data), digest,
        )

    # -- the ledger -------------------------------------------------------------------------

    def scan_rows(self, from_position: int = 1, until: int | None = None) -> Iterator[Row]:
        """The raw ledger rows (see :mod:`events.ledger`) from ``from_position`` to ``until``, streamed in order."""
        return self._recorder.scan(from_position, until)

    def verify(self) -> VerifyReport:
        """Re-derive every hash of the log and its Merkle root; report the first position that fails."""
        head = self.head()
        verifier = LedgerVerifier()
        try:
            verifier.feed(self._recorder.scan(1, head))  # stops at the first failure
        except CorruptLog as exc:  # the rows before the damage were fed; report the damage
            return verifier.report(head, broken=(exc.position, exc.problem))
        return verifier.report(head)

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        """The RFC 9162 leaf hashes of the first ``size`` events (all, by default): their stored hashes.

        Proofs are built from the stored hashes; :meth:`verify` is what checks them against the bytes.
        """
        size = self._check_size(size)
        return [r[9] for r in self.scan_rows(1, size)]

    def root(self, size: int | None = None) -> bytes:
        """The Merkle tree head (RFC 9162 MTH) over the first ``size`` events."""
        return merkle.root(self.leaf_hashes(size))

    def inclusion_proof(self, position: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of the event at ``position`` in the tree of the first ``size`` events."""
        size = self._check_size(size)
        if not 1 <= position <= size:
            raise LedgerError(f"position {position} is not in a tree of {size} events; pick 1..{size}")
        return merkle.inclusion_proof(position - 1, self.leaf_hashes(size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof that the tree of ``old_size`` events is a prefix of ``new_size``."""
        new_size = self._check_size(new_size)
        if not 1 <= old_size <= new_size:
            raise LedgerError(f"old size {old_size} must be between 1 and the new size {new_size}")
        return merkle.consistency_proof(old_size, self.leaf_hashes(new_size))

    def _check_size(self, size: int | None) -> int:
        head = self.head()
        if size is None:
            return head
        if not 0 <= size <= head:
            raise LedgerError(f"tree size {size} is beyond the log's head {head}")
        return size

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend; open subscriptions end."""
        self._recorder.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({self.url!r})"


def check_stream(stream: object) -> str:
    """Return ``stream`` if it is a valid stream name, else raise :class:`InvalidStreamName`."""
    if not isinstance(stream, str) or not _STREAM.match(stream):
        raise InvalidStreamName(
            f"stream name {stream!r} is not valid: use 1-200 characters of letters, digits and _ . : @ / + = -, "
            "starting with a letter, digit or _ (for example 'task-42' or 'agent:coder-1')"
        )
    return stream


def _check_expected(expected: object) -> None:
    if isinstance(expected, Expect):
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InvalidAppend(f"expected_version {expected!r} is not valid: give a version >= 0, NO_STREAM or ANY")


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidAppend(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_limit(limit: object) -> None:
    if limit is not None:
        _check_count("limit", limit, 0)
