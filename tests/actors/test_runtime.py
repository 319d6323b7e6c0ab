"""The running system on a local Ray: tasks flow through dispatcher and agents exactly once, even
when the dispatcher and agents are killed mid-run."""

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
from events import ANY, NO_STREAM, open_store
from events.catalogue import AgentUnresponsive, TaskSubmitted
from projections import Projector


@pytest.fixture
def system(tmp_path: Path, ray_instance: None):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'events.db'}"
    team = [AgentSpec(agent_id="a1", slots=4), AgentSpec(agent_id="a2", slots=4)]
    # A lease of 5 s: a task runs longer than that only if its agent's heartbeats renew it.
    handles = boot(System.of(url, team, dispatch={"heartbeat_timeout": 6, "lease": 5, "backoff_base": 0.1},
                             projections=str(tmp_path / "projections.duckdb")))
    yield url, handles, StoreClient()
    shutdown([names.DISPATCHER, names.PROJECTOR, names.STORE, names.agent("a1"), names.agent("a2")])


def submit(client: StoreClient, count: int, capability: str = "noop", **inputs: object) -> list[str]:
    ids = [f"t{i:04d}-{time.monotonic_ns() % 10**6}" for i in range(count)]
    client.append_many([(f"task-{t}", [TaskSubmitted(task_id=t, capability=capability, inputs=dict(inputs))], NO_STREAM)
                        for t in ids])
    return ids


def completions(url: str) -> collections.Counter[str]:
    with open_store(url) as s:
        return collections.Counter(e.payload.task_id for e in s.read_all(types=["task.completed"]))


def test_tasks_flow_to_agents_and_complete_once(system) -> None:  # type: ignore[no-untyped-def]
    url, _handles, client = system
    ids = submit(client, 60)
    wait_until(lambda: len(completions(url)) == 60, timeout=60)
    done = completions(url)
    assert set(done) == set(ids) and set(done.values()) == {1}
    with open_store(url) as s:
        by_agent = collections.Counter(e.payload.agent_id for e in s.read_all(types=["task.completed"]))
        assert s.verify().ok
    assert set(by_agent) == {"a1", "a2"}


def test_watchers_long_poll_the_projector_and_see_each_change(system) -> None:  # type: ignore[no-untyped-def]
    _url, handles, client = system
    projector = handles[names.PROJECTOR]
    position = ask(projector.catch_up)
    t0 = time.monotonic()
    quiet = ask(projector.changes, "tasks", position + 10**6, 0.3)  # nothing past there: waits out the timeout
    assert quiet.rows == [] and time.monotonic() - t0 >= 0.25
    [task] = submit(client, 1)
    after, statuses = position, []
    deadline = time.monotonic() + 30
    while "completed" not in statuses and time.monotonic() < deadline:
        result = ask(projector.changes, "tasks", after, 5.0)  # answers as soon as something is folded
        statuses += [row[result.columns.index("status")] for row in result.rows if row[0] == task]
        after = result.position
    assert statuses[-1] == "completed"
    polled = ask(projector.query, f"SELECT status FROM tasks WHERE task_id = '{task}'", position, 5.0)
    assert polled.rows == [("completed",)] and polled.position >= after


def test_a_task_longer_than_its_lease_completes_on_its_first_attempt_while_its_agent_beats(system) -> None:  # type: ignore[no-untyped-def]
    url, handles, client = system
    before = ask(handles[names.DISPATCHER].seen)
    (long,) = submit(client, 1, capability="sleep", seconds=12)  # more than two lease terms
    wait_until(lambda: long in completions(url), timeout=60)
    with open_store(url) as s:
        history = [e.type for e in s.read_stream(f"task-{long}")]
        heartbeats = s.read_all(types=["agent.heartbeat"])
    assert history == ["task.submitted", "task.queued", "task.assigned", "task.started", "task.completed"]
    assert heartbeats == []  # heartbeats are calls, not events
    heard = ask(handles[names.DISPATCHER].seen)
    assert set(heard) == {"a1", "a2"} and max(heard.values()) < 6, (before, heard)


