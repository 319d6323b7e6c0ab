"""What each event does to its own row: one small function per event type the read models read.

A step gets the row (a task's, an agent's or a model call's), the event's payload and its
recorded-at time in UTC microseconds, and changes the row as the event says. A task's status is
not a step's to set: the fold moves it by :func:`events.catalogue.next_status`, the one
transition table the dispatcher shares. Steps never look at other rows: counts that span rows (a
request's tasks, an agent's tasks in flight) are :class:`projections.fold.Fold`'s job.

:data:`FIELDS` names the payload fields the steps read, per event type, so a reader can decode
just those (:mod:`projections.payloads`); a step must read no other field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.catalogue import AgentStatus
from projections.rows import AgentRow, ModelCallRow, RequestRow, TaskRow
from projections.schema import CallStatus

Payload = Any
"""An event's payload: its catalogue class (``events.catalogue``), or a slim struct with the :data:`FIELDS` of its
type."""

TaskStep = Callable[[TaskRow, Payload, int], None]
AgentStep = Callable[[AgentRow, Payload, int], None]
CallStep = Callable[[ModelCallRow, Payload, int], None]

FIELDS: dict[str, tuple[str, ...]] = {
    "task.submitted": ("task_id", "request_id", "capability", "title", "priority", "max_attempts", "depends_on"),
    "task.queued": ("task_id", "priority"),
    "task.assigned": ("task_id", "agent_id", "attempt", "lease_expires_at"),
    "task.started": ("task_id", "agent_id", "attempt"),
    "task.completed": ("task_id", "agent_id", "attempt", "duration_s"),
    "task.failed": ("task_id", "agent_id", "attempt", "error"),
    "task.lease_expired": ("task_id", "agent_id", "lease_id", "attempt"),
    "task.retried": ("task_id", "attempt", "not_before"),
    "task.dead_lettered": ("task_id", "attempts", "last_error"),
    "task.requeued": ("task_id",),
    "task.reopened": ("task_id",),
    "task.awaiting": ("task_id", "agent_id", "attempt", "authority_id"),
    "task.resumed": ("task_id", "authority_id"),
    "task.cancelled": ("task_id", "reason"),
    "agent.registered": ("agent_id", "role", "capabilities", "version", "slots", "epoch"),
    "agent.unresponsive": ("agent_id",),
    "agent.restarted": ("agent_id", "epoch"),
    "agent.retired": ("agent_id",),
    "request.submitted": ("request_id", "title", "priority", "submitted_by"),
    "request.finished": ("request_id", "outcome"),
    "llm.requested": ("task_id", "agent_id", "request_id", "key", "provider", "model", "attempt", "knowledge"),
    "llm.completed": ("task_id", "key", "provider", "model", "input_tokens", "output_tokens", "cost", "latency_s",
                      "finish"),
    "llm.failed": ("task_id", "key", "provider", "model", "kind", "cost"),
    "llm.repaired": ("task_id", "key", "provider", "model"),
    "edit.applied": ("task_id", "key"),
    "edit.malformed": ("task_id", "key", "refusal"),
}
"""The event types the read models read, and the payload fields read of each: a reader may decode just these."""


def _us(seconds: float | None) -> int | None:
    """Epoch seconds (as task payloads carry them) to integer microseconds."""
    return None if seconds is None else round(seconds * 1_000_000)


# -- one function per task event: change the row as the event says --------------------------------


def _submitted(row: TaskRow, e: Payload, at: int) -> None:
    row.request_id, row.capability, row.title = e.request_id, e.capability, e.title
    row.priority, row.max_attempts, row.depends_on = e.priority, e.max_attempts, list(e.depends_on)
    row.submitted_at, row.attempts_used = at, 0


def _queued(row: TaskRow, e: Payload, at: int) -> None:
    row.priority, row.queued_at = e.priority, at


def _assigned(row: TaskRow, e: Payload, at: int) -> None:
    row.agent_id, row.attempt, row.assigned_at = e.agent_id, e.attempt, at
    row.lease_expires_at, row.started_at = _us(e.lease_expires_at), None
    row.attempts_used += 1


def _started(row: TaskRow, e: Payload, at: int) -> None:
    row.agent_id, row.attempt, row.started_at = e.agent_id, e.attempt, at


def _completed(row: TaskRow, e: Payload, at: int) -> None:
    row.agent_id, row.attempt, row.finished_at = e.agent_id, e.attempt, at
    row.duration_s, row.lease_expires_at = e.duration_s, None


def _failed(row: TaskRow, e: Payload, at: int) -> None:
    row.attempt, row.last_error, row.lease_expires_at = e.attempt, e.error, None
    if e.agent_id is not None:
        row.agent_id = e.agent_id


def _lease_expired(row: TaskRow, e: Payload, at: int) -> None:
    row.agent_id, row.attempt, row.lease_expires_at = e.agent_id, e.attempt, None
    row.last_error = f"lease {e.lease_id} of agent {e.agent_id} expired"


def _retried(row: TaskRow, e: Payload, at: int) -> None:
    row.attempt, row.queued_at, row.not_before = e.attempt, at, _us(e.not_before)


def _dead_lettered(row: TaskRow, e: Payload, at: int) -> None:
    row.attempts_used, row.last_error, row.finished_at = e.attempts, e.last_error, at
    row.lease_expires_at = None


def _requeued(row: TaskRow, e: Payload, at: int) -> None:
    row.queued_at, row.attempts_used = at, 0
    row.finished_at = row.not_before = row.lease_expires_at = None


def _reopened(row: TaskRow, e: Payload, at: int) -> None:
    row.attempts_used, row.finished_at = 0, None


# -- one function per agent event ------------------------------------------------------------------


def _registered(row: AgentRow, e: Payload, at: int) -> None:
    row.role, row.capabilities, row.version, row.slots = e.role, list(e.capabilities), e.version, e.slots
    row.epoch, row.registered_at = e.epoch, at
    _become(row, AgentStatus.LIVE, at)


def _unresponsive(row: AgentRow, e: Payload, at: int) -> None:
    if row.status != AgentStatus.RETIRED:
        _become(row, AgentStatus.UNRESPONSIVE, at)


def _restarted(row: AgentRow, e: Payload, at: int) -> None:
    row.epoch = e.epoch
    _become(row, AgentStatus.LIVE, at)


def _retired(row: AgentRow, e: Payload, at: int) -> None:
    _become(row, AgentStatus.RETIRED, at)


def _become(row: AgentRow, status: AgentStatus, at: int) -> None:
    """The agent's status is ``status`` from ``at`` (an event that leaves it as it was does not move ``since``)."""
    if row.status != status:
        row.status, row.since = status, at


