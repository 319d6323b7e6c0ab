"""The small contract every storage backend implements, and the append rules they all share.

A backend (a *recorder*) stores rows and hands them back; it knows nothing of event classes.
Encoding, validation and decoding happen once, above it, in :class:`events.store.EventStore`.
The rules of an append — expected versions, idempotent retries, positions, the ledger chain —
are decided here by :func:`plan_append` and :func:`new_rows`, so every backend applies them
identically and only has to supply the I/O around them.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import msgspec

from events.envelope import ANY, NO_STREAM, AppendResult, ExpectedVersion
from events.errors import ConcurrencyError, IdempotencyConflict, StoreError
from events.ledger import Row, chain

EncodedEvent = tuple[bytes, str, int, bytes, bytes]
"""A validated event ready to store: ``(event_id, type, schema_version, metadata bytes, payload bytes)``.

A plain tuple, not a class: one is built per event on the append path, where every allocation shows."""

_SCAN_PAGE = 5000

AppendRequest = tuple[str, ExpectedVersion, Sequence[EncodedEvent]]
"""One append of a group: stream, expected version, batch."""


class Stored(msgspec.Struct, frozen=True, array_like=True):
    """What a backend reports of an event id that is already stored."""

    position: int
    stream: str
    stream_version: int
    type: str
    payload: bytes


class Recorder(abc.ABC):
    """Durable, append-only storage of ledger rows (see :mod:`events.ledger` for the columns).

    Invariants every backend keeps:

    * ``append`` is atomic: the whole batch is stored, or nothing is.
    * Positions are assigned by the backend, 1-based and gap-free, in commit order: once a
      reader can see position ``n``, it can see every position below ``n``. Readers and
      subscriptions depend on this to never skip an event.
    * Nothing stored is ever updated or deleted.
    """

    url: str
    """Where the rows live, as given to :func:`events.store.open_store`."""

    shared_across_processes: bool = False
    """Whether other processes can append to and read the same log."""

    def append(self, stream: str, expected: ExpectedVersion, batch: Sequence[EncodedEvent]) -> AppendResult:
        """Store ``batch`` at the end of ``stream`` under the rules of :func:`plan_append`; raise if refused."""
        result = self.append_many([(stream, expected, batch)])[0]
        if isinstance(result, StoreError):
            raise result
        return result

    @abc.abstractmethod
    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | StoreError]:
        """Store several appends in one durable transaction (a group commit).

        Each request is decided on its own, in order, seeing the ones before it: its result is an
        :class:`AppendResult` or the error that refused it (:class:`ConcurrencyError`,
        :class:`IdempotencyConflict`), and a refused request writes nothing. The accepted ones
        are durable together when this returns; if the transaction itself fails, this raises and
        none of them is stored.
        """

    @abc.abstractmethod
    def read_stream(self, stream: str, from_version: int, limit: int | None) -> list[Row]:
        """Rows of ``stream`` from ``from_version`` (inclusive), in version order."""

    @abc.abstractmethod
    def read_all(
        self, from_position: int, limit: int | None, types: Sequence[str] | None, until: int | None
    ) -> list[Row]:
        """Rows from ``from_position`` to ``until`` (both inclusive), in position order, of ``types`` if given."""

    def scan(self, from_position: int, until: int | None) -> Iterator[Row]:
        """Rows from ``from_position`` to ``until`` (inclusive), in order, for long sequential reads.

        Backends override this when they can stream more cheaply than repeated :meth:`read_all`.
        """
        position = from_position
        while True:
            rows = self.read_all(position, _SCAN_PAGE, None, until)
            yield from rows
            if len(rows) < _SCAN_PAGE:
                return
            position = rows[-1][0] + 1

    @abc.abstractmethod
    def head(self) -> int:
        """The last stored position; 0 when the log is empty."""

    @abc.abstractmethod
    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until ``head() >= position`` or ``timeout`` seconds pass; say whether it was reached."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; later calls raise :class:`events.errors.StoreClosed`."""


def plan_append(
    stream: str,
    expected: ExpectedVersion,
    batch: Sequence[EncodedEvent],
    current_version: int,
    stored: Mapping[bytes, Stored],
) -> AppendResult | None:
    """Decide an append inside the backend's write transaction.

    ``current_version`` is the stream's version and ``stored`` holds the batch's event ids that
    are already in the log. Returns the original :class:`AppendResult` when the batch is a retry
    (nothing is to be written), ``None`` when the batch is to be written, or raises.

    Retries: an append whose every event id is stored, each in ``stream`` with the same type and
    payload bytes, is a retry of an append that succeeded; it returns the original positions and
    is not checked against ``expected`` (the first attempt was). A batch that mixes stored and
    new ids, or reuses an id for different content, cannot be a retry — appends are atomic, so a
    batch is all stored or not at all — and raises :class:`IdempotencyConflict`, writing nothing.
    """
    if stored:
        if len(stored) != len(batch):
            raise IdempotencyConflict(
                f"the append to {stream!r} mixes {len(stored)} event id(s) that are already stored with "
                f"{len(batch) - len(stored)} new one(s); nothing was written. A retry must resend exactly the "
                "original batch with its original ids; new events need new ids"
            )
        for event_id, type_, _, _, payload in batch:
            old = stored[event_id]
            if old.stream != stream or old.type != type_ or old.payload != payload:
                raise IdempotencyConflict(
                    f"event id {event_id.hex()} is already stored at position {old.position} "
                    f"({old.type} in stream {old.stream!r}) with different content; nothing was written. "
                    "Give a new event a new id"
                )
        last = stored[batch[-1][0]]
        return AppendResult(tuple(stored[e[0]].position for e in batch), last.stream_version, True)
    if expected is ANY:
        return None
    want = 0 if expected is NO_STREAM else expected
    if want != current_version:
        raise ConcurrencyError(stream, expected, current_version)
    return None


class Sealed(NamedTuple):
    """A batch placed after the log's head: where it goes, when, and each event's ledger hash."""

    stream: str
    first_position: int
    first_version: int
    recorded_at: int
    hashes: list[bytes]
    events: list[tuple[object, ...]]
    """Each event as ``(id, type, schema version, metadata, payload, hash)``."""

    def rows(self, batch: Sequence[EncodedEvent]) -> list[Row]:
        """The ledger rows of ``batch`` (the batch this was sealed from)."""
        p, v, at, s = self.first_position, self.first_version, self.recorded_at, self.stream
        return [(p + i, s, v + i, eid, t, sv, at, meta, data, h)
                for i, ((eid, t, sv, meta, data), h) in enumerate(zip(batch, self.hashes, strict=True))]

    def result(self) -> AppendResult:
        """The :class:`AppendResult` of writing the batch."""
        n = len(self.hashes)
        return AppendResult(tuple(range(self.first_position, self.first_position + n)), self.first_version + n - 1)


def seal_batch(
    stream: str,
    batch: Sequence[EncodedEvent],
    current_version: int,
    head_position: int,
    head_hash: bytes,
    head_recorded_at: int,
) -> Sealed:
    """Place ``batch`` after the log's head (position, hash, recorded_at) and hash it into the chain.

    ``recorded_at`` never goes backwards along positions, even if the wall clock does.
    """
    now = max(time.time_ns() // 1000, head_recorded_at)
    first = head_position + 1
    return Sealed(stream, first, current_version + 1, now,
                  *chain(head_hash, stream, first, current_version + 1, now, batch))
