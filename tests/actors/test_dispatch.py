"""The dispatcher's plain logic over a real (in-memory) log, run by the real follower: queues, leases, retries,
dependencies, and a store that is away for a round."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import get_args

import pytest

from actors.dispatch import Dispatch, DispatchSettings, decide
from actors.dispatch.decide import effective_priority
from actors.dispatch.process import BeatReply
from actors.follow import Follower
from events import AppendResult, CouncilError, EventStore, Intent, open_store
from events.catalogue import (
    AgentRegistered,
    AgentRestarted,
    ApprovalGranted,
    FailureKind,
    TaskAwaiting,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskRequeued,
    TaskStarted,
    TaskSubmitted,
)
from events.errors import ConcurrencyError, StoreUnavailable

SETTINGS = DispatchSettings(lease=60, heartbeat_timeout=15, backoff_base=2, ageing=600)


class Recording(Dispatch):
    """The dispatcher's process, remembering what each round stored (where the Ray shell hands out leases)."""

    def __init__(self, settings: DispatchSettings, started_at: float | None = None) -> None:
        super().__init__(settings, started_at=started_at)
        self.appended: list[str] = []

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        self.appended += [type(e).type_name for intent, _ in stored for e in intent.events]


class Dispatcher:
    """The real follower running the dispatcher's process over a store, a round at a time."""

    def __init__(self, store: EventStore, settings: DispatchSettings = SETTINGS,
                 started_at: float | None = None) -> None:
        self.process = Recording(settings, started_at)
        self.follower = Follower(self.process, store)
        self.state = self.process.state

    @property
    def refused(self) -> int:
        return self.follower.refused

    def catch_up(self) -> None:
        self.follower.catch_up()

    def beat(self, agent_id: str, at: float, *tasks: str, epoch: int = 1, attempt: int = 1) -> BeatReply:
        """A heartbeat of ``agent_id`` working on attempt ``attempt`` of ``tasks`` (a call, as the Ray shell passes
        it on), heard at ``at``."""
        return self.process.beat(agent_id, epoch, dict.fromkeys(tasks, attempt), at)

    def round(self, now: float | None = None) -> list[str]:
        """One round of the follower; returns the types it appended (and folds them, as its next round would)."""
        self.process.appended = []
        self.follower.step(now)
        self.follower.catch_up()
        return self.process.appended


@pytest.fixture
def store() -> EventStore:
    return open_store("memory://")


def agent(store: EventStore, agent_id: str, capabilities: list[str], slots: int = 1, role: str = "coder") -> None:
    store.append(f"agent-{agent_id}", [AgentRegistered(agent_id=agent_id, role=role, capabilities=capabilities,
                                                       slots=slots)])


def submit(store: EventStore, task_id: str, capability: str = "code.generate", **kw: object) -> None:
    store.append(f"task-{task_id}", [TaskSubmitted(task_id=task_id, capability=capability, **kw)], 0)  # type: ignore[arg-type]


def finish(store: EventStore, d: Dispatcher, task_id: str) -> None:
    task = d.state.tasks[task_id]
    store.append(task.stream, [TaskStarted(task_id=task_id, agent_id=task.agent_id, attempt=task.attempt),
                               TaskCompleted(task_id=task_id, agent_id=task.agent_id, attempt=task.attempt)],
                 task.version)


def fail(store: EventStore, d: Dispatcher, task_id: str, kind: FailureKind = "transient") -> None:
    task = d.state.tasks[task_id]
    store.append(task.stream, [TaskFailed(task_id=task_id, agent_id=task.agent_id, attempt=task.attempt,
                                          error="boom", kind=kind)], task.version)


def statuses(d: Dispatcher) -> dict[str, str]:
    """Every task's status, the finished (forgotten) ones' included."""
    finished = {t: f.status for t, f in d.state.finished.items()}
    return {**finished, **{t.task_id: t.status for t in d.state.tasks.values()}}


