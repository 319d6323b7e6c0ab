"""The dispatcher and the error detector on a local Ray recover from their snapshots after a SIGKILL, and no task
is done twice."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest
import ray
from ray_support import ask, sigkill, wait_until

from actors import names
from actors.store_client import StoreClient
from cluster.system import System, boot, shutdown
from cluster.team import AgentSpec
from events import NO_STREAM, open_store
from events.catalogue import TaskSubmitted
from monitoring.detector import DetectorActor


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