def test_an_attempt_whose_lease_is_taken_back_stops_at_once_and_the_next_one_finishes(system) -> None:  # type: ignore[no-untyped-def]
    url, handles, client = system
    (task,) = submit(client, 1, capability="sleep", seconds=15)  # far longer than the 6 s it has to stop in
    started = wait_until(lambda: next(iter(_events(url, task, "task.started")), None), timeout=30)
    holder = started.payload.agent_id
    # What the health monitor records when it finds an agent hung: the dispatcher takes its leases back at once.
    client.append(f"agent-{holder}", [AgentUnresponsive(agent_id=holder, reason="hung: a drill")], ANY)
    expired = wait_until(lambda: next(iter(_events(url, task, "task.lease_expired")), None), timeout=30)
    assert expired.payload.reason == f"its agent {holder} is unresponsive"
    # Its next heartbeat tells the agent to give the attempt up: the skill stops long before its 15 s.
    wait_until(lambda: not ask(handles[names.agent(holder)].health)[1], timeout=6)
    wait_until(lambda: task in completions(url), timeout=60)
    done = _events(url, task, "task.completed")
    assert len(done) == 1 and done[0].payload.attempt == 2 and done[0].payload.agent_id != holder
    assert [e.payload.attempt for e in _events(url, task, "task.failed")] == []  # the given-up attempt's report
    # was refused: its lease had moved on


def _events(url: str, task: str, kind: str) -> list:  # type: ignore[type-arg]
    with open_store(url) as s:
        return [e for e in s.read_stream(f"task-{task}") if e.type == kind]


def test_failures_are_retried_then_dead_lettered(system) -> None:  # type: ignore[no-untyped-def]
    url, _handles, client = system
    (flaky,) = submit(client, 1, capability="fail")
    (fatal,) = submit(client, 1, capability="fail", permanent=True)

    def buried() -> set[str]:
        with open_store(url) as s:
            return {e.payload.task_id for e in s.read_all(types=["task.dead_lettered"])}

    wait_until(lambda: buried() == {flaky, fatal}, timeout=60)
    with open_store(url) as s:
        attempts = collections.Counter(e.payload.task_id for e in s.read_all(types=["task.failed"]))
    assert attempts == {flaky: 3, fatal: 1}


@pytest.mark.slow
def test_killing_the_dispatcher_and_an_agent_mid_run_completes_every_task_once(system) -> None:  # type: ignore[no-untyped-def]
    url, handles, client = system
    ids = submit(client, 300, capability="sleep", seconds=0.02)
    wait_until(lambda: len(completions(url)) >= 40, timeout=60)
    sigkill(ask(handles[names.DISPATCHER].pid))
    wait_until(lambda: len(completions(url)) >= 120, timeout=60)
    sigkill(ask(handles[names.agent("a1")].pid))
    sigkill(ask(handles[names.PROJECTOR].pid))
    wait_until(lambda: len(completions(url)) >= 200, timeout=90)
    sigkill(ask(handles[names.DISPATCHER].pid))
    wait_until(lambda: len(completions(url)) == 300, timeout=120)
    done = completions(url)
    assert set(done) == set(ids) and set(done.values()) == {1}, "a task completed twice or never"
    with open_store(url) as s:
        assigned = collections.Counter((e.payload.task_id, e.payload.attempt)
                                       for e in s.read_all(types=["task.assigned"]))
        assert s.verify().ok
    assert set(assigned.values()) == {1}, "an attempt was assigned twice"
    assert ask(handles[names.DISPATCHER].stats)["position"] > 0
    shutdown([names.DISPATCHER, names.agent("a1"), names.agent("a2")])  # the log stops moving
    assert_projection_equals_a_rebuild(url, handles[names.PROJECTOR])


