"""Every snapshotting actor's process on one log, after a burst of work, on a clock the test moves: each writes one
snapshot and the council one checkpoint, and then nobody writes anything — no actor's snapshot or checkpoint calls
for another's (the Ray-free counterpart of the idle council's minute in ``tests/cluster``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from actors import names
from actors.council_actor import CouncilProcess
from actors.dispatch import Dispatch
from actors.follow import Follower, Process
from actors.snapshots import Snapshots, SnapshotSettings
from events import open_store, streams
from events.blobs import BlobStore
from events.catalogue import AgentRegistered, AlertRaised
from governance.keys import Keyring
from monitoring.errors import DetectorSettings, ErrorDetector
from monitoring.health import HealthMonitor, HealthSettings
from monitoring.metrics import LogMetrics


def test_after_a_burst_every_actor_snapshots_once_and_then_the_log_stays_still(tmp_path: Path) -> None:
    store, blobs = open_store("memory://"), BlobStore(tmp_path / "blobs")
    keyring = Keyring(tmp_path / "keys")
    keyring.new("council")
    key = keyring.signer("council")
    now = [1_000_000.0]
    settings = SnapshotSettings(every_events=10_000, every_seconds=60, quiet_seconds=2)
    processes: dict[str, Process] = {
        names.DISPATCHER: Dispatch(started_at=now[0]), names.COUNCIL: CouncilProcess(key, 10.0),
        names.DETECTOR: ErrorDetector(DetectorSettings()), names.EXPORTER: LogMetrics(),
        names.HEALTH: HealthMonitor([names.STORE], HealthSettings()),
    }
    followers = []
    for name, process in processes.items():
        snaps = Snapshots(name, blobs, settings, clock=lambda: now[0])
        snaps.recover(process, store)  # type: ignore[arg-type]
        followers.append(Follower(process, store, clock=lambda: now[0],
                                  after_round=lambda s=snaps, p=process: s.maybe_take(p, store)))  # type: ignore[misc]
    store.append(streams.agent("a1"), [AgentRegistered(agent_id="a1", role="coder", capabilities=["x"], slots=1)])
    for i in range(10):
        store.append(streams.ALERTS, [AlertRaised(key=f"k{i}", source="test", summary="work")])
    burst = store.head()
    settled_at = None
    for tick in range(600):  # five minutes, a round of every actor each half second
        now[0] += 0.5
        before = store.head()
        for follower in followers:
            follower.step(now[0])
        if store.head() != before:
            settled_at = tick
    written = Counter(e.type for e in store.read_all(burst + 1, None))
    snapshots = Counter(e.stream for e in store.read_all(burst + 1, None) if e.type == "snapshot.taken")
    assert snapshots == {f"snapshot-{name}": 1 for name in processes if name != names.HEALTH}, snapshots
    assert written == {"snapshot.taken": 4, "checkpoint.signed": 1}, written
    assert settled_at is not None and settled_at * 0.5 < 30, settled_at  # and nothing after, for minutes
