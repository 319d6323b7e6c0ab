"""The health monitor on a local Ray: a crashed agent is seen restarted, a hung one is killed and comes back in a
new process, and an actor whose constructor keeps failing is retired with an alert instead of restarted forever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from actors import names
from actors.follow import Follower
from actors.projector_actor import ProjectorActor
from actors.specs import ActorSpec
from actors.store_client import StoreClient
from cluster.system import System, boot, shutdown
from cluster.team import AgentSpec
from events import NO_STREAM, open_store
from events.catalogue import ActorRetired, TaskSubmitted
from monitoring.health import HealthSettings
from monitoring.health_actor import HealthMonitorActor, RayHealth

FAST = {"ping_every": 0.2, "ping_timeout": 5.0, "hang_after": 2.0, "restart_budget": 3, "budget_window": 60.0,
        "backoff_base": 0.2, "backoff_max": 1.0}


def wait_until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, ray_instance: None):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("health")
    url = f"sqlite:///{tmp / 'events.db'}"
    team = [AgentSpec(agent_id="h1", capabilities=("noop", "hang"), slots=2)]
    handles = boot(System.of(url, team, dispatch={"heartbeat_timeout": 30, "backoff_base": 0.1}, health=FAST))
    yield url, handles, tmp
    shutdown([names.HEALTH, names.DISPATCHER, names.STORE, names.agent("h1")])


def pid_of(handle) -> int | None:  # type: ignore[no-untyped-def]
    try:
        return ray.get(handle.pid.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        return None  # asked the process that was just killed; the next one answers


def kinds(handles, actor: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [kind for name, kind, _ in ray.get(handles[names.HEALTH].findings.remote()) if name == actor]


def test_a_crashed_agent_is_seen_back_in_a_new_process(system) -> None:  # type: ignore[no-untyped-def]
    _url, handles, _ = system
    agent = handles[names.agent("h1")]
    before = pid_of(agent)
    wait_until(lambda: ray.get(handles[names.HEALTH].watched.remote())[names.agent("h1")]["pid"] == before, 30,
               "the monitor has seen the agent")
    import os
    import signal
    os.kill(before, signal.SIGKILL)
    wait_until(lambda: "restarted" in kinds(handles, names.agent("h1")), 60, "the monitor saw the restart")
    assert wait_until(lambda: pid_of(agent), 30, "the agent answers") != before


def test_a_hung_agent_is_killed_and_restarted_and_its_task_taken_back(system) -> None:  # type: ignore[no-untyped-def]
    url, handles, _ = system
    agent = handles[names.agent("h1")]
    before = pid_of(agent)
    StoreClient().append("task-stuck", [TaskSubmitted(task_id="stuck", capability="hang", max_attempts=1)], NO_STREAM)
    wait_until(lambda: "hung" in kinds(handles, names.agent("h1")), 60, "the monitor found the agent hung")
    wait_until(lambda: pid_of(agent) not in (None, before), 60, "the agent runs in a new process")
    with open_store(url) as log:
        wait_until(lambda: log.read_stream("task-stuck")[-1].type == "task.dead_lettered", 60,
                   "the hung task's lease was taken back")
        unresponsive = [e.payload.reason for e in log.read_all(1, None, ["agent.unresponsive"])]
    assert any(r.startswith("hung: busy with no progress") for r in unresponsive)


def test_an_actor_whose_constructor_keeps_failing_is_retired_with_an_alert(system, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = system
    not_a_file = tmp_path / "a-directory"
    not_a_file.mkdir()
    spec = ActorSpec("broken-projector", ProjectorActor, (url, str(not_a_file)))
    monitor = HealthMonitorActor.options(namespace=names.NAMESPACE).remote([spec], FAST, url)
    try:
        wait_until(lambda: ray.get(monitor.watched.remote())["broken-projector"]["retired"], 90, "retired")
        deaths = [d for _, k, d in ray.get(monitor.findings.remote()) if k == "dead"]
        assert len(deaths) == 4 and "dead again after its restart" in deaths[-1]  # 1 + the budget of 3, no more
        assert ray.get(monitor.watched.remote())["broken-projector"]["failures"] == 4
        with open_store(url) as log:
            retired = [e.payload for e in log.read_all(1, None, ["actor.retired"])]
            alerts = [e.payload for e in log.read_all(1, None, ["alert.raised"])]
        assert [r.actor for r in retired] == ["broken-projector"]
        assert alerts and alerts[-1].severity == "critical" and "broken-projector" in alerts[-1].summary
    finally:
        ray.kill(monitor)


@ray.remote
class Bystander:
    """An actor that only says who it is."""

    def pid(self) -> int:
        import os
        return os.getpid()


def gone(name: str) -> bool:
    try:
        ray.get_actor(name, namespace=names.NAMESPACE)
    except ValueError:
        return True
    return False


def test_a_retirement_folded_from_the_log_is_followed_by_the_kill_whoever_heard_its_append(ray_instance: None) -> None:
    earlier, now = ActorSpec("retired-earlier", Bystander), ActorSpec("retired-now", Bystander)
    handles = [spec.start() for spec in (earlier, now)]
    ray.get([h.pid.remote() for h in handles])
    try:
        with open_store("memory://") as log:
            log.append("actor-retired-earlier", [ActorRetired(actor="retired-earlier", reason="a run before")])
            monitor = RayHealth([earlier, now], HealthSettings(**FAST))
            follower = Follower(monitor, log)
            follower.catch_up()
            monitor.started()
            # The retirement lands, but the round that appended it never heard back: nothing reacted to it.
            log.append("actor-retired-now", [ActorRetired(actor="retired-now", reason="over the budget")])
            follower.step()
            wait_until(lambda: gone("retired-now"), 30, "the retired actor was killed for good")
            follower.step()
        assert pid_of(handles[0]) is not None  # retired before this monitor started: booted again since, left alone
    finally:
        shutdown(["retired-earlier", "retired-now"])