# -- and the request's own event -------------------------------------------------------------------


def request_submitted(row: RequestRow, e: Payload, at: int) -> None:
    """``request.submitted``: what was asked, by whom, when (its counts are the fold's)."""
    row.title, row.priority, row.submitted_by, row.submitted_at = e.title, e.priority, e.submitted_by, at


def _awaiting(row: TaskRow, e: Payload, at: int) -> None:
    row.agent_id, row.attempt, row.lease_expires_at = e.agent_id, e.attempt, None
    row.attempts_used = max(0, row.attempts_used - 1)  # waiting for an approval does not use up an attempt


def _resumed(row: TaskRow, e: Payload, at: int) -> None:
    row.queued_at, row.started_at = at, None


def _cancelled(row: TaskRow, e: Payload, at: int) -> None:
    row.last_error = f"cancelled: {e.reason}" if e.reason else "cancelled"
    row.finished_at, row.lease_expires_at, row.not_before = at, None, None


TASK_STEPS: dict[str, TaskStep] = {
    "task.submitted": _submitted, "task.queued": _queued, "task.assigned": _assigned, "task.started": _started,
    "task.completed": _completed, "task.failed": _failed, "task.lease_expired": _lease_expired,
    "task.retried": _retried, "task.dead_lettered": _dead_lettered, "task.requeued": _requeued,
    "task.reopened": _reopened, "task.awaiting": _awaiting, "task.resumed": _resumed, "task.cancelled": _cancelled,
}
"""The step of each task event type; every one's payload has a ``task_id``."""

AGENT_STEPS: dict[str, AgentStep] = {
    "agent.registered": _registered, "agent.unresponsive": _unresponsive,
    "agent.restarted": _restarted, "agent.retired": _retired,
}
"""The step of each agent event type; every one's payload has an ``agent_id``."""


# -- one function per model call event ------------------------------------------------------------
# A call's events are all in its task's stream of calls, in order; but that stream may begin past
# the call's first event, so each step fills in whatever its own event knows.


def _call_requested(row: ModelCallRow, e: Payload, at: int) -> None:
    row.task_id, row.agent_id, row.provider, row.model = e.task_id, e.agent_id, e.provider, e.model
    if e.request_id is not None:
        row.request_id = e.request_id
    row.tries += 1
    if e.knowledge:
        row.knowledge = list(e.knowledge)
    if e.attempt == 1:  # a new run of tries (a later attempt of the task): its answer will include only its own
        row.failed_cost = 0.0
    if row.requested_at is None:
        row.requested_at = at
    if row.status != CallStatus.COMPLETED:
        row.status, row.finished_at = CallStatus.REQUESTED, None


def _call_completed(row: ModelCallRow, e: Payload, at: int) -> None:
    row.task_id, row.provider, row.answered_by = e.task_id, e.provider, e.model
    row.input_tokens += e.input_tokens
    row.output_tokens += e.output_tokens
    # Invariant: an answer's cost includes what its run's failed tries were charged (actors.llm.calls adds them), and
    # those are in cost already, as failed_cost: only the rest is new. So cost is what was charged, each try once.
    row.cost += max(0.0, e.cost - row.failed_cost)
    row.latency_s, row.finish = e.latency_s, e.finish
    row.status, row.finished_at = CallStatus.COMPLETED, at


def _call_failed(row: ModelCallRow, e: Payload, at: int) -> None:
    row.task_id, row.provider, row.model = e.task_id, e.provider, e.model
    row.cost += e.cost
    row.failed_cost += e.cost
    row.failure = e.kind
    if row.status != CallStatus.COMPLETED:
        row.status, row.finished_at = CallStatus.FAILED, at


def _call_repaired(row: ModelCallRow, e: Payload, at: int) -> None:
    row.task_id, row.provider, row.model = e.task_id, e.provider, e.model
    row.repaired = True
    row.status = CallStatus.COMPLETED  # only an answer can fail to fit its schema


def _edits_applied(row: ModelCallRow, e: Payload, at: int) -> None:
    row.task_id, row.edits = e.task_id, "applied"


def _edits_refused(row: ModelCallRow, e: Payload, at: int) -> None:
    row.task_id, row.edits = e.task_id, e.refusal


CALL_STEPS: dict[str, CallStep] = {
    "llm.requested": _call_requested, "llm.completed": _call_completed, "llm.failed": _call_failed,
    "llm.repaired": _call_repaired, "edit.applied": _edits_applied, "edit.malformed": _edits_refused,
}
"""The step of each model call event type; every one's payload has the call's ``key``."""
