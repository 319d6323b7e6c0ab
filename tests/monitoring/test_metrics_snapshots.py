"""The exporter's snapshots over random logs: recovery from a snapshot plus the tail folds the same counters as a full
replay, byte for byte, and publishes the same exposition text; a snapshot that cannot be believed falls back to the
replay; only changes call for one."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from random_logs import Upto, write_random_log
from snapshot_fallbacks import FALLBACKS, SnapshottingActor, falls_back
from test_model_metrics import CLAUDE, GPT, completed, failed, requested

from actors.snapshots import SnapshotInvalid, Snapshots, SnapshotSettings
from events import ANY, EventStore, open_store, streams
from events.blobs import BlobStore
from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActionDenied,
    AgentRestarted,
    AlertRaised,
    ApprovalGranted,
    ApprovalRequested,
    Budget,
    CheckpointSigned,
    Confinement,
    ModelAnswerRepaired,
    SnapshotTaken,
)
from events.streams import snapshot as snapshot_stream
from monitoring import metrics_snapshot
from monitoring.metrics import CouncilCollector, LogMetrics

BOX = Confinement(sandbox="bubblewrap", cpu_s=60, wall_time_s=60.0, address_space=1 << 30, processes=64,
                  file_size=1 << 20, open_files=64)
OFF = msgspec.structs.replace(BOX, sandbox="off")


def _approval(aid: str) -> ApprovalRequested:
    from governance import approvals
    from governance.motions import policy_change_spec

    spec = policy_change_spec("a" * 64, "b" * 64, "c" * 32, 2e9)
    return ApprovalRequested(approval_id=aid, digest=approvals.spec_digest(spec), spec=spec, needed=1,
                             approvers={"alice": "d" * 32}, rule="r")


def random_log(seed: int) -> EventStore:
    """Task lifecycles (:func:`random_logs.write_random_log`) interleaved with what else the exporter counts: the gate's
    decisions, actions completing under sandboxes, approvals, alerts, restarts, model calls, and the log's
    bookkeeping (checkpoints, snapshots)."""
    store = open_store("memory://")
    write_random_log(store, tasks=60, agents=4, requests=4, seed=seed)
    rng = random.Random(seed)
    for i in range(300):
        k, model = f"k{rng.randrange(20)}", rng.choice((GPT, CLAUDE))
        action = rng.choice(("file.write", "command.run", "deploy"))
        event = rng.choice((
            requested(k, model, attempt=rng.choice((1, 2))),
            failed(k, model, rng.choice(("timeout", "rate_limited")), cost=rng.random() / 100,
                   transient=rng.random() < 0.7),
            completed(k, model, answered_by=model.split(":")[1], cost=rng.random() / 10,
                      tokens=(rng.randrange(2000), rng.randrange(300)), latency_s=rng.random() * 20),
            ModelAnswerRepaired(task_id="t1", key=k, error="x", repair=1, model=model, provider=model.split(":")[0]),
            ActionAuthorized(warrant_id=f"w{i % 9}", agent_id="a1", key=f"a{i % 13}", action=action, target="x",
                             digest="1" * 64, policy_hash="2" * 64, rule="r", cost=Budget(actions=1)),
            ActionCompleted(warrant_id=f"w{i % 9}", key=f"a{rng.randrange(13)}", ok=True,
                            cost=Budget(wall_time_s=rng.random() * 5),
                            confinement=BOX if rng.random() < 0.3 else OFF if rng.random() < 0.5 else None,
                            limits_hit=rng.choice(([], ["cpu"], ["wall_time", "processes"]))),
            ActionDenied(warrant_id=f"w{i % 9}", agent_id="a1", action=action, target="x", key=f"d{i}", reason="no"),
            _approval(f"ap{i % 5}"),
            ApprovalGranted(approval_id=f"ap{rng.randrange(5)}", digest="e" * 64, keys=["d" * 32]),
            AlertRaised(key=f"al{i}", source="test", summary="s", severity=rng.choice(("warning", "critical"))),
            AgentRestarted(agent_id=f"a{rng.randrange(4)}", epoch=i + 2),
            CheckpointSigned(tree_size=store.head(), root=b"\0" * 32, at=1e9 + i, origin=b"\1" * 32,
                             signature=b"\2" * 64, key="f" * 32),
            SnapshotTaken(actor="dispatcher", position=store.head(), schema="dispatch", version=3, digest="0" * 64,
                          size=1),
        ))
        store.append(f"x-{rng.randrange(40)}", [event], ANY)
    return store


def replayed(store: EventStore) -> LogMetrics:
    m = LogMetrics()
    m.advance(store)
    return m


def exposition(m: LogMetrics) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CouncilCollector(m, lambda: m.position, None))
    return generate_latest(registry)


def test_recovery_from_a_snapshot_and_the_tail_is_the_full_replay_over_random_logs(tmp_path: Path) -> None:
    proved = 0
    for seed in range(6):
        store = random_log(seed)
        head = store.head()
        for cut in (1, head // 3, head // 2, head - 5, head):
            blobs = BlobStore(tmp_path / f"blobs-{seed}-{cut}")
            at = LogMetrics()
            at.advance(Upto(store, cut))
            assert Snapshots("exporter", blobs).take(at, store) is not None
            recovered = LogMetrics()
            recovery = Snapshots("exporter", blobs).recover(recovered, store)
            assert recovery.snapshot_position == cut and not recovery.fallback
            full = replayed(store)
            assert recovered.encode_state() == full.encode_state()
            text = exposition(recovered)
            assert text == exposition(full)
            proved += 1
        assert b'council_model_calls_total{model="gpt-test",outcome="completed",provider="openai"}' in text
        assert b'council_command_limits_hit_total{limit="cpu"}' in text
        assert b"council_approvals_waiting" in text and b'council_events_total{type="snapshot.taken"}' in text
    assert proved == 30


@pytest.mark.parametrize("case", FALLBACKS)
def test_a_snapshot_that_cannot_be_believed_falls_back_to_the_replay(case: str, tmp_path: Path) -> None:
    falls_back(SnapshottingActor("exporter", "exporter", random_log(1), LogMetrics), case, tmp_path)


def test_a_snapshot_of_another_shape_or_position_is_refused_and_changes_nothing() -> None:
    full = replayed(random_log(2))
    data = full.encode_state()
    snap = msgspec.msgpack.decode(data, type=metrics_snapshot.MetricsSnapshot)
    fresh = LogMetrics()
    for bad, position, match in (
            (msgspec.msgpack.encode(msgspec.structs.replace(snap, shape="0" * 16)), full.position, "shape"),
            (data, full.position + 1, "position"),
            (msgspec.msgpack.encode(msgspec.structs.replace(snap, duration_buckets=[1, 2])), full.position, "buckets"),
    ):
        with pytest.raises(SnapshotInvalid, match=match):
            fresh.restore_state(bad, position, 1)
    assert fresh.encode_state() == LogMetrics().encode_state()


def test_only_changes_call_for_an_exporter_snapshot_not_checkpoints_or_snapshots(tmp_path: Path) -> None:
    store = open_store("memory://")
    store.append(streams.ALERTS, [AlertRaised(key="a", source="test", summary="a change")])
    clock = [1000.0]
    snaps = Snapshots("exporter", BlobStore(tmp_path / "blobs"), SnapshotSettings(quiet_seconds=1, every_seconds=5),
                      clock=lambda: clock[0])
    m = LogMetrics()
    snaps.recover(m, store)
    for i in range(5):
        store.append(streams.CHECKPOINTS, [CheckpointSigned(tree_size=store.head(), root=b"\0" * 32, at=1e9 + i,
                                                            origin=b"\1" * 32, signature=b"\2" * 64, key="f" * 32)])
        store.append(snapshot_stream("council"), [SnapshotTaken(actor="council", position=store.head(),
                                                                 schema="council", version=1, digest="0" * 64,
                                                                 size=1)])
        m.advance(store)
        clock[0] += 100
        assert snaps.maybe_take(m, store) is None
    assert m.events["checkpoint.signed"] == 5  # counted all the same
    store.append(streams.ALERTS, [AlertRaised(key="b", source="test", summary="a change")])
    m.advance(store)
    assert snaps.maybe_take(m, store) is not None
