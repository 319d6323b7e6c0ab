"""The typed vocabulary next to the events: task statuses and their one transition table, failure kinds, stream
names, and the upcasters that give payloads stored by earlier releases their typed fields."""

from __future__ import annotations

import itertools
from typing import Any, get_args

import msgspec
import pytest

from events import VOCABULARY, streams
from events.catalogue import (
    CANCELLABLE,
    HOLDING,
    RETRIED,
    SETTLED,
    TASK_EVENTS,
    AgentRetired,
    AlertRaised,
    FailureKind,
    TaskDeadLettered,
    TaskFailed,
    TaskRequeued,
    TaskSpec,
    TaskStarted,
    TaskStatus,
    TaskSubmitted,
    next_status,
    status_after,
)
from events.streams import Kind, StreamRef


def test_every_task_event_moves_a_task_and_the_class_and_its_type_name_agree() -> None:
    moved = 0
    for event, status in itertools.product(TASK_EVENTS, [None, *TaskStatus]):
        by_class, by_name = next_status(status, event), next_status(status, event.type_name)
        assert by_class is by_name and isinstance(by_class, TaskStatus)
        moved += 1
    assert moved == len(TASK_EVENTS) * (len(TaskStatus) + 1) == 140


def test_each_task_event_leads_to_the_status_the_lifecycle_gives_it() -> None:
    lifecycle = {
        "task.submitted": "submitted", "task.queued": "queued", "task.assigned": "assigned",
        "task.started": "running", "task.completed": "completed", "task.failed": "failed",
        "task.lease_expired": "failed", "task.retried": "queued", "task.dead_lettered": "dead_lettered",
        "task.requeued": "queued", "task.reopened": "submitted", "task.awaiting": "awaiting_approval",
        "task.resumed": "queued", "task.cancelled": "cancelled",
    }
    assert {e.type_name: next_status(TaskStatus.ASSIGNED, e).value for e in TASK_EVENTS} == lifecycle


def test_a_start_moves_only_an_assigned_task() -> None:
    assert next_status(TaskStatus.ASSIGNED, TaskStarted) is TaskStatus.RUNNING
    assert next_status(None, TaskStarted) is TaskStatus.RUNNING  # a stream read from its middle
    for status in set(TaskStatus) - {TaskStatus.ASSIGNED}:
        assert next_status(status, TaskStarted) is status


def test_only_task_events_have_a_transition() -> None:
    with pytest.raises(KeyError):
        next_status(TaskStatus.QUEUED, "agent.heartbeat")
    with pytest.raises(KeyError):
        next_status(TaskStatus.QUEUED, AgentRetired)


def test_statuses_are_the_read_models_words_and_settled_ones_are_final() -> None:
    assert [s.value for s in TaskStatus] == ["submitted", "queued", "assigned", "running", "awaiting_approval",
                                             "completed", "failed", "dead_lettered", "cancelled"]
    assert {TaskStatus.COMPLETED, TaskStatus.DEAD_LETTERED, TaskStatus.CANCELLED} == SETTLED
    assert CANCELLABLE.isdisjoint(HOLDING) and TaskStatus.COMPLETED not in CANCELLABLE
    assert set(get_args(FailureKind)) >= RETRIED and RETRIED.isdisjoint({"permanent", "denied"})


@pytest.mark.parametrize(("stream", "ref"), [
    (streams.task("r-1a2b-test"), StreamRef(Kind.TASK, "r-1a2b-test")),
    (streams.agent("coder-1"), StreamRef(Kind.AGENT, "coder-1")),
    (streams.warrant("w-3"), StreamRef(Kind.WARRANT, "w-3")),
    (streams.approval("ap-9"), StreamRef(Kind.APPROVAL, "ap-9")),
    (streams.vote("pv-1"), StreamRef(Kind.VOTE, "pv-1")),
    (streams.proposal("ab" * 32), StreamRef(Kind.PROPOSAL, "ab" * 32)),
    (streams.actor("agent:coder-1"), StreamRef(Kind.ACTOR, "agent:coder-1")),
    (streams.gate("coder-1"), StreamRef(Kind.GATE, "coder-1")),
    (streams.budget("r-1"), StreamRef(Kind.BUDGET, "r-1")),
    (streams.request("r-1"), StreamRef(Kind.REQUEST, "r-1")),
    (streams.POLICY, StreamRef(Kind.POLICY, "")),
    (streams.ALERTS, StreamRef(Kind.ALERTS, "")),
    (streams.CHECKPOINTS, StreamRef(Kind.CHECKPOINTS, "")),
])
def test_every_stream_name_parses_back_to_what_made_it(stream: str, ref: StreamRef) -> None:
    assert streams.parse(stream) == ref


