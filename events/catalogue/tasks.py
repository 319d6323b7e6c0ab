"""The task lifecycle, all in the task's own stream (``task-<task_id>``).

::

    submitted → queued → assigned → started → completed
                  ▲          │           │
                  │          └───────────┴─→ failed | lease_expired ─→ retried (back in its queue)
                  │                                                  └→ dead_lettered ─→ requeued
                  └──────────────────────────────────────────────────────────────────────┘

A task is queued once its dependencies have completed. Times are UTC epoch seconds.

The status a task is in (:class:`TaskStatus`) is a function of its events: :func:`next_status`
is the one transition table the dispatcher and the read models share. A failed attempt carries
its :data:`FailureKind`, decided by the agent from the exception's type, which decides whether it
is retried (:data:`RETRIED`) and what the error detector does once the task is dead-lettered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

import msgspec

from events.catalogue.fields import Capability, Count, Id, Inputs, Positive, Priority, Seconds, Text
from events.registry import Event, event_type, upcaster

FailureKind = Literal["transient", "permanent", "denied", "infrastructure", "code", "lost"]
"""Why an attempt failed, as the agent that ran it knew from the exception's type:

* ``transient``: it may work if tried again (a timeout, a lost connection, an expired lease);
* ``permanent``: it cannot succeed as asked (the skill said so: a failing test, bad inputs);
* ``denied``: the gate refused an action the skill needed;
* ``infrastructure``: the system under the skill failed (the log unreachable, a worker lost, a full disk);
* ``code``: the skill's own code raised a programming error (``TypeError``, ``KeyError``…);
* ``lost``: what the run did never reached the request's tree (its push was refused because another attempt
  moved the tree on, or its node was lost before it pushed): the next attempt is a fresh run, whose actions are
  keyed apart from the lost ones, so they are done again rather than answered from the log.
