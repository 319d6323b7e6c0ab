"""The error detector's state as snapshot bytes, and back (the hooks of :class:`actors.snapshots.Snapshotting`).

Everything :class:`monitoring.errors.ErrorDetector` folds is encoded (its settings are not: they
come from the team file, as on a full replay). The encoding is canonical (sets and dict keys
sorted); nothing the detector decides depends on a mapping's order (it sorts what it walks), and
the rate windows are deques kept in arrival order as lists. Raise :data:`VERSION` whenever a
field is added, removed or changes meaning.
"""

from __future__ import annotations

from collections import deque

import msgspec

from actors.snapshots import opened
from monitoring.errors import DeadLetter, ErrorDetector

SCHEMA = ErrorDetector.snapshot_schema
VERSION = ErrorDetector.snapshot_version


class DetectorSnapshot(msgspec.Struct, array_like=True):
    """One error detector's fold, encoded (msgpack)."""

    position: int
    fixers: list[str]
    failures: list[float]
    restarts: list[float]
    dead: list[DeadLetter]
    requeued: list[str]
    alerted: dict[str, float]
    capabilities: dict[str, str]
    queued: dict[str, float]
    failed: dict[str, list[str]]


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(DetectorSnapshot)


def encode(d: ErrorDetector) -> bytes:
    """``d``'s fold as bytes :func:`restore` reads back."""
    return _encoder.encode(DetectorSnapshot(d.position, sorted(d.fixers), list(d.failures), list(d.restarts),
                                            [d.dead[t] for t in sorted(d.dead)], sorted(d.requeued), d.alerted,
                                            d.capabilities, d.queued, d.failed))


def restore(d: ErrorDetector, data: bytes, position: int, version: int) -> None:
    """Make ``d``'s fold the one ``data`` encodes; :class:`SnapshotInvalid` (``d`` unchanged) if it cannot."""
    snap = opened(data, _decoder, what="error detector", version=version, writes=VERSION, position=position)
    d.position, d.fixers = snap.position, set(snap.fixers)
    d.failures, d.restarts = deque(snap.failures), deque(snap.restarts)
    d.dead = {dead.task_id: dead for dead in snap.dead}
    d.requeued, d.alerted, d.capabilities = set(snap.requeued), snap.alerted, snap.capabilities
    d.queued, d.failed = snap.queued, snap.failed
