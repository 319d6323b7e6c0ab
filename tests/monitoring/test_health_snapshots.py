"""The health monitor's snapshots over random logs of its records: recovery from a snapshot plus the tail charges the
same budgets, knows the same retirements and decides the same as a full replay — also when the snapshot was taken
after failures left the budget window; a snapshot that cannot be believed, or that did not watch an actor watched now,
falls back to the replay."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from random_logs import Upto
from snapshot_fallbacks import FALLBACKS, SnapshottingActor, falls_back

from actors.snapshots import Snapshots, SnapshotSettings
from events import ANY, EventStore, open_store, streams
from events.blobs import BlobStore
from events.catalogue import (
    ActorRestarted,
    ActorRetired,
    ActorUnresponsive,
    AgentRetired,
    AgentUnresponsive,
    AlertRaised,
    SnapshotTaken,
)
from events.streams import snapshot as snapshot_stream
from monitoring.health import HealthMonitor, HealthSettings

SETTINGS = HealthSettings(restart_budget=3, budget_window=0.2, backoff_base=0.01, backoff_max=0.05)
WATCHED = ("store", "dispatcher", "projector", "agent:a1", "agent:a2")


def random_log(seed: int) -> EventStore:
    """The monitor's records of watched and unwatched actors, in bursts 40 ms apart (the budget window is 200 ms),
    among other traffic."""
    rng = random.Random(seed)
    store = open_store("memory://")
    for burst in range(12):
        for i in range(rng.randrange(3, 9)):
            actor = rng.choice((*WATCHED, "learner"))
            agent = actor.removeprefix("agent:")
            event = rng.choice((
                AgentUnresponsive(agent_id=agent, reason="dead: gone") if actor.startswith("agent:") else
                ActorUnresponsive(actor=actor, problem=rng.choice(("dead", "hung", "constructor", "unavailable"))),
                ActorRestarted(actor=actor, pid=1000 + i, by=rng.choice(("ray", "monitor")), restarts=i),
                AlertRaised(key=f"x{burst}-{i}", source="test", summary="noise"),
                *([ActorRetired(actor=actor, reason="budget")] if rng.random() < 0.05 else []),
                *([AgentRetired(agent_id=agent, reason="budget")] if rng.random() < 0.05 else []),
            ))
            store.append(streams.actor(actor), [event], ANY)
        time.sleep(0.04)
    return store


def replayed(store: EventStore, watched: tuple[str, ...] = WATCHED) -> HealthMonitor:
    m = HealthMonitor(watched, SETTINGS)
    m.advance(store)
    return m


def judged(m: HealthMonitor, now: float) -> list[object]:
    """What ``m`` knows and decides at ``now``, each actor taken as suspect: its failures in the window, retirement,
    restarts and verdict; and what it would append."""
    out: list[object] = []
    for name, patient in sorted(m.book.patients.items()):
        patient.suspect = "dead"
        out.append((name, m.book.recent(name, now), patient.retired, patient.restarts, m.book.decide(name, now)))
    out.append([(i.stream, [type(e).__name__ for e in i.events]) for i in m.decide(now)])
    return out


def test_recovery_from_a_snapshot_and_the_tail_decides_as_the_full_replay_over_random_logs(tmp_path: Path) -> None:
    proved = retired = 0
    for seed in range(4):
        store = random_log(seed)
        head = store.head()
        events = store.read_all(1, None)
        for cut in (1, head // 3, head // 2, head - 2, head):
            blobs = BlobStore(tmp_path / f"blobs-{seed}-{cut}")
            at = HealthMonitor(WATCHED, SETTINGS)
            at.advance(Upto(store, cut))
            stamp = events[cut - 1].recorded_at.timestamp()
            for name in WATCHED:  # a round at the cut dropped the failures out of the window then
                at.book.recent(name, stamp)
            assert Snapshots("health", blobs).take(at, store) is not None
            recovered = HealthMonitor(WATCHED, SETTINGS)
            recovery = Snapshots("health", blobs).recover(recovered, store)
            assert recovery.snapshot_position == cut and not recovery.fallback
            full = replayed(store)
            assert recovered.position == full.position == store.head()
            last = events[-1].recorded_at.timestamp()
            for now in (last, last + 0.1, last + 1.0):
                mine = judged(recovered, now)
                assert mine == judged(full, now)
            assert recovered.encode_state() == full.encode_state()  # once both dropped what left the window
            retired += sum(1 for p in recovered.book.patients.values() if p.retired)
            proved += 1
    assert proved == 20 and retired > 0


def test_a_snapshot_that_did_not_watch_an_actor_watched_now_is_refused(tmp_path: Path) -> None:
    store, blobs = random_log(5), BlobStore(tmp_path / "blobs")
    assert Snapshots("health", blobs).take(replayed(store, WATCHED[:3]), store) is not None
    fewer = HealthMonitor(WATCHED[:2], SETTINGS)  # watching less than the snapshot did: it is used
    assert Snapshots("health", blobs).recover(fewer, store).from_snapshot
    assert fewer.encode_state() == replayed(store, WATCHED[:2]).encode_state()
    more = HealthMonitor(WATCHED, SETTINGS)
    recovery = Snapshots("health", blobs).recover(more, store)
    assert not recovery.from_snapshot and "did not watch agent:a1, agent:a2" in recovery.fallback
    assert more.encode_state() == replayed(store).encode_state()


@pytest.mark.parametrize("case", FALLBACKS)
def test_a_snapshot_that_cannot_be_believed_falls_back_to_the_replay(case: str, tmp_path: Path) -> None:
    falls_back(SnapshottingActor("health", "health monitor", random_log(6), lambda: HealthMonitor(WATCHED, SETTINGS)),
               case, tmp_path)


def test_only_its_own_records_call_for_a_health_snapshot(tmp_path: Path) -> None:
    store = open_store("memory://")
    clock = [1000.0]
    snaps = Snapshots("health", BlobStore(tmp_path / "blobs"), SnapshotSettings(quiet_seconds=1, every_seconds=5),
                      clock=lambda: clock[0])
    m = HealthMonitor(WATCHED, SETTINGS)
    snaps.recover(m, store)
    for i in range(3):
        store.append(snapshot_stream("council"), [SnapshotTaken(actor="council", position=store.head() + 1,
                                                                schema="council", version=1, digest="0" * 64, size=1)])
        store.append(streams.ALERTS, [AlertRaised(key=f"a{i}", source="test", summary="not the monitor's")])
        m.advance(store)
        clock[0] += 100
        assert snaps.maybe_take(m, store) is None
    store.append(streams.actor("store"), [ActorUnresponsive(actor="store", problem="dead")])
    m.advance(store)
    assert snaps.maybe_take(m, store) is not None