"""

RETRIED: frozenset[str] = frozenset({"transient", "infrastructure", "code", "lost"})
"""Failure kinds the dispatcher retries (up to the task's ``max_attempts``); the others dead-letter at once."""


@event_type("task.submitted")
class TaskSubmitted(Event, frozen=True):
    """A unit of work was asked for."""

    task_id: Id
    capability: Capability
    priority: Priority = 2
    request_id: Id | None = None
    inputs: Inputs = {}
    depends_on: list[Id] = []
    max_attempts: Positive = 3
    title: Text = ""


@event_type("task.queued")
class TaskQueued(Event, frozen=True):
    """The task waits in its priority queue (its dependencies, if any, are done)."""

    task_id: Id
    priority: Priority
    start_deadline: Seconds | None = None


@event_type("task.assigned")
class TaskAssigned(Event, frozen=True):
    """The task was leased to an agent until ``lease_expires_at``."""

    task_id: Id
    agent_id: Id
    lease_id: Id
    lease_expires_at: Seconds
    attempt: Positive


@event_type("task.started")
class TaskStarted(Event, frozen=True):
    """The agent holding the lease began the work."""

    task_id: Id
    agent_id: Id
    attempt: Positive


@event_type("task.completed")
class TaskCompleted(Event, frozen=True):
    """The work finished; ``result`` is the agent's output."""

    task_id: Id
    agent_id: Id
    attempt: Positive
    result: Inputs = {}
    duration_s: Seconds = 0.0


@event_type("task.failed", version=2)
class TaskFailed(Event, frozen=True):
    """One attempt failed; ``kind`` says why (see :data:`FailureKind`), ``exception`` names the exception's type."""

    task_id: Id
    agent_id: Id | None
    attempt: Positive
    error: Text
    kind: FailureKind
    exception: Text = ""
    traceback: Text = ""
    """Where it was raised: the last frames of the traceback, bounded, secrets scrubbed (empty if none was taken)."""


@upcaster("task.failed", from_version=1)
def _task_failed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 said only whether the failure was retryable: retryable ones were transient, the rest permanent."""
    payload["kind"] = "transient" if payload.pop("retryable", True) else "permanent"
    return payload


@event_type("task.lease_expired")
class TaskLeaseExpired(Event, frozen=True):
    """The agent holding the lease did not finish in time, or died; the attempt is over."""

    task_id: Id
    agent_id: Id
    lease_id: Id
    attempt: Positive
    reason: Text = ""
    """Why the dispatcher took it back, in words (its agent died, restarted, fell silent; nothing renewed it)."""
    ran_out: bool = False
    """Whether its term ran out while its holder was alive and heard: a lease too short for the work (not a holder
    that died, restarted or fell silent)."""


@event_type("task.retried")
class TaskRetried(Event, frozen=True):
    """The task goes back to its queue for attempt ``attempt`` after ``not_before``."""

    task_id: Id
    attempt: Positive
    not_before: Seconds


@event_type("task.dead_lettered", version=2)
class TaskDeadLettered(Event, frozen=True):
    """The task will not be tried again without a human requeueing it.

    ``kind`` is the kind of its last failure; ``dependency`` is set instead when it never ran
    because a task it depends on was dead-lettered.
    """

    task_id: Id
    attempts: Count
    last_error: Text
    kind: FailureKind
    dependency: Id | None = None


_DEPENDENCY_V1 = re.compile(r"^dependency (\S+) was dead-lettered$")


@upcaster("task.dead_lettered", from_version=1)
def _task_dead_lettered_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had no kind. A dead dependency was written in one fixed sentence, which names it; any other
    version 1 dead letter counts as permanent, so an upgraded error detector never requeues it on its own."""
    found = _DEPENDENCY_V1.match(str(payload.get("last_error", "")))
    payload["kind"] = "permanent"
    payload["dependency"] = found[1] if found else None
    return payload


Requeuer = Literal["person", "error-detector"]


@event_type("task.cancelled")
class TaskCancelled(Event, frozen=True):
    """A person cancelled a task that was not running: it will not run, and the tasks that depend on it will not
    either."""

    task_id: Id
    reason: Text = ""
    by: Text = "person"


@event_type("task.requeued", version=2)
class TaskRequeued(Event, frozen=True):
    """A dead-lettered task went back in its queue with a fresh set of attempts; ``by`` says who sent it."""

    task_id: Id
    reason: Text = ""
    by: Requeuer = "person"


@upcaster("task.requeued", from_version=1)
def _task_requeued_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 marked the error detector's requeues only by their reason, which it began with "error detector:"."""
    payload["by"] = "error-detector" if str(payload.get("reason", "")).startswith("error detector:") else "person"
    return payload


@event_type("task.reopened")
class TaskReopened(Event, frozen=True):
    """A task dead-lettered because a task it depends on was waits for its dependencies again: that task
    (``dependency``) was requeued. It is queued once they complete, like a task just submitted."""

    task_id: Id
    dependency: Id


@event_type("task.awaiting")
class TaskAwaiting(Event, frozen=True):
    """The attempt stopped to wait for an approval or a vote (``authority_id``); it holds no slot while it waits."""

    task_id: Id
    agent_id: Id
    attempt: Positive
    authority_id: Id
    reason: Text = ""


@event_type("task.resumed")
class TaskResumed(Event, frozen=True):
    """The approval or vote the task waited for was decided; the task goes back to its queue for a new attempt."""

    task_id: Id
    authority_id: Id
    outcome: Text


class TaskStatus(StrEnum):
    """Where a task is in its lifecycle: the ``status`` column of the ``tasks`` read model, and the dispatcher's
    view."""

    SUBMITTED = "submitted"
    """Waiting for the tasks it depends on."""
    QUEUED = "queued"
    """In its priority queue (again, after a retry, a requeue or a decided approval)."""
    ASSIGNED = "assigned"
    """Leased to an agent, not started yet."""
    RUNNING = "running"
    """The agent holding the lease is working on it."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Stopped until an approval or a vote it asked for is decided; it holds no slot."""
    COMPLETED = "completed"
    """Done; its result is in ``task.completed``."""
    FAILED = "failed"
    """An attempt failed (or its lease expired); the dispatcher has not decided yet whether to retry."""
    DEAD_LETTERED = "dead_lettered"
    """Will not be tried again unless someone requeues it."""
    CANCELLED = "cancelled"
    """A person cancelled it before it ran (or while it waited); it never runs."""


HOLDING: frozenset[TaskStatus] = frozenset({TaskStatus.ASSIGNED, TaskStatus.RUNNING})
"""Statuses in which a task occupies a slot of its agent."""

SETTLED: frozenset[TaskStatus] = frozenset({TaskStatus.COMPLETED, TaskStatus.DEAD_LETTERED, TaskStatus.CANCELLED})
"""Statuses a task leaves only if it is requeued (by a person or the error detector), or reopened when the dependency
that dead-lettered it is requeued (a cancelled task, never)."""

CANCELLABLE: frozenset[TaskStatus] = frozenset({TaskStatus.SUBMITTED, TaskStatus.QUEUED, TaskStatus.FAILED,
                                                TaskStatus.AWAITING_APPROVAL, TaskStatus.DEAD_LETTERED})
"""Statuses from which a person may cancel a task: it holds no agent's slot, so nothing is cut off mid-action."""

TASK_EVENTS: tuple[type[Event], ...] = (
    TaskSubmitted, TaskQueued, TaskAssigned, TaskStarted, TaskCompleted, TaskFailed, TaskLeaseExpired, TaskRetried,
    TaskDeadLettered, TaskRequeued, TaskReopened, TaskAwaiting, TaskResumed, TaskCancelled,
)
"""Every event of a task's stream; each moves the task to the status :func:`next_status` gives."""

_AFTER: dict[type[Event], TaskStatus] = {
    TaskSubmitted: TaskStatus.SUBMITTED, TaskQueued: TaskStatus.QUEUED, TaskAssigned: TaskStatus.ASSIGNED,
    TaskStarted: TaskStatus.RUNNING, TaskCompleted: TaskStatus.COMPLETED, TaskFailed: TaskStatus.FAILED,
    TaskLeaseExpired: TaskStatus.FAILED, TaskRetried: TaskStatus.QUEUED, TaskDeadLettered: TaskStatus.DEAD_LETTERED,
    TaskRequeued: TaskStatus.QUEUED, TaskReopened: TaskStatus.SUBMITTED, TaskAwaiting: TaskStatus.AWAITING_APPROVAL,
    TaskResumed: TaskStatus.QUEUED,
    TaskCancelled: TaskStatus.CANCELLED,
}
_AFTER_ANY: dict[type[Event] | str, TaskStatus] = {
    key: status for cls, status in _AFTER.items() for key in (cls, cls.type_name)}
_RUNNING, _ASSIGNED = TaskStatus.RUNNING, TaskStatus.ASSIGNED


def next_status(status: TaskStatus | None, event: type[Event] | str) -> TaskStatus:
    """The status of a task in ``status`` (None: not seen yet) after an event of type ``event`` (its class or
    type name).

    ``task.started`` moves only an assigned task (or one not seen yet) to running. Raises
    ``KeyError`` for an event that is not one of :data:`TASK_EVENTS`.
    """
    after = _AFTER_ANY[event]  # one lookup: the read models fold a task event with it on their hottest path
    if after is _RUNNING and status is not None and status != _ASSIGNED:
        return status
    return after


def status_after(types: Iterable[str]) -> TaskStatus | None:
    """Where a task stands after its stream's events (their type names, in order); None for an empty stream.

    Events that do not move a task are passed over.
    """
    status: TaskStatus | None = None
    for type_name in types:
        after = _AFTER_ANY.get(type_name)
        if after is not None:
            status = next_status(status, type_name)
    return status


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A task to submit: what a driver, a plan or an orchestrator asks for (``Council.request`` takes a list).

    ``task_id`` defaults to a fresh id when the task is submitted; ``depends_on`` names tasks of
    the same request (or any earlier one) that must complete first.
    """

    capability: Capability
    inputs: Inputs = {}
    task_id: Id | None = None
    depends_on: list[Id] = []
    priority: Priority | None = None
    """The request's priority if None."""
    max_attempts: Positive = 3
    title: Text = ""

    def submitted(self, task_id: str, request_id: str | None, priority: int) -> TaskSubmitted:
        """The ``task.submitted`` event of this task, as ``task_id`` of ``request_id`` (``priority`` if it sets
        none)."""
        return TaskSubmitted(task_id=task_id, capability=self.capability,
                             priority=priority if self.priority is None else self.priority, request_id=request_id,
                             inputs=dict(self.inputs), depends_on=list(self.depends_on),
                             max_attempts=self.max_attempts, title=self.title)
