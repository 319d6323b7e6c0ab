"""The task lifecycle, all in the task's own stream (``task-<task_id>``).

::

    submitted → queued → assigned → started → completed
                  ▲          │           │
                  │          └───────────┴─→ failed | lease_expired ─→ retried (back in its queue)
                  │                                                  └→ dead_lettered ─→ requeued
                  └──────────────────────────────────────────────────────────────────────┘

A task is queued once its dependencies have completed. Times are UTC epoch seconds.
"""

from __future__ import annotations

from events.catalogue.fields import Capability, Count, Id, Inputs, Positive, Priority, Seconds, Text
from events.registry import Event, event_type


@event_type("task.submitted")
class TaskSubmitted(Event):
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
class TaskQueued(Event):
    """The task waits in its priority queue (its dependencies, if any, are done)."""

    task_id: Id
    priority: Priority
    start_deadline: Seconds | None = None


@event_type("task.assigned")
class TaskAssigned(Event):
    """The task was leased to an agent until ``lease_expires_at``."""

    task_id: Id
    agent_id: Id
    lease_id: Id
    lease_expires_at: Seconds
    attempt: Positive


@event_type("task.started")
class TaskStarted(Event):
    """The agent holding the lease began the work."""

    task_id: Id
    agent_id: Id
    attempt: Positive


@event_type("task.completed")
class TaskCompleted(Event):
    """The work finished; ``result`` is the agent's output."""

    task_id: Id
    agent_id: Id
    attempt: Positive
    result: Inputs = {}
    duration_s: Seconds = 0.0


@event_type("task.failed")
class TaskFailed(Event):
    """One attempt failed."""

    task_id: Id
    agent_id: Id | None
    attempt: Positive
    error: Text
    retryable: bool = True


@event_type("task.lease_expired")
class TaskLeaseExpired(Event):
    """The agent holding the lease did not finish in time, or died; the attempt is over."""

    task_id: Id
    agent_id: Id
    lease_id: Id
    attempt: Positive


@event_type("task.retried")
class TaskRetried(Event):
    """The task goes back to its queue for attempt ``attempt`` after ``not_before``."""

    task_id: Id
    attempt: Positive
    not_before: Seconds


@event_type("task.dead_lettered")
class TaskDeadLettered(Event):
    """The task will not be tried again without a human requeueing it."""

    task_id: Id
    attempts: Count
    last_error: Text


@event_type("task.requeued")
class TaskRequeued(Event):
    """Someone put a dead-lettered task back in its queue with a fresh set of attempts."""

    task_id: Id
    reason: Text = ""


@event_type("task.awaiting")
class TaskAwaiting(Event):
    """The attempt stopped to wait for an approval or a vote (``authority_id``); it holds no slot while it waits."""

    task_id: Id
    agent_id: Id
    attempt: Positive
    authority_id: Id
    reason: Text = ""


@event_type("task.resumed")
class TaskResumed(Event):
    """The approval or vote the task waited for was decided; the task goes back to its queue for a new attempt."""

    task_id: Id
    authority_id: Id
    outcome: Text
