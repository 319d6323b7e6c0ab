"""What the dispatcher knows: a fold of task and agent events, with its priority queues.

Everything here is derived from the log (rule 1): a dispatcher that restarts replays the task
and agent streams into a fresh :class:`DispatchState` and continues exactly where the last one
stopped. Times are the events' ``recorded_at`` in epoch seconds.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from events import RecordedEvent

# Statuses a task moves through (the same words as the ``tasks`` projection).
SUBMITTED, QUEUED, ASSIGNED, RUNNING, COMPLETED, FAILED, DEAD, AWAITING = (
    "submitted", "queued", "assigned", "running", "completed", "failed", "dead_lettered", "awaiting_approval",
)
LIVE, UNRESPONSIVE, RETIRED = "live", "unresponsive", "retired"


@dataclass
class TaskView:
    """One task as the dispatcher sees it."""

    task_id: str
    capability: str
    priority: int
    request_id: str | None
    depends_on: tuple[str, ...]
    max_attempts: int
    status: str = SUBMITTED
    version: int = 0  # the task stream's version: every decision appends with it as the expectation
    attempt: int = 1  # the attempt now running, or the next one to run
    first_attempt: int = 1  # the attempt a requeue started counting from
    queued_at: float = 0.0
    start_deadline: float | None = None
    not_before: float = 0.0
    agent_id: str | None = None
    lease_id: str | None = None
    lease_expires_at: float = 0.0
    assigned_at_position: int = 0
    last_error: str = ""
    retryable: bool = True
    queue_token: int = 0  # which queue entry is current; older entries are skipped
    inputs: dict[str, object] | None = None  # handed to the agent with the lease; dropped once the task ends

    @property
    def stream(self) -> str:
        """The task's stream in the log."""
        return f"task-{self.task_id}"

    @property
    def attempts_used(self) -> int:
        """Attempts spent since the task was submitted or last requeued, counting a finished one."""
        return self.attempt - self.first_attempt + (0 if self.status in (QUEUED, SUBMITTED) else 1)


@dataclass
class AgentView:
    """One agent in the registry."""

    agent_id: str
    role: str
    capabilities: frozenset[str]
    slots: int
    epoch: int
    status: str = LIVE
    last_seen: float = 0.0
    incarnation_position: int = 0  # where its current epoch began: older assignments died with the old one
    in_flight: set[str] = field(default_factory=set)

    def free_slots(self) -> int:
        """Slots not holding a task."""
        return self.slots - len(self.in_flight)