@pytest.mark.parametrize("stream", ["agents", "task", "task-", "orders-1", "", "-1"])
def test_a_stream_no_constructor_makes_is_not_ours(stream: str) -> None:
    assert streams.parse(stream) is None


def test_a_task_spec_becomes_its_submission() -> None:
    spec = TaskSpec(capability="echo", inputs={"x": 1}, depends_on=["a"], max_attempts=2, title="t")
    submitted = spec.submitted("t-1", "r-1", priority=1)
    assert submitted == TaskSubmitted(task_id="t-1", capability="echo", priority=1, request_id="r-1", inputs={"x": 1},
                                      depends_on=["a"], max_attempts=2, title="t")
    assert TaskSpec(capability="echo", priority=0).submitted("t-2", None, priority=3).priority == 0
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int` >= 1 - at `\$.max_attempts`"):
        msgspec.convert({"capability": "echo", "max_attempts": 0}, TaskSpec)


# -- payloads stored by release 0.1 ---------------------------------------------------------------------


def upcast(name: str, payload: dict[str, Any]) -> Any:
    return VOCABULARY.decode(name, 1, msgspec.json.encode(payload))


@pytest.mark.parametrize(("retryable", "kind"), [(True, "transient"), (False, "permanent"), (None, "transient")])
def test_a_version_1_failure_gets_its_kind_from_retryable(retryable: bool | None, kind: str) -> None:
    """Version 1's ``retryable`` defaulted to true: a payload without it was a transient failure."""
    fields: dict[str, Any] = {"task_id": "t", "agent_id": "a", "attempt": 1, "error": "boom"}
    old = upcast("task.failed", fields if retryable is None else {**fields, "retryable": retryable})
    assert old == TaskFailed(task_id="t", agent_id="a", attempt=1, error="boom", kind=kind)  # type: ignore[arg-type]


def test_a_version_1_dead_letter_names_its_dead_dependency_and_is_never_requeued_on_its_own() -> None:
    dependency = upcast("task.dead_lettered", {"task_id": "t", "attempts": 0,
                                               "last_error": "dependency r-1-build was dead-lettered"})
    assert isinstance(dependency, TaskDeadLettered)
    assert (dependency.dependency, dependency.kind) == ("r-1-build", "permanent")
    other = upcast("task.dead_lettered", {"task_id": "t", "attempts": 3, "last_error": "lease l-1 expired"})
    assert (other.dependency, other.kind) == (None, "permanent")


def test_a_version_1_requeue_by_the_error_detector_is_known_as_its() -> None:
    mine = upcast("task.requeued", {"task_id": "t", "reason": "error detector: transient failure (x); one more try"})
    theirs = upcast("task.requeued", {"task_id": "t", "reason": "fixed the config"})
    quoting = upcast("task.requeued", {"task_id": "t", "reason": "fixed what the error detector: reported"})
    assert isinstance(mine, TaskRequeued) and (mine.by, theirs.by, quoting.by) == ("error-detector", "person", "person")


def test_a_version_1_retirement_over_the_restart_budget_says_so() -> None:
    budget = upcast("agent.retired", {"agent_id": "a", "reason": "6 restarts in 600 s, over the budget of 5"})
    person = upcast("agent.retired", {"agent_id": "a", "reason": "scaled down"})
    assert isinstance(budget, AgentRetired) and (budget.cause, person.cause) == ("restart-budget", "person")


def test_a_version_1_alert_about_a_task_names_it() -> None:
    alert = upcast("alert.raised", {"key": "task:r-1-test:configuration", "source": "error-detector",
                                    "summary": "s", "severity": "warning"})
    assert isinstance(alert, AlertRaised) and alert.task_id == "r-1-test"
    other = upcast("alert.raised", {"key": "retired:store", "source": "health", "summary": "s"})
    assert other.task_id is None


def test_a_streams_status_is_its_events_folded_and_other_events_pass_over() -> None:
    assert status_after([]) is None
    assert status_after(["task.submitted", "task.queued", "agent.heartbeat", "task.cancelled"]) is TaskStatus.CANCELLED
    assert status_after(["task.submitted", "task.queued", "task.assigned", "task.started"]) is TaskStatus.RUNNING
