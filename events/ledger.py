"""The tamper-evident ledger over the log.

Every stored event is a row of ten columns, in this order::

    position, stream, stream_version, event_id (16 bytes), type, schema_version,
    recorded_at (UTC microseconds since the epoch), metadata (bytes), payload (bytes), hash

Its *canonical bytes* are the MessagePack encoding of the first nine columns as one array. From
them:

* the **leaf hash** is RFC 9162's ``SHA-256(0x00 || canonical bytes)``, and the log is the
  RFC 9162 Merkle tree over the leaf hashes in position order;
* the **chain hash**, stored in the ``hash`` column, is ``SHA-256(previous chain hash ||
  leaf hash)``, starting from 32 zero bytes before position 1.

The hashes cover the stored bytes as they are, never a re-encoding, so verifying needs no
knowledge of event schemas and survives any schema change. Because the canonical bytes include
the position, moving an event changes its hash; because each chain hash includes the one before,
changing or removing any event breaks every hash after it. What the chain cannot show alone — a
log rewritten wholesale with every hash recomputed, or cut off at the end — is caught by signed
checkpoints of the Merkle root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from events.merkle import CompactRange, leaf_hash

Row = tuple[int, str, int, bytes, str, int, int, bytes, bytes, bytes]
"""A stored event's columns, in the order above."""

GENESIS = bytes(32)
"""The chain hash 'before' position 1."""

_msgpack = msgspec.msgpack.Encoder()
_sha256 = hashlib.sha256


def canonical_bytes(row: Sequence[object]) -> bytes:
    """The bytes every hash of this event is computed from (the row's first nine columns)."""
    return _msgpack.encode(tuple(row[:9]))


def event_leaf_hash(row: Sequence[object]) -> bytes:
    """The event's RFC 9162 leaf hash."""
    return leaf_hash(canonical_bytes(row))


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """The chain hash of an event whose leaf hash is ``leaf`` after one whose chain hash is ``previous``."""
    return _sha256(previous + leaf).digest()


def seal(
    previous_hash: bytes, unsealed: Iterable[tuple[int, str, int, bytes, str, int, int, bytes, bytes]]
) -> list[Row]:
    """Append the chain hash to each of a run of consecutive unsealed rows that follows ``previous_hash``."""
    rows: list[Row] = []
    prev = previous_hash
    for cols in unsealed:
        prev = _sha256(prev + leaf_hash(_msgpack.encode(cols))).digest()
        rows.append((*cols, prev))
    return rows


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
            position, stream, version = row[0], row[1], row[2]
            if position != self._next:
                return self._fail(self._next, f"position {self._next} is missing (the next stored is {position})")
            leaf = event_leaf_hash(row)
            expected = _sha256(self._prev + leaf).digest()
            if row[9] != expected:
                return self._fail(position, "its bytes or its predecessor's do not match the stored hash")
            want = self._versions.get(stream, 0) + 1  # type: ignore[arg-type]
            if version != want:
                return self._fail(position, f"stream {stream!r} version {version} where {want} was due")
            self._versions[stream] = want  # type: ignore[index]
            self._tree.append(leaf)
            self._prev = expected
            self._next += 1
        return True

    def report(self, head: int) -> VerifyReport:
        """The summary after the last :meth:`feed`; ``head`` is the store's head position."""
        checked = self._next - 1
        if self.failure is None and checked != head:
            self._fail(checked + 1, f"the store's head is {head} but only {checked} events could be read")
        if self.failure:
            pos, problem = self.failure
            return VerifyReport(ok=False, checked=pos - 1, head=head, root=self._tree.root(), failed_position=pos, problem=problem)
        return VerifyReport(ok=True, checked=checked, head=head, root=self._tree.root())

    def _fail(self, position: int, problem: str) -> bool:
        self.failure = (position, problem)
        return False