# The read models, each in a fixed order; columns that depend on the wall clock are left out.
READ_MODELS = {
    "tasks": "SELECT * FROM tasks ORDER BY task_id",
    "requests": "SELECT * FROM requests ORDER BY request_id",
    "agents": "SELECT * FROM agents ORDER BY agent_id",
    "agent_load": "SELECT * FROM agent_load ORDER BY agent_id",
    "queue": "SELECT priority, depth, oldest_queued_at FROM queue ORDER BY priority",
    "dead_letters": "SELECT * FROM dead_letters ORDER BY task_id",
}


def assert_projection_equals_a_rebuild(url: str, projector) -> None:  # type: ignore[no-untyped-def]
    """The live read models, caught up to the head, equal ones folded afresh from position 1."""
    with open_store(url) as store:
        head = store.head()
        wait_until(lambda: ask(projector.catch_up) >= head, timeout=60)
        with Projector(store, None) as fresh:
            fresh.catch_up()
            # Once with rows folded but not yet stored laid over the file, once all stored.
            for stage in ("folded", "stored"):
                if stage == "stored":
                    assert ask(projector.flush) == head
                for name, sql in READ_MODELS.items():
                    live = ask(projector.query, sql)
                    assert live.rows == fresh.query(sql).rows, f"{name} ({stage}) differs from a rebuild"
                    assert live.rows or name in ("dead_letters", "requests"), f"{name} is empty"


def test_a_lease_given_while_the_dispatcher_holds_an_agents_previous_actor_goes_to_its_current_one(
        tmp_path: Path, ray_instance: None) -> None:
    """The agent is started anew under its name (`council up` with another placement) after the dispatcher last
    called it: the next lease reaches the new actor at once, rather than waiting out its term on the dead one."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    system = System.of(url, [AgentSpec(agent_id="solo", slots=1)],
                       dispatch={"heartbeat_timeout": 6, "lease": 120, "backoff_base": 0.1})
    handles = boot(system)
    client = StoreClient()
    try:
        [first] = submit(client, 1)
        wait_until(lambda: first in completions(url), timeout=30)  # the dispatcher now holds solo's actor
        previous = handles[names.agent("solo")]
        ray.kill(previous, no_restart=True)
        wait_until(lambda: not ray.util.list_named_actors(all_namespaces=True).count(
            {"name": names.agent("solo"), "namespace": names.NAMESPACE}), timeout=30)
        current = boot(system)[names.agent("solo")]
        assert current._actor_id != previous._actor_id
        head = client.head()  # the new actor's registration is in the log: the dispatcher folds it first
        wait_until(lambda: ask(handles[names.DISPATCHER].stats)["position"] >= head, timeout=30)
        [second] = submit(client, 1)
        wait_until(lambda: second in completions(url), timeout=30)  # well inside the 120 s lease
        with open_store(url) as s:
            history = [e.type for e in s.read_stream(f"task-{second}")]
        assert history.count("task.assigned") == 1 and "task.lease_expired" not in history, history
    finally:
        shutdown([names.DISPATCHER, names.PROJECTOR, names.STORE, names.agent("solo")])


def test_a_second_council_with_another_log_is_refused(system, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cluster.system import CouncilAlreadyRunning

    url, _, _ = system
    with pytest.raises(CouncilAlreadyRunning, match="already running on this Ray cluster with the log"):
        boot(System.of(f"sqlite:///{tmp_path / 'other.db'}"))
    assert boot(System.of(url))  # the same log: the running actors are found, not duplicated


def test_an_agent_without_a_skill_for_its_capability_is_refused_before_anything_starts(tmp_path: Path) -> None:
    from cluster.team import TeamError

    team = [AgentSpec(agent_id="a", capabilities=("paint.walls",))]
    with pytest.raises(TeamError, match=r"no skill is registered for capability 'paint\.walls'; known: ci\.build, "
                                        r".*, echo, fail, files\.write, hang, llm\.ask, noop, plan\.write, "
                                        r"review\.answer, sleep, test\.run"):
        boot(System.of(f"sqlite:///{tmp_path / 'events.db'}", team))
    assert not (tmp_path / "events.db").exists()