def test_a_task_is_queued_assigned_and_completed(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1", priority=1)
    assert d.round() == ["task.queued", "task.assigned"]  # a free agent: queued and leased in one append
    queued = store.read_stream("task-t1")[-2].payload
    assert queued.start_deadline == pytest.approx(time.time() + 3600, abs=5)
    task = d.state.tasks["t1"]
    assert (task.status, task.agent_id, task.attempt) == ("assigned", "coder-1", 1)
    assert task.lease_expires_at == pytest.approx(time.time() + 60, abs=5)
    finish(store, d, "t1")
    assert d.round() == [] and statuses(d) == {"t1": "completed"}
    assert d.state.agents["coder-1"].in_flight == set()


def test_higher_priority_goes_first_and_each_agent_gets_at_most_its_slots(store: EventStore) -> None:
    d = Dispatcher(store)
    for i, p in enumerate([3, 2, 0, 1, 3]):
        submit(store, f"t{i}", priority=p)
    d.round()
    agent(store, "coder-1", ["code.generate"], slots=2)
    assert d.round().count("task.assigned") == 2
    assert sorted(t for t, s in statuses(d).items() if s == "assigned") == ["t2", "t3"]  # P0 and P1
    assert d.round() == []  # backpressure: the other three wait in their queues, not in memory
    finish(store, d, "t2")
    d.round()
    assert statuses(d)["t1"] == "assigned"  # P2 next


def test_waiting_raises_priority_and_a_missed_deadline_makes_a_task_critical(store: EventStore) -> None:
    d = Dispatcher(store)
    submit(store, "old-low", priority=3)
    submit(store, "p1", priority=1)
    d.round()
    low, p1 = d.state.tasks["old-low"], d.state.tasks["p1"]
    now = time.time()
    assert effective_priority(low, now, SETTINGS) == 3
    assert effective_priority(low, now + 1200, SETTINGS) == 1  # two ageing steps
    assert effective_priority(p1, now + 3601, SETTINGS) == 0  # past its one-hour start deadline
    agent(store, "coder-1", ["code.generate"], slots=1)
    d.catch_up()
    d.beat("coder-1", now + 1900)  # still alive then
    assert d.round(now=now + 1900) == ["task.assigned"]
    assert statuses(d)["old-low"] == "assigned"  # aged to 0, and queued before p1


def test_work_goes_to_the_least_loaded_capable_agent(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "small", ["code.generate"], slots=2)
    agent(store, "big", ["code.generate"], slots=4)
    agent(store, "tester", ["test.run"], slots=4)
    for i in range(5):
        submit(store, f"t{i}")
    d.round()
    d.round()
    load = Counter(t.agent_id for t in d.state.tasks.values())
    assert load == {"big": 3, "small": 2}


def test_load_is_weighed_against_each_agents_slots(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "small", ["code.generate"], slots=2)
    agent(store, "big", ["code.generate"], slots=4)
    for i in range(4):
        submit(store, f"t{i}")
    d.round()
    assert Counter(t.agent_id for t in d.state.tasks.values()) == {"big": 3, "small": 1}  # 3/4 and 1/2 full


def test_a_task_nobody_can_do_does_not_block_others(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "needs-deploy", capability="deploy.local", priority=0)
    submit(store, "code", priority=3)
    d.round()
    d.round()
    assert statuses(d) == {"needs-deploy": "queued", "code": "assigned"}


def test_an_expired_lease_is_taken_back_retried_after_backoff_and_reassigned(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    d.round()
    later = time.time() + 61
    d.beat("coder-1", later)  # alive, but it does not say it works on t1: the lease is not renewed
    assert d.round(now=later) == ["task.lease_expired"]
    assert d.round(now=later) == ["task.retried"]
    task = d.state.tasks["t1"]
    assert (task.status, task.attempt) == ("queued", 2) and task.not_before == pytest.approx(later + 2)
    assert d.round(now=later + 1) == []  # still backing off
    assert d.round(now=later + 3) == ["task.assigned"]
    assert d.state.tasks["t1"].attempt == 2


def test_a_lease_lasts_as_long_as_its_holder_says_it_works_on_it(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "long")
    d.round()
    start = time.time()
    for second in range(10, 301, 10):  # five minutes, five lease terms: a heartbeat every ten seconds
        d.beat("coder-1", start + second, "long")
        assert d.round(now=start + second) == [], f"taken back at {second} s while its holder works on it"
    assert store.head() == 4  # registered, submitted, queued, assigned: the heartbeats wrote nothing
    for second in range(310, 351, 10):  # alive, but no longer working on it (the call that ran it was lost)
        d.beat("coder-1", start + second)
        assert d.round(now=start + second) == []
    assert d.round(now=start + 361) == ["task.lease_expired"]  # a lease term after the last renewal


def test_a_silent_agent_loses_its_leases_and_gets_no_new_work(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    now = time.time()
    d.beat("coder-1", now + 5, "t1")
    assert d.round(now=now + 19) == []
    assert d.round(now=now + 21) == ["task.lease_expired"]  # silent for more than 15 s
    assert d.round(now=now + 21) == ["task.retried"]
    assert d.round(now=now + 30) == []  # queued again, but nobody live to take it
    d.beat("coder-1", now + 40)  # back
    assert d.round(now=now + 40) == ["task.assigned"]


def test_a_restarted_dispatcher_waits_one_heartbeat_timeout_before_taking_leases_back(store: EventStore) -> None:
    Dispatcher(store).round()
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    Dispatcher(store).round()
    now = time.time()
    restarted = Dispatcher(store, started_at=now + 100)  # its lease ran out 40 s before this one started
    restarted.catch_up()
    assert restarted.round(now=now + 100) == [] and restarted.round(now=now + 114) == []
    for heard in (102, 112, 122, 132, 142):  # the holder is heard, still working on it
        restarted.beat("coder-1", now + heard, "t1")
        assert restarted.round(now=now + heard + 5) == []
    other = Dispatcher(store, started_at=now + 100)
    other.catch_up()
    assert other.round(now=now + 116) == ["task.lease_expired"]  # nobody spoke up for it


def test_an_old_incarnation_hears_it_is_fenced_and_gives_up_what_it_holds(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    assert d.beat("coder-1", time.time(), "t1") == BeatReply()
    store.append("agent-coder-1", [AgentRestarted(agent_id="coder-1", epoch=2, reason="new incarnation")])
    d.round()
    assert d.beat("coder-1", time.time(), "t1", epoch=1) == BeatReply(fenced=True, abandon=["t1"])
    assert d.beat("coder-1", time.time(), epoch=2) == BeatReply()
    assert d.beat("stranger", time.time()) == BeatReply()  # not registered yet: heard, nothing to fence


def test_an_attempt_whose_lease_was_taken_back_is_told_to_stop_and_renews_nothing(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    now = time.time()
    d.beat("coder-1", now + 55)  # alive, but it never says it works on t1
    assert d.round(now=now + 61) == ["task.lease_expired"]
    expired = store.read_stream("task-t1")[-1].payload
    assert expired.reason == "no heartbeat of coder-1 said it was still working on it for 60 s"
    assert d.beat("coder-1", now + 61, "t1") == BeatReply(abandon=["t1"])  # its agent still works on attempt 1
    assert d.round(now=now + 61) == ["task.retried"]
    assert d.state.tasks["t1"].last_error == f"its lease was taken back: {expired.reason}"
    assert d.round(now=now + 64) == ["task.assigned"]
    assert d.beat("coder-1", now + 64, "t1", attempt=2) == BeatReply()  # the new attempt holds
    assert d.beat("coder-1", now + 64, "t1", attempt=1) == BeatReply(abandon=["t1"])  # the old one, never again


def test_a_lease_taken_back_says_why(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    agent(store, "coder-2", ["code.generate"])
    submit(store, "silent")
    submit(store, "restarted")
    d.round()
    now = time.time()
    d.beat("coder-1", now + 10, *(t.task_id for t in d.state.tasks.values() if t.agent_id == "coder-1"))
    store.append("agent-coder-2", [AgentRestarted(agent_id="coder-2", epoch=2, reason="crashed")])
    d.beat("coder-2", now + 10, epoch=2)
    assert sorted(d.round(now=now + 26)) == ["task.lease_expired"] * 2
    reasons = {e.payload.task_id: e.payload.reason for e in store.read_all(types=["task.lease_expired"])}
    holders = {e.payload.task_id: e.payload.agent_id for e in store.read_all(types=["task.assigned"])}
    expected = {"coder-1": "its agent coder-1 was silent for 16 s", "coder-2": "its agent coder-2 restarted"}
    assert reasons == {task: expected[holder] for task, holder in holders.items()}


def test_failures_retry_until_attempts_run_out_then_dead_letter_and_requeue(store: EventStore) -> None:
    d = Dispatcher(store, DispatchSettings(backoff_base=0))
    agent(store, "coder-1", ["code.generate"], slots=2)
    submit(store, "t1", max_attempts=2, inputs={"n": 1})
    submit(store, "fatal")
    assert d.round().count("task.assigned") == 2
    fail(store, d, "t1")
    fail(store, d, "fatal", kind="permanent")
    assert sorted(d.round()) == ["task.dead_lettered", "task.retried"]
    assert d.round() == ["task.assigned"]
    assert d.state.tasks["t1"].attempt == 2
    fail(store, d, "t1")
    assert d.round() == ["task.dead_lettered"]
    assert statuses(d) == {"t1": "dead_lettered", "fatal": "dead_lettered"}
    buried = store.read_stream("task-t1")[-1].payload
    assert (buried.attempts, buried.last_error) == (2, "boom")
    assert store.read_stream("task-fatal")[-1].payload.attempts == 1
    store.append("task-t1", [TaskRequeued(task_id="t1", reason="fixed the config")], d.state.tasks["t1"].version)
    assert d.round() == ["task.assigned"]
    task = d.state.tasks["t1"]
    assert (task.attempt, task.first_attempt, task.attempts_used) == (3, 3, 1)
    assert task.inputs == {"n": 1}  # a requeued task runs again with the inputs it was submitted with
    assert task.requeues == 1  # a fresh run: its actions are keyed apart from the first run's


AFTER_FAILURE: dict[str, str] = {
    "transient": "task.retried", "infrastructure": "task.retried", "code": "task.retried",
    "permanent": "task.dead_lettered", "denied": "task.dead_lettered", "lost": "task.retried",
}


def test_an_attempt_whose_work_was_lost_is_retried_as_a_fresh_run_within_the_same_attempts(store: EventStore) -> None:
    d = Dispatcher(store, DispatchSettings(backoff_base=0))
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1", max_attempts=2)
    d.round()
    fail(store, d, "t1", "transient")
    assert d.round() == ["task.retried"] and d.state.tasks["t1"].requeues == 0  # a retry replays what was done
    d.round()
    fail(store, d, "t1", "lost")
    assert d.round() == ["task.dead_lettered"]  # it counts against max_attempts: bounded
    assert d.state.tasks["t1"].requeues == 1  # what the lost run did is not an answer for the next
    again = Dispatcher(store, DispatchSettings(backoff_base=0))
    assert again.round() == []
    assert again.state.tasks["t1"].requeues == 1  # folded from the log, as every fresh run is


def test_every_failure_kind_has_a_stated_fate() -> None:
    assert set(AFTER_FAILURE) == set(get_args(FailureKind))


@pytest.mark.parametrize(("kind", "next_event"), AFTER_FAILURE.items())
def test_a_failed_attempt_is_retried_or_buried_by_its_kind(store: EventStore, kind: FailureKind,
                                                            next_event: str) -> None:
    d = Dispatcher(store, DispatchSettings(backoff_base=0))
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1", max_attempts=3)
    assert d.round() == ["task.queued", "task.assigned"]
    fail(store, d, "t1", kind)
    assert d.round() == [next_event]


def test_dependencies_are_honoured(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"], slots=4)
    submit(store, "build")
    submit(store, "test", depends_on=["build"])
    submit(store, "deploy", depends_on=["build", "test"])
    d.round()
    d.round()
    assert statuses(d) == {"build": "assigned", "test": "submitted", "deploy": "submitted"}
    finish(store, d, "build")
    d.round()
    d.round()
    assert statuses(d)["test"] == "assigned" and statuses(d)["deploy"] == "submitted"
    fail(store, d, "test", kind="permanent")
    d.round()
    d.round()
    assert statuses(d)["deploy"] == "dead_lettered"
    buried = store.read_stream("task-deploy")[-1].payload
    assert buried.last_error == "dependency test was dead-lettered"
    assert (buried.kind, buried.dependency) == ("permanent", "test")  # its dependency's kind, and which one


def test_requeueing_a_dead_dependency_reopens_the_chain_behind_it(store: EventStore) -> None:
    d = Dispatcher(store, DispatchSettings(backoff_base=0))
    agent(store, "coder-1", ["code.generate"], slots=4)
    submit(store, "test", max_attempts=1)
    submit(store, "review", depends_on=["test"], inputs={"threshold": "high"})
    submit(store, "build", depends_on=["review"])
    submit(store, "other", depends_on=["elsewhere"])  # waits on a task this log never saw: left alone
    d.round()
    fail(store, d, "test", kind="transient")
    for _ in range(4):
        d.round()
    assert statuses(d) == {"test": "dead_lettered", "review": "dead_lettered", "build": "dead_lettered",
                           "other": "submitted"}
    dead = d.state.tasks["test"]
    store.append(dead.stream, [TaskRequeued(task_id="test", reason="one more try", by="error-detector")],
                 dead.version)
    assert sorted(d.round()) == ["task.assigned", "task.reopened"]  # the test runs; review waits for it again
    assert d.round() == ["task.reopened"]  # then build, behind review
    assert d.round() == []
    assert statuses(d) == {"test": "assigned", "review": "submitted", "build": "submitted", "other": "submitted"}
    assert store.read_stream("task-review")[-1].payload.dependency == "test"
    finish(store, d, "test")
    assert d.round() == ["task.queued", "task.assigned"]
    assert d.state.tasks["review"].inputs == {"threshold": "high"}  # it runs with what it was submitted with
    finish(store, d, "review")
    assert d.round() == ["task.queued", "task.assigned"] and statuses(d)["build"] == "assigned"


def test_a_task_blocked_by_a_dependency_that_stays_dead_is_not_reopened(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "test", max_attempts=1)
    submit(store, "review", depends_on=["test"])
    d.round()
    fail(store, d, "test", kind="permanent")
    for _ in range(3):
        d.round()
    assert statuses(d) == {"test": "dead_lettered", "review": "dead_lettered"}
    for _ in range(3):
        assert d.round() == []
    review = d.state.tasks["review"]  # a person requeues the dependent itself: it runs, and is not reopened
    store.append(review.stream, [TaskRequeued(task_id="review", reason="run it anyway")], review.version)
    assert d.round() == ["task.assigned"] and d.round() == []


def test_a_cancelled_task_is_never_assigned_and_its_dependents_are_dead_lettered(store: EventStore) -> None:
    d = Dispatcher(store)
    submit(store, "nobody-can", capability="no.such.skill")
    submit(store, "after", depends_on=["nobody-can"])
    d.round()
    assert statuses(d) == {"nobody-can": "queued", "after": "submitted"}
    queued = d.state.tasks["nobody-can"]
    store.append(queued.stream, [TaskCancelled(task_id="nobody-can", reason="no agent has it")], queued.version)
    agent(store, "late-1", ["no.such.skill"])  # an agent that could have taken it comes after the cancellation
    d.round()
    d.round()
    assert statuses(d) == {"nobody-can": "cancelled", "after": "dead_lettered"}
    assert [e.type for e in store.read_stream("task-nobody-can")][-1] == "task.cancelled"  # never assigned
    buried = store.read_stream("task-after")[-1].payload
    assert (buried.last_error, buried.kind, buried.dependency) == (
        "dependency nobody-can was cancelled", "permanent", "nobody-can")


def test_an_agent_seen_dead_loses_its_leases_at_once(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    d.process.gone.add("coder-1")  # what the Ray shell does when a run call fails because the actor died
    assert d.round() == ["task.lease_expired"]  # long before its lease runs out
    assert d.round() == ["task.retried"]
    assert d.round(now=time.time() + 3) == []  # and it gets no work until it registers again
    agent(store, "coder-1", ["code.generate"])
    assert d.round(now=time.time() + 3) == ["task.assigned"]


def test_a_task_waiting_for_an_approval_goes_back_to_its_queue_once_it_is_decided(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    task = d.state.tasks["t1"]
    store.append(task.stream, [TaskAwaiting(task_id="t1", agent_id="coder-1", attempt=1, authority_id="ap-1")],
                 task.version)
    assert d.round() == [] and statuses(d) == {"t1": "awaiting_approval"}
    assert d.state.agents["coder-1"].in_flight == set(), "a waiting task holds no slot"
    store.append("approval-ap-1", [ApprovalGranted(approval_id="ap-1", digest="0" * 64, keys=[])])
    assert d.round() == ["task.resumed"]
    resumed = store.read_stream("task-t1")[-1].payload
    assert (resumed.authority_id, resumed.outcome) == ("ap-1", "granted")
    assert d.round() == ["task.assigned"] and d.state.tasks["t1"].attempts_used == 1, "a wait is not a failure"


def test_a_silent_agent_gets_no_work_and_loses_its_leases(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    d.round()
    assert d.round(now=time.time() + 16) == ["task.lease_expired"]
    d.round(now=time.time() + 16)
    assert statuses(d)["t1"] == "queued"
    assert d.round(now=time.time() + 20) == []  # nobody live to take it


def test_a_restarted_agent_loses_what_its_old_incarnation_held(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    d.round()
    d.round()
    store.append("agent-coder-1", [AgentRestarted(agent_id="coder-1", epoch=2, reason="crashed")])
    assert d.round() == ["task.lease_expired"]
    assert d.round() == ["task.retried"]
    assert d.round(now=time.time() + 3) == ["task.assigned"]
    assert d.state.tasks["t1"].attempt == 2


def test_two_racing_dispatchers_never_assign_a_task_twice(store: EventStore) -> None:
    a, b = Dispatcher(store), Dispatcher(store)
    for i in range(4):
        agent(store, f"coder-{i}", ["code.generate"], slots=3)
    for i in range(40):
        submit(store, f"t{i}", priority=i % 4)
    refused = 0
    for _ in range(3):
        a.catch_up()
        b.catch_up()
        now = time.time()
        plans = decide(a.state, now, SETTINGS), decide(b.state, now, SETTINGS)
        for plan in plans:
            for intent in plan:
                try:
                    store.append(intent.stream, list(intent.events), intent.expected)
                except ConcurrencyError:
                    refused += 1
    assigned = Counter(e.payload.task_id for e in store.read_all(types=["task.assigned"]))
    assert len(assigned) == 12 and set(assigned.values()) == {1}
    assert refused > 0


class Overtaken(Recording):
    """A dispatcher whose rival runs a whole round between this one's catching up and its deciding."""

    def __init__(self, rival: Dispatcher) -> None:
        super().__init__(SETTINGS)
        self.rival: Dispatcher | None = rival

    def sense(self, now: float) -> None:
        if self.rival is not None:
            self.rival.follower.step(now)
            self.rival = None


def test_two_racing_followers_never_assign_a_task_twice_and_the_loser_decides_again(store: EventStore) -> None:
    a = Dispatcher(store)
    b = Follower(Overtaken(a), store)
    for i in range(4):
        agent(store, f"coder-{i}", ["code.generate"], slots=3)
    for i in range(40):
        submit(store, f"t{i}", priority=i % 4)
    now = time.time()
    assert b.step(now) == (0, 40)  # b decided from the log as it was before a's round: every append is refused
    assert b.step(now) == (0, 0)  # the next round folds what a did: nothing is left to assign
    assigned = Counter(e.payload.task_id for e in store.read_all(types=["task.assigned"]))
    assert len(assigned) == 12 and set(assigned.values()) == {1}


class AwayOnce:
    """The log, except that the first append fails as if the store actor were down."""

    def __init__(self, store: EventStore) -> None:
        self.store, self.failed = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]:
        if not self.failed:
            self.failed += 1
            raise StoreUnavailable("the store actor did not answer append_many within 60 s")
        return self.store.append_many(requests)


def test_a_round_whose_append_fails_changes_nothing_and_the_next_round_acts(store: EventStore) -> None:
    process = Recording(SETTINGS)
    follower = Follower(process, AwayOnce(store))  # type: ignore[arg-type]
    agent(store, "coder-1", ["code.generate"])
    submit(store, "t1")
    with pytest.raises(StoreUnavailable):
        follower.step()
    assert process.appended == [] and process.state.tasks["t1"].status == "submitted"
    assert follower.step() == (1, 0)
    assert process.appended == ["task.queued", "task.assigned"]


def test_a_fresh_dispatcher_rebuilt_from_the_log_knows_the_same(store: EventStore) -> None:
    d = Dispatcher(store)
    agent(store, "coder-1", ["code.generate", "test.run"], slots=3)
    for i in range(12):
        submit(store, f"t{i}", capability="test.run" if i % 3 else "code.generate", priority=i % 4,
               depends_on=[f"t{i - 1}"] if i % 4 == 3 else [])
    for i in range(6):
        d.round()
        for task_id, status in list(statuses(d).items()):
            if status == "assigned":
                (finish if i % 2 else fail)(store, d, task_id)
    d.catch_up()
    fresh = Dispatcher(store)
    fresh.catch_up()
    assert fresh.state.tasks == d.state.tasks
    assert {k: (v.in_flight, v.status) for k, v in fresh.state.agents.items()} == \
        {k: (v.in_flight, v.status) for k, v in d.state.agents.items()}
    assert fresh.state.waiting == d.state.waiting and fresh.state.undecided == d.state.undecided


def test_settings_are_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="start_deadlines must be >= 0"):
        DispatchSettings(start_deadlines=(0, -1, 0, None))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        DispatchSettings(lease_seconds=3)  # type: ignore[call-arg]
    assert DispatchSettings(backoff_base=1, backoff_max=5).backoff(10) == 5


def test_newly_queued_tasks_wait_behind_those_already_queued(store: EventStore) -> None:
    d = Dispatcher(store)
    submit(store, "early")
    d.round()
    agent(store, "coder-1", ["code.generate"], slots=1)
    submit(store, "late")
    assert sorted(d.round()) == ["task.assigned", "task.queued"]
    assert statuses(d) == {"early": "assigned", "late": "queued"}


def test_a_task_queued_in_this_round_waits_behind_one_queued_earlier_in_another_queue(store: EventStore) -> None:
    d = Dispatcher(store)
    submit(store, "early", capability="code.a")
    d.round()
    agent(store, "coder-1", ["code.a", "code.b"], slots=1)
    submit(store, "late", capability="code.b")
    d.round()
    assert statuses(d) == {"early": "assigned", "late": "queued"}