class DispatchState:
    """Tasks, agents, dependency links and priority queues, evolved one event at a time."""

    def __init__(self) -> None:
        self.position = 0
        self.tasks: dict[str, TaskView] = {}
        self.agents: dict[str, AgentView] = {}
        self.waiting: set[str] = set()  # submitted, dependencies not yet checked as done
        self.leased: set[str] = set()  # assigned or running
        self.undecided: set[str] = set()  # failed, waiting for retry-or-dead-letter
        self.awaiting: dict[str, str] = {}  # authority (approval or vote) id → the task waiting on it
        self.decided: dict[str, str] = {}  # authority id → how it was decided (granted, refused: ..., vote outcome)
        self.resumable: set[str] = set()  # tasks whose authority was decided: to be resumed
        self._ready: dict[tuple[str, int], list[tuple[float, int, str]]] = {}  # (capability, priority) → heap
        self._delayed: list[tuple[float, int, str]] = []  # heap by not_before
        self._seq = itertools.count(1)

    # -- folding ----------------------------------------------------------------------------

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event; events of other kinds are ignored."""
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event, event.recorded_at.timestamp())
        self.position = event.position

    def _submitted(self, e: RecordedEvent, at: float) -> None:
        p = e.payload
        task = self.tasks.get(p.task_id)
        if task is None:
            task = self.tasks[p.task_id] = TaskView(p.task_id, p.capability, p.priority, p.request_id,
                                                    tuple(p.depends_on), p.max_attempts, inputs=p.inputs)
        task.version = e.stream_version
        self.waiting.add(task.task_id)

    def _queued(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self.waiting.discard(task.task_id)
        task.priority, task.start_deadline = e.payload.priority, e.payload.start_deadline
        self._enqueue(task, at, not_before=0.0)

    def _assigned(self, e: RecordedEvent, at: float) -> None:
        task, p = self._task(e), e.payload
        task.status, task.agent_id, task.lease_id = ASSIGNED, p.agent_id, p.lease_id
        task.lease_expires_at, task.attempt, task.assigned_at_position = p.lease_expires_at, p.attempt, e.position
        self.leased.add(task.task_id)
        agent = self.agents.get(p.agent_id)
        if agent is not None:
            agent.in_flight.add(task.task_id)

    def _started(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        if task.status == ASSIGNED:
            task.status = RUNNING

    def _completed(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self._release(task)
        task.status, task.inputs = COMPLETED, None

    def _failed(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self._release(task)
        task.status, task.last_error, task.retryable = FAILED, e.payload.error, e.payload.retryable
        self.undecided.add(task.task_id)

    def _lease_expired(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self._release(task)
        task.status, task.last_error, task.retryable = FAILED, f"lease {e.payload.lease_id} expired", True
        self.undecided.add(task.task_id)

    def _retried(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self.undecided.discard(task.task_id)
        task.attempt = e.payload.attempt
        self._enqueue(task, at, not_before=e.payload.not_before)

    def _dead_lettered(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self._release(task)
        self.undecided.discard(task.task_id)
        self.waiting.discard(task.task_id)
        task.status, task.inputs = DEAD, None

    def _requeued(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        task.attempt += 1
        task.first_attempt = task.attempt
        self._enqueue(task, at, not_before=0.0)

    def _awaiting(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self._release(task)
        task.status = AWAITING
        authority = e.payload.authority_id
        self.awaiting[authority] = task.task_id
        if authority in self.decided:  # decided before the agent's report was folded
            self.resumable.add(task.task_id)

    def _resumed(self, e: RecordedEvent, at: float) -> None:
        task = self._task(e)
        self.resumable.discard(task.task_id)
        self.awaiting.pop(e.payload.authority_id, None)
        # A wait is not a failure: the next attempt does not count against max_attempts.
        task.attempt += 1
        task.first_attempt += 1
        self._enqueue(task, at, not_before=0.0)

    def _authority_decided(self, e: RecordedEvent, at: float) -> None:
        p = e.payload
        authority = getattr(p, "approval_id", None) or getattr(p, "vote_id", None)
        outcome = {"approval.granted": "granted", "approval.refused": f"refused: {getattr(p, 'reason', '')}"}.get(
            e.type, f"vote: {getattr(p, 'outcome', '')}")
        self.decided[authority] = outcome
        task_id = self.awaiting.get(authority)
        if task_id is not None and self.tasks[task_id].status == AWAITING:
            self.resumable.add(task_id)

    def _registered(self, e: RecordedEvent, at: float) -> None:
        p = e.payload
        old = self.agents.get(p.agent_id)
        agent = self.agents[p.agent_id] = AgentView(p.agent_id, p.role, frozenset(p.capabilities), p.slots, p.epoch,
                                                   LIVE, at, e.position)
        if old is not None:
            agent.in_flight = old.in_flight

    def _heartbeat(self, e: RecordedEvent, at: float) -> None:
        agent = self.agents.get(e.payload.agent_id)
        if agent is not None and e.payload.epoch >= agent.epoch and agent.status != RETIRED:
            agent.last_seen, agent.status = at, LIVE

    def _unresponsive(self, e: RecordedEvent, at: float) -> None:
        agent = self.agents.get(e.payload.agent_id)
        if agent is not None and agent.status != RETIRED:
            agent.status = UNRESPONSIVE

    def _restarted(self, e: RecordedEvent, at: float) -> None:
        agent = self.agents.get(e.payload.agent_id)
        if agent is not None and agent.status != RETIRED:
            agent.epoch, agent.status, agent.last_seen, agent.incarnation_position = e.payload.epoch, LIVE, at, e.position

    def _retired(self, e: RecordedEvent, at: float) -> None:
        agent = self.agents.get(e.payload.agent_id)
        if agent is not None:
            agent.status = RETIRED

    def _task(self, e: RecordedEvent) -> TaskView:
        """The task an event is about; a stub if its submission was never seen (a foreign log)."""
        task_id = e.payload.task_id
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskView(task_id, "unknown", 3, None, (), 1)
        task.version = e.stream_version
        return task

    def _release(self, task: TaskView) -> None:
        self.leased.discard(task.task_id)
        agent = self.agents.get(task.agent_id) if task.agent_id else None
        if agent is not None:
            agent.in_flight.discard(task.task_id)

    def _enqueue(self, task: TaskView, at: float, *, not_before: float) -> None:
        task.status, task.queued_at, task.not_before = QUEUED, at, not_before
        task.agent_id = task.lease_id = None
        task.queue_token = next(self._seq)
        if not_before > at:
            heapq.heappush(self._delayed, (not_before, task.queue_token, task.task_id))
        else:
            self.push_ready(task)

    # -- the queues (used by decide) --------------------------------------------------------

    def push_ready(self, task: TaskView) -> None:
        """Put ``task`` in its (capability, priority) queue, behind older tasks of that queue."""
        heapq.heappush(self._ready.setdefault((task.capability, task.priority), []),
                       (task.queued_at, task.queue_token, task.task_id))

    def release_due(self, now: float) -> None:
        """Move retried tasks whose backoff has passed into their ready queues."""
        while self._delayed and self._delayed[0][0] <= now:
            _, token, task_id = heapq.heappop(self._delayed)
            task = self.tasks.get(task_id)
            if task is not None and task.status == QUEUED and task.queue_token == token:
                self.push_ready(task)

    def next_due(self) -> float | None:
        """When the earliest retried task's backoff ends (it may be stale), or None."""
        return self._delayed[0][0] if self._delayed else None

    def ready_queues(self) -> dict[tuple[str, int], list[tuple[float, int, str]]]:
        """The ready heaps by (capability, priority). Entries of tasks no longer queued are stale."""
        return self._ready

    def is_current(self, entry: tuple[float, int, str]) -> bool:
        """Whether a queue entry still stands for a queued task."""
        task = self.tasks.get(entry[2])
        return task is not None and task.status == QUEUED and task.queue_token == entry[1]


_HANDLERS = {
    "task.submitted": DispatchState._submitted,
    "task.queued": DispatchState._queued,
    "task.assigned": DispatchState._assigned,
    "task.started": DispatchState._started,
    "task.completed": DispatchState._completed,
    "task.failed": DispatchState._failed,
    "task.lease_expired": DispatchState._lease_expired,
    "task.retried": DispatchState._retried,
    "task.dead_lettered": DispatchState._dead_lettered,
    "task.requeued": DispatchState._requeued,
    "task.awaiting": DispatchState._awaiting,
    "task.resumed": DispatchState._resumed,
    "approval.granted": DispatchState._authority_decided,
    "approval.refused": DispatchState._authority_decided,
    "vote.decided": DispatchState._authority_decided,
    "agent.registered": DispatchState._registered,
    "agent.heartbeat": DispatchState._heartbeat,
    "agent.unresponsive": DispatchState._unresponsive,
    "agent.restarted": DispatchState._restarted,
    "agent.retired": DispatchState._retired,
}
