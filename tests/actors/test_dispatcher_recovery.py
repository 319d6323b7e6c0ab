"""The snapshotting actors on a local Ray recover from their snapshots after a SIGKILL: the dispatcher (and no task is
done twice), the error detector, the council (and signs the log's own Merkle root), the exporter (and publishes the
same counters) and the health monitor (and charges the same budgets)."""

from __future__ import annotations

import collections
import time
import urllib.request
from pathlib import Path

import pytest
import ray
from ray_support import ask, sigkill, wait_until

from actors import names
from actors.specs import ActorSpec
from actors.store_actor import StoreActor
from actors.store_client import StoreClient
from cluster.system import System, boot, shutdown
from cluster.team import AgentSpec
from events import ANY, NO_STREAM, open_store, streams
from events.catalogue import ActorRestarted, AlertRaised, TaskSubmitted
from governance import checkpoints
from governance.keys import PublicKey
from monitoring.detector import DetectorActor
from monitoring.exporter import ExporterActor
from monitoring.health_actor import HealthMonitorActor


@pytest.fixture
def system(tmp_path: Path, ray_instance: None):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'events.db'}"
    team = [AgentSpec(agent_id="s1", slots=4), AgentSpec(agent_id="s2", slots=4)]
    dispatch = {"heartbeat_timeout": 6, "lease": 5, "backoff_base": 0.1,
                "snapshots": {"every_events": 40, "every_seconds": 0.5}}
    handles = boot(System.of(url, team, dispatch=dispatch, home=str(tmp_path / "home")))
    yield url, handles, StoreClient()
    shutdown([names.DISPATCHER, names.COUNCIL, names.STORE, names.agent("s1"), names.agent("s2")])


def completions(url: str) -> collections.Counter[str]:
    with open_store(url) as s:
        return collections.Counter(e.payload.task_id for e in s.read_all(types=["task.completed"]))


def test_a_killed_dispatcher_recovers_from_its_snapshot_and_no_task_is_done_twice(system) -> None:  # type: ignore[no-untyped-def]
    url, handles, client = system
    ids = [f"snap{i:03d}-{time.monotonic_ns() % 10**6}" for i in range(200)]
    client.append_many([(f"task-{t}", [TaskSubmitted(task_id=t, capability="sleep", inputs={"seconds": 0.02})],
                         NO_STREAM) for t in ids])
    wait_until(lambda: len(completions(url)) >= 60, timeout=60)
    wait_until(lambda: ask(handles[names.DISPATCHER].stats)["snapshots_taken"] >= 1, timeout=30)
    sigkill(ask(handles[names.DISPATCHER].pid))
    stats = wait_until(lambda: (s := ask(handles[names.DISPATCHER].stats))["recovered_from"] > 0 and s, timeout=60)
    assert stats["recovery_fallback"] == "" and stats["recovery_folded"] < stats["position"]
    wait_until(lambda: len(completions(url)) == 200, timeout=120)
    done = completions(url)
    assert set(done) == set(ids) and set(done.values()) == {1}, "a task completed twice or never"
    with open_store(url) as s:
        assigned = collections.Counter((e.payload.task_id, e.payload.attempt)
                                       for e in s.read_all(types=["task.assigned"]))
        assert s.verify().ok
    assert set(assigned.values()) == {1}, "an attempt was assigned twice"
    stats = ask(handles[names.DISPATCHER].stats)
    assert stats["tasks"] == 0 and stats["finished"] == 200  # finished tasks were forgotten


def test_a_killed_error_detector_recovers_from_its_snapshot(system, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _handles, client = system
    blobs = str(tmp_path / "home" / "blobs")
    detector = DetectorActor.remote(url, {}, blobs, {"every_events": 5, "every_seconds": 0.2})
    ask(detector.stats)  # recovered: the submissions below are changes it folds, and so call for a snapshot
    client.append_many([(f"task-d{i}", [TaskSubmitted(task_id=f"d{i}", capability="noop")], NO_STREAM)
                        for i in range(20)])
    wait_until(lambda: ask(detector.stats)["snapshots_taken"] >= 1, timeout=30)
    sigkill(ask(detector.pid))
    stats = wait_until(lambda: (s := ask(detector.stats))["recovered_from"] > 0 and s, timeout=60)
    assert stats["recovery_fallback"] == ""
    ray.kill(detector)


def test_a_killed_council_recovers_from_its_snapshot_and_signs_the_logs_own_root(system) -> None:  # type: ignore[no-untyped-def]
    url, handles, client = system
    council = handles[names.COUNCIL]
    client.append_many([(f"task-c{i}", [TaskSubmitted(task_id=f"c{i}", capability="noop")], NO_STREAM)
                        for i in range(20)])
    wait_until(lambda: ask(council.stats)["snapshots_taken"] >= 1, timeout=30)  # once the burst went quiet (2 s)
    sigkill(ask(council.pid))
    stats = wait_until(lambda: (s := ask(council.stats))["recovered_from"] > 0 and s, timeout=60)
    assert stats["recovery_fallback"] == "" and stats["recovery_folded"] < stats["position"]
    client.append(streams.ALERTS, [AlertRaised(key="after", source="test", summary="the log moves on")])
    signed = wait_until(lambda: ask(council.checkpoint), timeout=30)
    with open_store(url) as s:
        assert signed.root == s.root(signed.tree_size)
        report = checkpoints.check_log(s, PublicKey("council", ask(council.public_key)))
    assert report.ok, report.problems


def test_a_killed_exporter_recovers_from_its_snapshot_and_counts_the_same(system, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _handles, client = system
    exporter = ExporterActor.remote(url, 0, "127.0.0.1", str(tmp_path / "home" / "blobs"),
                                    {"every_events": 5, "every_seconds": 0.2})
    ask(exporter.stats)
    client.append_many([(streams.ALERTS, [AlertRaised(key=f"e{i}", source="test", summary="s", severity="critical")],
                         ANY) for i in range(12)])
    wait_until(lambda: ask(exporter.stats)["snapshots_taken"] >= 1, timeout=30)
    before = scrape(ask(exporter.address))
    sigkill(ask(exporter.pid))
    stats = wait_until(lambda: (s := ask(exporter.stats))["recovered_from"] > 0 and s, timeout=60)
    assert stats["recovery_fallback"] == ""
    after = wait_until(lambda: scrape(ask(exporter.address)), timeout=30)
    assert 'council_alerts_total{severity="critical"} 12.0' in after
    assert counters(after, "council_alerts_total") == counters(before, "council_alerts_total")
    ray.kill(exporter)


def test_a_killed_health_monitor_recovers_from_its_snapshot_and_charges_the_same_budget(system, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _handles, client = system
    watched = [ActorSpec(names.STORE, StoreActor, (url,))]
    monitor = HealthMonitorActor.remote(watched, {}, url, str(tmp_path / "home" / "blobs"),
                                        {"every_events": 1, "every_seconds": 0.2})
    ask(monitor.stats)
    for pid in (101, 102):  # two crashes of the store that Ray restarted, as a monitor records them
        client.append(streams.actor(names.STORE), [ActorRestarted(actor=names.STORE, pid=pid, by="ray")], ANY)
    wait_until(lambda: ask(monitor.stats)["snapshots_taken"] >= 1, timeout=30)
    sigkill(ask(monitor.pid))
    stats = wait_until(lambda: (s := ask(monitor.stats))["recovered_from"] > 0 and s, timeout=60)
    assert stats["recovery_fallback"] == ""
    assert ask(monitor.watched)[names.STORE]["failures"] == 2
    ray.kill(monitor)


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return response.read().decode()


def counters(text: str, name: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(name))
