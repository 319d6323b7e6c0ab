"""The error detector over a real log: classification, requeue of transient failures, fix tasks, alerts, no repeats."""

from __future__ import annotations

import time

import pytest

from events import EventStore, open_store
from events.catalogue import AgentRegistered, AgentRestarted, TaskDeadLettered, TaskQueued, TaskSubmitted
from monitoring.errors import DetectorSettings, ErrorDetector, classify


@pytest.mark.parametrize(("error", "kind"), [
    ("TimeoutError: the model did not answer in 30 s", "transient"),
    ("lease l-1 of agent a1 expired", "transient"),
    ("ConnectionError: connection reset by peer", "transient"),
    ("files.write needs inputs {'files': {path: text, ...}}", "configuration"),
    ("file.write ../x denied: '..' leads outside the workspace", "configuration"),
    ("TypeError: unsupported operand type(s) for +: 'int' and 'str'", "code"),
    ("KeyError: 'summary'", "code"),
    ("OSError: [Errno 28] No space left on device", "infrastructure"),
    ("The actor died unexpectedly: worker died", "infrastructure"),
])
def test_errors_are_classified_by_kind(error: str, kind: str) -> None:
    assert classify(error) == kind


def dead(log: EventStore, task_id: str, error: str, capability: str = "echo") -> None:
    log.append(f"task-{task_id}", [TaskSubmitted(task_id=task_id, capability=capability)])
    log.append(f"task-{task_id}", [TaskDeadLettered(task_id=task_id, attempts=3, last_error=error)])


def run(detector: ErrorDetector, log: EventStore, now: float | None = None) -> list[str]:
    for event in log.read_all(detector.position + 1, None):
        detector.evolve(event)
    made = []
    for stream, events, expected in detector.decide(now or time.time()):
        log.append(stream, events, expected)
        made.append(stream)
    return made


def test_dead_letters_are_requeued_sent_to_a_fixer_or_alerted_once_each() -> None:
    log = open_store("memory://")
    dead(log, "flaky", "TimeoutError: upstream timed out")
    dead(log, "buggy", "TypeError: 'NoneType' object is not subscriptable")
    dead(log, "misconfigured", "files.write needs inputs {'files': ...}")
    detector = ErrorDetector()
    made = run(detector, log)
    assert sorted(made) == ["alerts", "alerts", "task-flaky"]  # no fixer registered: the code error is alerted
    assert log.read_stream("task-flaky")[-1].payload.reason.startswith("error detector: transient failure")
    alerts = {e.payload.key: e.payload for e in log.read_stream("alerts")}
    assert set(alerts) == {"task:buggy:code", "task:misconfigured:configuration"}
    assert run(detector, log) == []  # nothing twice
    again = ErrorDetector()  # a restarted detector folds its own decisions and repeats none
    assert run(again, log) == []


def test_a_code_error_becomes_a_fix_task_when_a_fixer_is_registered() -> None:
    log = open_store("memory://")
    log.append("agent-fixer", [AgentRegistered(agent_id="fixer", role="coder", capabilities=["code.fix"], version="",
                                               slots=1, epoch=1)])
    dead(log, "buggy", "AttributeError: 'dict' object has no attribute 'items2'", capability="build.python")
    assert run(ErrorDetector(), log) == ["task-fix-buggy"]
    fix = log.read_stream("task-fix-buggy")[0].payload
    assert fix.capability == "code.fix" and fix.inputs["failed_task"] == "buggy" and "items2" in fix.inputs["error"]
    assert run(ErrorDetector(), log) == []


def test_rates_and_late_queues_raise_one_alert_per_window() -> None:
    log = open_store("memory://")
    settings = DetectorSettings(window=60, max_restarts=2)
    for epoch in (2, 3):
        log.append("agent-a1", [AgentRestarted(agent_id="a1", epoch=epoch, reason="crash")])
    log.append("task-late", [TaskQueued(task_id="late", priority=0, start_deadline=time.time() - 1)])
    detector = ErrorDetector(settings)
    assert run(detector, log) == ["alerts", "alerts"]
    keys = sorted(e.payload.key for e in log.read_stream("alerts"))
    assert keys == ["queue:late", "rate:agent restarts"]
    assert run(detector, log) == []  # the same alerts are not raised again inside the window
    assert len(run(detector, log, now=time.time() + 120)) == 1  # the queue is still late a window later
