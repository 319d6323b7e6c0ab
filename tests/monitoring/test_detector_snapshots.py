"""The error detector's snapshots over random logs: recovery from a snapshot plus the tail is the full replay's fold
and decides the same; a corrupt or newer snapshot falls back to the replay."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from random_logs import Upto, write_random_log

from actors.snapshots import Snapshots
from events import EventStore, open_store
from events.blobs import BlobStore
from events.catalogue import SnapshotTaken
from events.envelope import ANY
from events.streams import snapshot as snapshot_stream
from monitoring.errors import DetectorSettings, ErrorDetector

SETTINGS = DetectorSettings()


def random_log(seed: int) -> EventStore:
    store = open_store("memory://")
    write_random_log(store, tasks=150, agents=6, requests=8, seed=seed)
    return store


def replayed(store: EventStore) -> ErrorDetector:
    d = ErrorDetector(SETTINGS)
    d.advance(store)
    return d


def decisions(d: ErrorDetector, now: float) -> list[tuple[str, list[bytes], object]]:
    """What ``d`` decides at ``now``, with the ids it makes up left out (so two detectors' decisions compare)."""
    out = []
    for i in d.decide(now):
        events = [msgspec.json.encode({k: v for k, v in msgspec.to_builtins(e).items() if not k.endswith("_id")
                                       or k == "task_id"}) for e in i.events]
        out.append((i.stream if not i.stream.startswith("task-fix") else "task-fix", events, i.expected))
    return out


def test_recovery_from_a_snapshot_and_the_tail_is_the_full_replay_over_random_logs(tmp_path: Path) -> None:
    proved = acted = 0
    for seed in range(12):
        store = random_log(seed)
        head = store.head()
        blobs = BlobStore(tmp_path / f"blobs-{seed}")
        for cut in (1, head // 3, head // 2, head - 5, head):
            at = ErrorDetector(SETTINGS)
            at.advance(Upto(store, cut))
            assert Snapshots("error-detector", blobs).take(at, store) is not None
            recovered = ErrorDetector(SETTINGS)
            recovery = Snapshots("error-detector", blobs).recover(recovered, store)
            assert recovery.snapshot_position == min(cut, at.position) and not recovery.fallback
            full = replayed(store)
            assert recovered.encode_state() == full.encode_state()
            now = time.time() + 120
            mine = decisions(recovered, now)
            assert mine == decisions(full, now)
            acted += len(mine)
            proved += 1
    assert proved == 60 and acted > 100, (proved, acted)


def test_a_corrupt_or_newer_snapshot_falls_back_to_the_replay(tmp_path: Path) -> None:
    store, blobs = random_log(3), BlobStore(tmp_path / "blobs")
    taken = Snapshots("error-detector", blobs).take(replayed(store), store)
    assert taken is not None
    store.append(snapshot_stream("error-detector"), [SnapshotTaken(
        actor="error-detector", position=store.head(), schema="error-detector", version=2, digest=taken.digest,
        size=taken.size)], ANY)
    blobs.path(taken.digest).write_bytes(b"\x90")
    d = ErrorDetector(SETTINGS)
    recovery = Snapshots("error-detector", blobs).recover(d, store)
    assert not recovery.from_snapshot and "newer release" in recovery.fallback and "altered" in recovery.fallback
    assert d.encode_state() == replayed(store).encode_state()
