"""The error detector's snapshots over random logs: recovery from a snapshot plus the tail is the full replay's fold
and decides the same; a snapshot that cannot be believed falls back to the replay."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from random_logs import Upto, write_random_log
from snapshot_fallbacks import FALLBACKS, SnapshottingActor, falls_back

from actors.snapshots import Snapshots
from events import EventStore, open_store
from events.blobs import BlobStore
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


@pytest.mark.parametrize("case", FALLBACKS)
def test_a_snapshot_that_cannot_be_believed_falls_back_to_the_replay(case: str, tmp_path: Path) -> None:
    falls_back(SnapshottingActor("error-detector", "error detector", random_log(3), lambda: ErrorDetector(SETTINGS)),
               case, tmp_path)
