"""The tamper-evident ledger over the log.

Every stored event is a row of ten columns, in this order::

    position, stream, stream_version, event_id (16 bytes), type, schema_version,
    recorded_at (UTC microseconds since the epoch), metadata (bytes), payload (bytes), hash

Its *canonical bytes* are the MessagePack encoding of one array: the first nine columns followed
by the previous event's ``hash`` (32 zero bytes before position 1). Its ``hash`` is RFC 9162's
leaf hash of those bytes, ``SHA-256(0x00 || canonical bytes)``. So one hash per event does two
jobs:

* it **chains**: each hash covers the one before it, so changing, removing or moving any event
  breaks every hash from there on;
* it is the event's **Merkle leaf**: the log is the RFC 9162 Merkle tree over the stored hashes
  in position order, with inclusion and consistency proofs (:mod:`events.merkle`). A proof for
  an event needs its canonical bytes, which include its predecessor's hash.

The hashes cover the stored bytes as they are, never a re-encoding, so verifying needs no
knowledge of event schemas and survives any schema change. Because the canonical bytes include
the position, moving an event changes its hash. What the chain cannot show alone — a log
rewritten wholesale with every hash recomputed, or cut off at the end — is caught by signed
checkpoints of the Merkle root.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence

import msgspec

from events.merkle import CompactRange, leaf_hash

Row = tuple[int, str, int, bytes, str, int, int, bytes, bytes, bytes]
"""A stored event's columns, in the order above."""

GENESIS = bytes(32)
"""The chain hash 'before' position 1."""

_msgpack = msgspec.msgpack.Encoder()
_sha256 = hashlib.sha256


def canonical_bytes(row: Sequence[object], previous_hash: bytes) -> bytes:
    """The bytes this event's hash is computed from: its first nine columns and ``previous_hash``."""
    return _msgpack.encode((*row[:9], previous_hash))


def event_hash(row: Sequence[object], previous_hash: bytes) -> bytes:
    """The hash an event must carry after one whose hash is ``previous_hash`` (its RFC 9162 leaf hash)."""
    return leaf_hash(_msgpack.encode((*row[:9], previous_hash)))


def chain(previous_hash: bytes, stream: str, first_position: int, first_version: int, recorded_at: int,
          batch: Iterable[tuple[bytes, str, int, bytes, bytes]]) -> tuple[list[bytes], list[tuple[object, ...]]]:
    """Hash ``batch`` (id, type, schema version, metadata, payload) into the chain after ``previous_hash``.

    The batch takes consecutive positions from ``first_position`` and stream versions from
    ``first_version``; every event has the same ``recorded_at``. Returns each event's hash, and
    each event as ``(id, type, schema version, metadata, payload, hash)``: what a backend stores
    beside the batch's stream, positions and time.
    """
    hashes: list[bytes] = []
    sealed: list[tuple[object, ...]] = []
    prev = previous_hash
    encode, sha256, keep_hash, keep_event = _msgpack.encode, _sha256, hashes.append, sealed.append
    for (event_id, type_, schema, metadata, payload), position, version in zip(
        batch, itertools.count(first_position), itertools.count(first_version)
    ):
        prev = sha256(b"\x00" + encode((position, stream, version, event_id, type_, schema, recorded_at,
                                        metadata, payload, prev))).digest()
        keep_hash(prev)
        keep_event((event_id, type_, schema, metadata, payload, prev))
    return hashes, sealed


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of re-deriving every hash of a log.

    ``checked`` events were intact; when ``ok`` is false, ``failed_position`` is the first
    position that fails and ``problem`` says how.
    """

    ok: bool
    checked: int
    head: int
    root: bytes
    failed_position: int | None = None
    problem: str | None = None


class LedgerVerifier:
    """Re-derives the chain and the Merkle root over rows fed to it in position order."""

    def __init__(self) -> None:
        self._next = 1
        self._prev = GENESIS
        self._tree = CompactRange()
        self._versions: dict[str, int] = {}
        self.failure: tuple[int, str] | None = None

    def feed(self, rows: Iterable[Sequence[object]]) -> bool:
        """Check ``rows``; return False (and stop checking) at the first failure."""
        if self.failure:
            return False
        for row in rows:
            position, stream, version = row[0], str(row[1]), row[2]
            if position != self._next:
                return self._fail(self._next, f"position {self._next} is missing (the next stored is {position})")
            expected = event_hash(row, self._prev)
            if row[9] != expected:
                return self._fail(position, "its bytes or its predecessor's do not match the stored hash")
            want = self._versions.get(stream, 0) + 1
            if version != want:
                return self._fail(position, f"stream {stream!r} version {version} where {want} was due")
            self._versions[stream] = want
            self._tree.append(expected)
            self._prev = expected
            self._next += 1
        return True

    def report(self, head: int, broken: tuple[int, str] | None = None) -> VerifyReport:
        """The summary after the last :meth:`feed`; ``head`` is the store's head position.

        ``broken`` is a position and problem the backend met while reading rows after those fed.
        """
        if broken is not None and self.failure is None:
            self._fail(min(broken[0], self._next), broken[1])
        checked = self._next - 1
        if self.failure is None and checked != head:
            self._fail(checked + 1, f"the store's head is {head} but only {checked} events could be read")
        if self.failure:
            pos, problem = self.failure
            return VerifyReport(ok=False, checked=pos - 1, head=head, root=self._tree.root(), failed_position=pos,
                                problem=problem)
        return VerifyReport(ok=True, checked=checked, head=head, root=self._tree.root())

    def _fail(self, position: int, problem: str) -> bool:
        self.failure = (position, problem)
        return False
