"""The error detector over a real log, run by the real follower: what each kind of failure leads to, no repeats,
and a round whose append failed is decided again."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from actors.follow import Follower
from events import AppendResult, CouncilError, EventStore, Intent, RecordedEvent, open_store
from events.catalogue import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AlertRaised,
    FailureKind,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskSubmitted,
)
from events.errors import StoreUnavailable
from monitoring.errors import DetectorSettings, ErrorDetector


def dead(log: EventStore, task_id: str, error: str, kind: FailureKind, capability: str = "echo",
         dependency: str | None = None) -> None:
    log.append(f"task-{task_id}", [TaskSubmitted(task_id=task_id, capability=capability)])
    log.append(f"task-{task_id}", [TaskDeadLettered(task_id=task_id, attempts=3, last_error=error, kind=kind,
                                                    dependency=dependency)])


def run(detector: ErrorDetector, log: EventStore, now: float | None = None) -> list[str]:
    """One round of the follower; the streams it appended to, sorted."""
    before = log.head()
    Follower(detector, log).step(now or time.time())
    return sorted(e.stream for e in log.read_all(before + 1, None))


def alerts(log: EventStore) -> dict[str, AlertRaised]:
    found = {}
    for event in log.read_stream("alerts"):
        assert isinstance(event.payload, AlertRaised)
        found[event.payload.key] = event.payload
    return found


def test_each_kind_of_failure_is_handled_as_its_kind_says_whatever_its_message() -> None:
    log = open_store("memory://")
    # The messages lie on purpose: only the kind the agent recorded counts.
    dead(log, "flaky", "PermanentFailure: review found B113: requests call without timeout", "transient")
    dead(log, "failing-test", "TimeoutError in the test name, but the test failed", "permanent")
    dead(log, "buggy", "nothing that looks like a TypeError", "code")
    dead(log, "refused", "connection reset (or so it says)", "denied")
    dead(log, "lost-worker", "KeyError", "infrastructure")
    dead(log, "downstream", "dependency failing-test was dead-lettered", "permanent", dependency="failing-test")
    detector = ErrorDetector()
    assert run(detector, log) == ["alerts"] * 4 + ["task-flaky"]  # no fixer registered: the code error is alerted
    requeue = log.read_stream("task-flaky")[-1].payload
    assert isinstance(requeue, TaskRequeued) and requeue.by == "error-detector"
    raised = alerts(log)
    assert {a.task_id: a.severity for a in raised.values()} == {
        "failing-test": "info", "buggy": "warning", "refused": "warning", "lost-worker": "critical"}
    assert "cannot succeed as asked" in raised["task:failing-test"].summary  # not "a configuration error"
    assert run(detector, log) == []  # nothing twice
    assert run(ErrorDetector(), log) == []  # a restarted detector folds its own decisions and repeats none


def test_a_transient_failure_that_repeats_the_same_way_is_not_requeued_but_alerted() -> None:
    log = open_store("memory://")
    log.append("task-slow", [TaskSubmitted(task_id="slow", capability="ci.test")])
    for attempt, silent in ((1, 16), (2, 17), (3, 19)):  # the same reason, other numbers
        why = f"its agent tester-1 was silent for {silent} s"
        log.append("task-slow", [TaskLeaseExpired(task_id="slow", agent_id="tester-1", lease_id=f"l{attempt}ab12",
                                                  attempt=attempt, reason=why)])
    log.append("task-slow", [TaskDeadLettered(task_id="slow", attempts=3, kind="transient",
                                              last_error="its lease was taken back: its agent was silent for 19 s")])
    log.append("task-mixed", [TaskSubmitted(task_id="mixed", capability="echo")])
    for attempt, error in ((1, "TimeoutError: upstream timed out"), (2, "ConnectionError: reset by peer")):
        log.append("task-mixed", [TaskFailed(task_id="mixed", agent_id="a", attempt=attempt, error=error,
                                             kind="transient")])
    log.append("task-mixed", [TaskDeadLettered(task_id="mixed", attempts=2, last_error="reset", kind="transient")])
    detector = ErrorDetector()
    assert run(detector, log) == ["alerts", "task-mixed"]  # the mixed one is worth one more try; the other is not
    alert = alerts(log)["task:slow"]
    assert "all 3 attempts failed the same way" in alert.summary and alert.task_id == "slow"
    assert run(detector, log) == [] and run(ErrorDetector(), log) == []


def test_the_failures_of_a_task_that_completed_are_forgotten() -> None:
    log = open_store("memory://")
    log.append("task-late", [TaskSubmitted(task_id="late", capability="echo")])
    log.append("task-late", [TaskFailed(task_id="late", agent_id="a", attempt=1, error="timed out", kind="transient")])
    detector = ErrorDetector()
    run(detector, log)
    assert detector.failed == {"late": ["timed out"]}
    log.append("task-late", [TaskCompleted(task_id="late", agent_id="a", attempt=2)])
    run(detector, log)
    assert detector.failed == {}  # a long-lived detector holds only the failures of tasks still open


def test_a_long_lived_detector_forgets_finished_tasks_and_lapsed_alerts() -> None:
    log = open_store("memory://")
    dead(log, "flaky", "TimeoutError: upstream timed out", "transient")
    for i in range(50):
        log.append(f"task-t{i}", [TaskSubmitted(task_id=f"t{i}", capability="echo"),
                                  TaskCompleted(task_id=f"t{i}", agent_id="a", attempt=1)])
    detector = ErrorDetector(DetectorSettings(window=0.2))
    assert run(detector, log) == ["task-flaky"]  # requeued once: remembered while the task is open
    assert run(detector, log) == []  # its requeue folded
    assert detector.capabilities == {"flaky": "echo"} and detector.requeued == {"flaky"}
    log.append("task-flaky", [TaskCompleted(task_id="flaky", agent_id="a", attempt=4)])
    log.append("alerts", [AlertRaised(key="rate:old", severity="warning", source="error-detector", summary="s")])
    run(detector, log)
    assert detector.capabilities == {} and detector.requeued == set() and set(detector.alerted) == {"rate:old"}
    time.sleep(0.3)
    log.append("alerts", [AlertRaised(key="rate:new", severity="warning", source="error-detector", summary="s")])
    run(detector, log)
    assert set(detector.alerted) == {"rate:new"}  # the older one lapsed: it would not hold back a repeat anyway


def test_a_transient_failure_is_requeued_once_then_alerted() -> None:
    log = open_store("memory://")
    dead(log, "flaky", "TimeoutError: upstream timed out", "transient")
    detector = ErrorDetector()
    assert run(detector, log) == ["task-flaky"]
    log.append("task-flaky", [TaskDeadLettered(task_id="flaky", attempts=3, last_error="timed out again",
                                               kind="transient")])
    assert run(detector, log) == ["alerts"]
    assert alerts(log)["task:flaky"].task_id == "flaky"


def test_a_person_requeueing_is_not_mistaken_for_the_detector() -> None:
    log = open_store("memory://")
    dead(log, "flaky", "TimeoutError", "transient")
    log.append("task-flaky", [TaskRequeued(task_id="flaky", reason="error detector: said a person", by="person")])
    log.append("task-flaky", [TaskDeadLettered(task_id="flaky", attempts=3, last_error="again", kind="transient")])
    assert run(ErrorDetector(), log) == ["task-flaky"]  # the detector has not used its one requeue yet


def test_a_code_error_becomes_a_fix_task_when_a_fixer_is_registered() -> None:
    log = open_store("memory://")
    log.append("agent-fixer", [AgentRegistered(agent_id="fixer", role="coder", capabilities=["code.fix"], version="",
                                               slots=1, epoch=1)])
    dead(log, "buggy", "AttributeError: 'dict' object has no attribute 'items2'", "code", capability="build.python")
    at = log.read_stream("task-buggy")[-1].stream_version
    assert run(ErrorDetector(), log) == [f"task-fix-buggy-{at}"]
    fix = log.read_stream(f"task-fix-buggy-{at}")[0].payload
    assert isinstance(fix, TaskSubmitted)
    assert fix.capability == "code.fix" and fix.inputs["failed_task"] == "buggy" and "items2" in fix.inputs["error"]
    assert run(ErrorDetector(), log) == []


@pytest.mark.parametrize("again", ["AttributeError: 'dict' object has no attribute 'items2'", "TypeError: other"])
def test_a_task_requeued_by_a_person_that_fails_again_as_code_gets_a_fix_task_of_its_own(again: str) -> None:
    log = open_store("memory://")
    log.append("agent-fixer", [AgentRegistered(agent_id="fixer", role="coder", capabilities=["code.fix"], version="",
                                               slots=1, epoch=1)])
    dead(log, "buggy", "AttributeError: 'dict' object has no attribute 'items2'", "code", capability="build.python")
    detector = ErrorDetector()
    follower = Follower(detector, log)
    assert follower.step() == (1, 0)
    log.append("task-buggy", [TaskRequeued(task_id="buggy", reason="fixed the config, try again", by="person")])
    log.append("task-buggy", [TaskDeadLettered(task_id="buggy", attempts=3, last_error=again, kind="code")])
    # The second dead letter is a new failure: a distinct fix task, stored once; then the detector settles
    # (before, the same text was taken as a retry of the first fix's append and decided again forever, and
    # another text was refused on the first fix's stream and retried every 10 ms).
    rounds = [follower.step() for _ in range(3)]
    assert rounds == [(1, 0), (0, 0), (0, 0)] and detector.dead == {}
    fixes = [e.payload for e in log.read_all(1, None, ["task.submitted"]) if e.payload.capability == "code.fix"]
    assert len({f.task_id for f in fixes}) == 2 and [f.inputs["error"] for f in fixes][-1] == again
    assert Follower(ErrorDetector(), log).step() == (0, 0)  # a restarted detector asks for neither again


def test_a_fix_stored_after_the_task_failed_again_leaves_the_new_dead_letter_its_own_fix() -> None:
    log = open_store("memory://")
    log.append("agent-fixer", [AgentRegistered(agent_id="fixer", role="coder", capabilities=["code.fix"], version="",
                                               slots=1, epoch=1)])
    dead(log, "buggy", "AttributeError", "code")
    detector = ErrorDetector()
    Follower(detector, log).catch_up()
    [first_fix] = detector.decide(time.time())  # decided, but stored only after the task failed again
    log.append("task-buggy", [TaskRequeued(task_id="buggy", reason="try again", by="person")])
    log.append("task-buggy", [TaskDeadLettered(task_id="buggy", attempts=3, last_error="TypeError", kind="code")])
    log.append_many([first_fix])
    assert run(detector, log) == [f"task-fix-buggy-{log.read_stream('task-buggy')[-1].stream_version}"]
    assert run(detector, log) == []


def test_an_assigned_task_past_its_start_deadline_is_not_late() -> None:
    log = open_store("memory://")
    log.append("task-started", [TaskQueued(task_id="started", priority=0, start_deadline=time.time() - 1)])
    log.append("task-started", [TaskAssigned(task_id="started", agent_id="a1", lease_id="l1",
                                             lease_expires_at=time.time() + 60, attempt=1)])
    assert run(ErrorDetector(), log) == []
    assert "queue:late" not in alerts(log)


def test_without_requeueing_transient_failures_a_transient_dead_letter_is_alerted() -> None:
    log = open_store("memory://")
    dead(log, "flaky", "TimeoutError: upstream timed out", "transient")
    assert run(ErrorDetector(DetectorSettings(requeue_transient=False)), log) == ["alerts"]
    assert alerts(log)["task:flaky"].severity == "warning"
    assert [e.type for e in log.read_stream("task-flaky")] == ["task.submitted", "task.dead_lettered"]


def test_two_detectors_deciding_the_same_dead_letter_alert_once() -> None:
    log = open_store("memory://")
    dead(log, "failing-test", "tests failed", "permanent")
    first, second = ErrorDetector(), ErrorDetector()
    for detector in (first, second):
        Follower(detector, log).catch_up()
    decided = [list(detector.decide(time.time())) for detector in (first, second)]  # both before either folds
    for intents in decided:
        assert all(isinstance(r, AppendResult) for r in log.append_many(intents))
    assert [e.payload.key for e in log.read_stream("alerts")] == ["task:failing-test"]


class Counting:
    """The log, counting the events read from it."""

    def __init__(self, store: EventStore) -> None:
        self.store, self.read = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]:
        events = self.store.read_all(from_position, limit, types)
        self.read += len(events)
        return events


def test_the_detector_reads_only_the_events_it_folds() -> None:
    log = open_store("memory://")
    for n in range(50):
        log.append("agent-a1", [AgentHeartbeat(agent_id="a1", epoch=1, in_flight=n % 2)])
    dead(log, "failing-test", "tests failed", "permanent")
    reader = Counting(log)
    detector = ErrorDetector()
    Follower(detector, log, reader=reader).step()  # type: ignore[arg-type]
    assert reader.read == 2 and detector.position == log.head() - 1  # not the heartbeats; its alert is not folded yet
    assert "task:failing-test" in alerts(log)


def test_rates_and_late_queues_raise_one_alert_per_window() -> None:
    log = open_store("memory://")
    settings = DetectorSettings(window=60, max_restarts=2)
    for epoch in (2, 3):
        log.append("agent-a1", [AgentRestarted(agent_id="a1", epoch=epoch, reason="crash")])
        log.append("task-t", [TaskFailed(task_id="t", agent_id="a1", attempt=epoch, error="boom", kind="permanent")])
    log.append("task-late", [TaskQueued(task_id="late", priority=0, start_deadline=time.time() - 1)])
    log.append("task-done", [TaskQueued(task_id="done", priority=0, start_deadline=time.time() - 1),
                             TaskCompleted(task_id="done", agent_id="a1", attempt=1, duration_s=0.1)])
    detector = ErrorDetector(settings.model_copy(update={"max_failures": 2}))
    assert run(detector, log) == ["alerts"] * 3
    assert sorted(alerts(log)) == ["queue:late", "rate:agent restarts", "rate:failed task attempts"]
    assert alerts(log)["queue:late"].detail == "late"  # not the completed task
    assert run(detector, log) == []  # the same alerts are not raised again inside the window
    assert run(detector, log, now=time.time() + 120) == ["alerts"]  # the queue is still late a window later


class AwayOnce:
    """The log, except that the first append fails as if the store actor were down."""

    def __init__(self, store: EventStore) -> None:
        self.store, self.failed = store, False

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("the store actor did not answer append_many within 60 s")
        return self.store.append_many(requests)


def test_a_decision_whose_append_failed_is_made_again_in_the_next_round() -> None:
    log = open_store("memory://")
    dead(log, "flaky", "TimeoutError", "transient")
    dead(log, "failing-test", "tests failed", "permanent")
    detector = ErrorDetector()
    follower = Follower(detector, AwayOnce(log))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        follower.step()
    assert set(detector.dead) == {"flaky", "failing-test"}  # deciding changed nothing
    assert follower.step() == (2, 0)
    assert log.read_stream("task-flaky")[-1].type == "task.requeued" and "task:failing-test" in alerts(log)
    assert follower.step() == (0, 0)
