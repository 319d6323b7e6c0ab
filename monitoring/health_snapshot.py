"""The health monitor's fold as snapshot bytes, and back (the hooks of :class:`actors.snapshots.Snapshotting`).

What :class:`monitoring.health.HealthMonitor` folds from the log, and only that, is encoded: for each
watched actor, the failures charged to its restart budget (in log order), the restarts the log
records, and whether it was retired. What the pings saw — process ids, busy and progress times,
suspicions, restarts under way — is an observation, not a fact of the log, and is seen again after a
restart, as after a full replay. Failures the monitor already dropped from a budget window are not in
the snapshot; the clock only moves on, so they would never count again, and every decision is the
replay's.

The fold depends on which actors are watched (a failure of an actor not watched is not charged), so
the snapshot names them, and one that did not watch an actor watched now is refused (the replay
charges what it missed). Actors it watched that are not watched now are dropped, as the replay
would. Never pickle: only these types are decoded. Raise :data:`VERSION` whenever a field is added,
removed or changes meaning.
"""

from __future__ import annotations

import msgspec

from actors.snapshots import SnapshotInvalid, opened
from monitoring.health import HealthMonitor

SCHEMA = HealthMonitor.snapshot_schema
VERSION = HealthMonitor.snapshot_version


class PatientSnapshot(msgspec.Struct, array_like=True):
    """What the log says of one watched actor."""

    name: str
    failures: list[float]
    restarts: int
    retired: bool


class HealthSnapshot(msgspec.Struct, array_like=True):
    """One health monitor's fold, encoded (msgpack)."""

    position: int
    patients: list[PatientSnapshot]
    """Every watched actor, by name."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(HealthSnapshot)


def encode(monitor: HealthMonitor) -> bytes:
    """``monitor``'s fold as bytes :func:`restore` reads back."""
    patients = [PatientSnapshot(name, list(p.failures), p.restarts, p.retired)
                for name, p in sorted(monitor.book.patients.items())]
    return _encoder.encode(HealthSnapshot(monitor.position, patients))


def restore(monitor: HealthMonitor, data: bytes, position: int, version: int) -> None:
    """Make ``monitor``'s fold the one ``data`` encodes; :class:`SnapshotInvalid` (``monitor`` unchanged) if it
    cannot — also when it watches an actor the snapshot's monitor did not."""
    snap = opened(data, _decoder, what="health monitor", version=version, writes=VERSION, position=position)
    known = {p.name: p for p in snap.patients}
    new = sorted(set(monitor.book.patients) - set(known))
    if new:
        raise SnapshotInvalid(f"it was taken by a monitor that did not watch {', '.join(new)}, which this one "
                              "watches: their failures are charged by the replay")
    for name, patient in monitor.book.patients.items():
        saved = known[name]
        patient.failures, patient.restarts, patient.retired = list(saved.failures), saved.restarts, saved.retired
    monitor.position = snap.position
