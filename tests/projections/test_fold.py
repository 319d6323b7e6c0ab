"""The fold as a plain class: events from a real in-memory store in, rows out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from events import Event, RecordedEvent, open_store
from events.catalogue import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    AgentUnresponsive,
    RequestSubmitted,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
)
from projections import Fold
from projections.fold import FIELDS


def us(at: datetime) -> int:
    """A recorded-at time as the fold keeps it: integer microseconds since the epoch."""
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


class Log:
    """A real in-memory log and a fold that follows it."""

    def __init__(self) -> None:
        self.store = open_store("memory://")
        self.fold = Fold()

    def add(self, stream: str, *events: Event) -> RecordedEvent:
        """Append ``events`` to ``stream``, fold everything new, and return the last event."""
        result = self.store.append(stream, list(events))
        for event in self.store.read_all(self.fold.position + 1):
            self.fold.apply(event)
        return self.store.read_all(result.last_position)[0]

    def task(self, task_id: str, *events: Event) -> RecordedEvent:
        return self.add(f"task-{task_id}", *events)


def submitted(task_id: str = "t1", request_id: str | None = "r1", *, priority: int = 2,
              depends_on: list[str] | None = None, max_attempts: int = 3) -> TaskSubmitted:
    return TaskSubmitted(task_id=task_id, capability="code.generate", request_id=request_id, title="do it",
                         priority=priority, depends_on=depends_on or [], max_attempts=max_attempts)


def assigned(task_id: str = "t1", agent_id: str = "a1", attempt: int = 1) -> TaskAssigned:
    return TaskAssigned(task_id=task_id, agent_id=agent_id, lease_id=f"L{attempt}", lease_expires_at=1.8e9 + 0.5,
                        attempt=attempt)


def test_a_task_goes_from_submitted_to_completed() -> None:
    log = Log()
    e = log.task("t1", submitted(priority=1, depends_on=["t0"], max_attempts=2))
    row = log.fold.tasks["t1"]
    assert (row.status, row.request_id, row.capability, row.title, row.priority, row.max_attempts, row.depends_on) == (
        "submitted", "r1", "code.generate", "do it", 1, 2, ["t0"])
    assert row.submitted_at == us(e.recorded_at) and row.attempt == 0 and row.attempts_used == 0
    e = log.task("t1", TaskQueued(task_id="t1", priority=0))
    assert (row.status, row.priority, row.queued_at) == ("queued", 0, us(e.recorded_at))
    e = log.task("t1", assigned())
    assert (row.status, row.agent_id, row.attempt, row.attempts_used) == ("assigned", "a1", 1, 1)
    assert row.assigned_at == us(e.recorded_at) and row.lease_expires_at == 1_800_000_000_500_000
    assert log.fold.agents["a1"].in_flight == 1
    e = log.task("t1", TaskStarted(task_id="t1", agent_id="a1", attempt=1))
    assert (row.status, row.started_at) == ("running", us(e.recorded_at))
    assert log.fold.agents["a1"].in_flight == 1
    e = log.task("t1", TaskCompleted(task_id="t1", agent_id="a1", attempt=1, result={"x": 1}, duration_s=2.5))
    assert (row.status, row.finished_at, row.duration_s, row.lease_expires_at) == (
        "completed", us(e.recorded_at), 2.5, None)
    assert row.position == e.position
    assert log.fold.agents["a1"].in_flight == 0
    req = log.fold.requests["r1"]
    assert (req.tasks, req.completed, req.in_progress, req.status, req.finished_at) == (
        1, 1, 0, "completed", us(e.recorded_at))


def test_a_failed_attempt_is_retried_with_backoff() -> None:
    log = Log()
    log.task("t1", submitted(), TaskQueued(task_id="t1", priority=2), assigned(),
             TaskStarted(task_id="t1", agent_id="a1", attempt=1))
    log.task("t1", TaskFailed(task_id="t1", agent_id=None, attempt=1, error="tests failed", kind="permanent"))
    row = log.fold.tasks["t1"]
    assert (row.status, row.last_error, row.agent_id, row.lease_expires_at) == ("failed", "tests failed", "a1", None)
    assert log.fold.agents["a1"].in_flight == 0
    assert log.fold.requests["r1"].in_progress == 1  # 'failed' is not final
    e = log.task("t1", TaskRetried(task_id="t1", attempt=2, not_before=1.8e9))
    assert (row.status, row.attempt, row.not_before, row.queued_at) == ("queued", 2, 1_800_000_000_000_000,
                                                                         us(e.recorded_at))
    log.task("t1", assigned(agent_id="a2", attempt=2))
    assert (row.status, row.agent_id, row.attempt, row.attempts_used, row.started_at) == ("assigned", "a2", 2, 2, None)
    assert (log.fold.agents["a1"].in_flight, log.fold.agents["a2"].in_flight) == (0, 1)


def test_lease_expiry_dead_letter_and_requeue() -> None:
    log = Log()
    log.task("t1", submitted(), TaskQueued(task_id="t1", priority=2), assigned())
    log.task("t1", TaskLeaseExpired(task_id="t1", agent_id="a1", lease_id="L1", attempt=1))
    row = log.fold.tasks["t1"]
    assert row.status == "failed" and "lease L1" in (row.last_error or "")
    assert log.fold.agents["a1"].in_flight == 0
    e = log.task("t1", TaskDeadLettered(task_id="t1", attempts=3, last_error="gave up", kind="permanent"))
    assert (row.status, row.attempts_used, row.last_error, row.finished_at) == ("dead_lettered", 3, "gave up",
                                                                                 us(e.recorded_at))
    req = log.fold.requests["r1"]
    assert (req.tasks, req.dead_lettered, req.in_progress, req.status, req.finished_at) == (1, 1, 0, "failed",
                                                                                            us(e.recorded_at))
    e = log.task("t1", TaskRequeued(task_id="t1", reason="fixed"))
    assert (row.status, row.attempts_used, row.finished_at, row.queued_at) == ("queued", 0, None, us(e.recorded_at))
    assert (req.dead_lettered, req.in_progress, req.status, req.finished_at) == (0, 1, "open", None)


def test_a_task_waits_in_submitted_until_its_dependencies_are_done() -> None:
    log = Log()
    log.task("t1", submitted())
    log.task("t2", submitted("t2", depends_on=["t1"]))
    log.task("t1", TaskQueued(task_id="t1", priority=2), assigned(),
             TaskCompleted(task_id="t1", agent_id="a1", attempt=1))
    assert log.fold.tasks["t2"].status == "submitted"
    log.task("t2", TaskQueued(task_id="t2", priority=3))
    assert (log.fold.tasks["t2"].status, log.fold.tasks["t2"].priority) == ("queued", 3)


def test_a_request_counts_its_tasks_by_status() -> None:
    log = Log()
    log.task("t1", submitted("t1"))
    log.task("t2", submitted("t2"))
    log.task("t3", submitted("t3", request_id=None))
    req = log.fold.requests["r1"]
    assert (req.title, req.submitted_at, req.tasks, req.in_progress, req.status) == (None, None, 2, 2, "open")
    e = log.add("request-r1", RequestSubmitted(request_id="r1", title="build it", priority=0, submitted_by="ann"))
    assert (req.title, req.priority, req.submitted_by, req.submitted_at, req.tasks) == ("build it", 0, "ann",
                                                                                       us(e.recorded_at), 2)
    log.task("t1", TaskCompleted(task_id="t1", agent_id="a1", attempt=1))
    assert (req.completed, req.in_progress, req.status) == (1, 1, "open")
    log.task("t2", TaskDeadLettered(task_id="t2", attempts=1, last_error="no", kind="permanent"))
    assert (req.completed, req.dead_lettered, req.in_progress, req.status) == (1, 1, 0, "failed")
    log.task("t2", TaskRequeued(task_id="t2"))
    e = log.task("t2", assigned("t2"), TaskCompleted(task_id="t2", agent_id="a1", attempt=1))
    assert (req.completed, req.dead_lettered, req.in_progress, req.status, req.finished_at) == (
        2, 0, 0, "completed", us(e.recorded_at))
    assert set(log.fold.requests) == {"r1"}  # t3 has no request


def test_a_cancelled_task_counts_apart_and_a_request_of_cancelled_work_is_cancelled() -> None:
    log = Log()
    log.task("t1", submitted("t1"))
    log.task("t2", submitted("t2"))
    log.task("t1", TaskCompleted(task_id="t1", agent_id="a1", attempt=1))
    e = log.task("t2", TaskCancelled(task_id="t2", reason="nobody can do it"))
    row, req = log.fold.tasks["t2"], log.fold.requests["r1"]
    assert (row.status, row.last_error, row.finished_at) == ("cancelled", "cancelled: nobody can do it",
                                                             us(e.recorded_at))
    assert (req.completed, req.cancelled, req.dead_lettered, req.in_progress, req.status) == (1, 1, 0, 0, "cancelled")


def test_agents_register_go_unresponsive_restart_and_retire_and_each_status_says_since_when() -> None:
    log = Log()
    e = log.add("agent-a1", AgentRegistered(agent_id="a1", role="coder", capabilities=["code.generate"],
                                            version="1.0", slots=2))
    agent = log.fold.agents["a1"]
    seen = (agent.role, agent.capabilities, agent.version, agent.slots, agent.epoch, agent.status, agent.registered_at)
    assert seen == ("coder", ["code.generate"], "1.0", 2, 1, "live", us(e.recorded_at))
    assert agent.since == us(e.recorded_at)
    log.add("agent-a1", AgentHeartbeat(agent_id="a1", epoch=1, in_flight=0))  # an earlier version's: ignored
    assert (agent.status, agent.since) == ("live", us(e.recorded_at))
    e = log.add("agent-a1", AgentUnresponsive(agent_id="a1", reason="silent"))
    assert (agent.status, agent.since) == ("unresponsive", us(e.recorded_at))
    log.add("agent-a1", AgentUnresponsive(agent_id="a1", reason="still silent"))
    assert agent.since == us(e.recorded_at)  # no change of status, no new "since"
    e = log.add("agent-a1", AgentRestarted(agent_id="a1", epoch=2))
    assert (agent.status, agent.epoch, agent.since) == ("live", 2, us(e.recorded_at))
    e = log.add("agent-a1", AgentRetired(agent_id="a1"))
    log.add("agent-a1", AgentUnresponsive(agent_id="a1", reason="after retirement"))
    assert (agent.status, agent.since) == ("retired", us(e.recorded_at))


def test_an_agent_holding_tasks_before_it_registers_gets_a_minimal_row() -> None:
    log = Log()
    log.task("t1", submitted(), TaskQueued(task_id="t1", priority=2), assigned(agent_id="ghost"))
    ghost = log.fold.agents["ghost"]
    assert (ghost.status, ghost.role, ghost.slots, ghost.in_flight) == (None, None, None, 1)
    log.add("agent-ghost", AgentRegistered(agent_id="ghost", role="tester", capabilities=["test.run"], slots=4))
    assert (ghost.status, ghost.role, ghost.slots, ghost.in_flight) == ("live", "tester", 4, 1)


def test_events_of_a_task_never_submitted_make_a_minimal_row() -> None:
    log = Log()
    e = log.task("t9", TaskCompleted(task_id="t9", agent_id="a1", attempt=2, duration_s=1.0))
    row = log.fold.tasks["t9"]
    assert (row.status, row.attempt, row.agent_id, row.request_id, row.finished_at) == ("completed", 2, "a1", None,
                                                                                        us(e.recorded_at))
    assert log.fold.agents == {} and log.fold.requests == {}  # it held no slot, and carries no request


def test_event_types_the_fold_does_not_read_are_skipped() -> None:
    fold = Fold()
    fold.apply_payload(7, "order.shipped", 0, object())
    assert fold.position == 7 and len(fold.take_changed()) == 0
    assert "order.shipped" not in fold.reads and set(FIELDS) == fold.reads


def test_changed_rows_are_reported_once_then_forgotten() -> None:
    log = Log()
    log.task("t1", submitted(), TaskQueued(task_id="t1", priority=2), assigned())
    changed = log.fold.take_changed()
    assert [r.task_id for r in changed.tasks] == ["t1"]
    assert [r.request_id for r in changed.requests] == ["r1"] and [r.agent_id for r in changed.agents] == ["a1"]
    assert len(log.fold.take_changed()) == 0


@pytest.mark.parametrize("cut", [1, 5, 9])
def test_a_fold_loaded_from_stored_rows_continues_like_one_that_never_stopped(cut: int) -> None:
    log = Log()
    log.task("t1", submitted(), TaskQueued(task_id="t1", priority=2), assigned(),
             TaskStarted(task_id="t1", agent_id="a1", attempt=1))
    log.task("t2", submitted("t2"), TaskQueued(task_id="t2", priority=1), assigned("t2"),
             TaskFailed(task_id="t2", agent_id="a1", attempt=1, error="x", kind="transient"),
             TaskRetried(task_id="t2", attempt=2, not_before=1.8e9))
    events = log.store.read_all()
    first = Fold()
    for e in events[:cut]:
        first.apply(e)
    copy = msgspec.structs.replace  # stored rows are copies, never the same objects
    resumed = Fold()
    resumed.load(first.position, [copy(r) for r in first.tasks.values()], [copy(r) for r in first.requests.values()],
                 [copy(r) for r in first.agents.values()])
    for e in events[cut:]:
        resumed.apply(e)
    assert (resumed.tasks, resumed.requests, resumed.agents) == (log.fold.tasks, log.fold.requests, log.fold.agents)
