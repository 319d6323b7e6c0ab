"""What the dispatcher knows: a fold of task and agent events, with its priority queues.

Everything here is derived from the log (rule 1): a dispatcher that restarts replays the task
and agent streams into a fresh :class:`DispatchState` (or restores a snapshot of one and folds the
events after it: :mod:`actors.dispatch.snapshot`) and continues exactly where the last one
stopped. Times are the events' ``recorded_at`` in epoch seconds.

A finished task is forgotten: once it completed or was cancelled (statuses it never leaves: only a
dead-lettered task is requeued) its :class:`TaskView` leaves the state, and only a
:class:`Finished` record stays — what a dependent's release and a late heartbeat still ask of it —
for ``remember`` positions; after that a dependent that names it asks the log (``lookup``), so the
state stays the size of the work in flight and of the last ``remember`` events, however long the
log. Its history lives in the log and the read models. A dead-lettered task stays: it may be requeued.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from events import RecordedEvent
from events.catalogue import (
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    AgentStatus,
    AgentUnresponsive,
    ApprovalGranted,
    ApprovalRefused,
    FailureKind,
    ReviewDecided,
    TaskAssigned,
    TaskAwaiting,
    TaskCancelled,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskReopened,
    TaskRequeued,
    TaskResumed,
    TaskRetried,
    TaskStarted,
    TaskStatus,
    TaskSubmitted,
    VoteDecided,
    next_status,
)
from events.streams import task as task_stream


@dataclass
class TaskView:
    """One task as the dispatcher sees it."""

    task_id: str
    capability: str
    priority: int
    request_id: str | None
    depends_on: tuple[str, ...]
    max_attempts: int
    status: TaskStatus = TaskStatus.SUBMITTED
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
    failure: FailureKind = "transient"
    queue_token: int = 0  # which queue entry is current; older entries are skipped
    taken_back: int = 0  # the last attempt whose lease was taken back: that attempt's work is abandoned
    requeues: int = 0  # each requeue or lost attempt starts a fresh run: its actions are keyed apart from earlier runs'
    blocked_by: str | None = None  # the dependency whose dead letter dead-lettered this task, while it stays so
    inputs: dict[str, object] | None = None  # handed to the agent with the lease; dropped once the task completes

    @property
    def stream(self) -> str:
        """The task's stream in the log."""
        return task_stream(self.task_id)

    @property
    def attempts_used(self) -> int:
        """Attempts spent since the task was submitted or last requeued, counting a finished one."""
        waiting = self.status in (TaskStatus.QUEUED, TaskStatus.SUBMITTED)
        return self.attempt - self.first_attempt + (0 if waiting else 1)


@dataclass
class AgentView:
    """One agent in the registry."""

    agent_id: str
    role: str
    capabilities: frozenset[str]
    slots: int
    epoch: int
    status: AgentStatus = AgentStatus.LIVE
    last_seen: float = 0.0  # when its current incarnation registered; heartbeats are heard, not logged
    incarnation_position: int = 0  # where its current epoch began: older assignments died with the old one
    in_flight: set[str] = field(default_factory=set)

    def free_slots(self) -> int:
        """Slots not holding a task."""
        return self.slots - len(self.in_flight)


class Finished(NamedTuple):
    """What stays of a task that completed or was cancelled once it is forgotten: its status (for its dependents)
    and which attempt, by whom, ended last (for a heartbeat that still mentions it: see ``Dispatch.over``)."""

    status: TaskStatus
    attempt: int
    agent_id: str | None
    taken_back: int
    at: int
    """The position where it finished: the record is dropped ``remember`` positions later."""


Lookup = Callable[[str, int], "TaskStatus | None"]
"""Where task ``task_id`` stood at position ``position`` according to the log (None: not submitted by then)."""


FINAL: frozenset[TaskStatus] = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED})
"""Statuses no task leaves (a requeue needs a dead letter): a task in one is forgotten."""


class DispatchState:
    """Tasks, agents, dependency links and priority queues, evolved one event at a time.

    With ``forget`` (the default) a task that reaches a :data:`FINAL` status leaves :attr:`tasks` for
    :attr:`finished`, whose records are dropped ``remember`` positions later, and the queues shed their
    stale entries as they grow: no decision changes (``tests/actors/test_dispatch_snapshots.py`` checks
    that over random logs), and the state stays the size of the work in flight and the recent past.
    """

    def __init__(self, *, forget: bool = True, remember: int = 50_000, lookup: Lookup | None = None) -> None:
        """``remember``: for how many positions a finished task's record is kept; ``lookup``: asks the log about a
        task that is not in the state (none: such a task counts as not submitted yet)."""
        self.forget, self.remember, self.lookup = forget, remember, lookup
        self.position = 0
        self.tasks: dict[str, TaskView] = {}
        self.finished: dict[str, Finished] = {}  # task id → what stays of a forgotten task
        self.agents: dict[str, AgentView] = {}
        self.waiting: set[str] = set()  # submitted, dependencies not yet checked as done
        self.leased: set[str] = set()  # assigned or running
        self.undecided: set[str] = set()  # failed, waiting for retry-or-dead-letter
        self.awaiting: dict[str, str] = {}  # authority (approval, vote or review) id → the task waiting on it
        self.decided: dict[str, str] = {}  # authority id → how it was decided (granted, refused: ..., vote outcome)
        self.resumable: set[str] = set()  # tasks whose authority was decided: to be resumed
        self.blocked: set[str] = set()  # dead-lettered because a dependency was: reopened if it is requeued
        self._ready: dict[tuple[str, int], list[tuple[float, int, str]]] = {}  # (capability, priority) → heap
        self._delayed: list[tuple[float, int, str]] = []  # heap by not_before
        self.seq = 0  # the last queue token handed out
        self.pushed = 0  # queue entries pushed since the queues were last compacted
        self.compact_after = 1000  # at least this many pushes (and twice the tasks in the state) between compactions

    # -- folding ----------------------------------------------------------------------------

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event; events of other kinds are ignored."""
        at = event.recorded_at.timestamp()
        match event.payload:
            case TaskSubmitted() as p:
                self._submitted(p, event)
            case AgentRegistered() as p:
                self._registered(p, event, at)
            case AgentUnresponsive() as p:
                agent = self.agents.get(p.agent_id)
                if agent is not None and agent.status != AgentStatus.RETIRED:
                    agent.status = AgentStatus.UNRESPONSIVE
            case AgentRestarted() as p:
                agent = self.agents.get(p.agent_id)
                if agent is not None and agent.status != AgentStatus.RETIRED:
                    agent.epoch, agent.status, agent.last_seen = p.epoch, AgentStatus.LIVE, at
                    agent.incarnation_position = event.position
            case AgentRetired() as p:
                agent = self.agents.get(p.agent_id)
                if agent is not None:
                    agent.status = AgentStatus.RETIRED
            case ApprovalGranted() as p:
                self._authority_decided(p.approval_id, "granted")
            case ApprovalRefused() as p:
                self._authority_decided(p.approval_id, f"refused: {p.reason}")
            case VoteDecided() as p:
                self._authority_decided(p.vote_id, f"vote: {p.outcome}")
            case ReviewDecided() as p:
                self._authority_decided(p.review_id, f"review: {p.outcome}")
            case (TaskQueued() | TaskAssigned() | TaskStarted() | TaskCompleted() | TaskFailed() | TaskLeaseExpired()
                  | TaskRetried() | TaskDeadLettered() | TaskRequeued() | TaskReopened() | TaskAwaiting()
                  | TaskResumed() | TaskCancelled()):
                # A forgotten task is final: in a log the system writes nothing lands on its stream any more
                # (every append expects its version), so an event for it would be a foreign log's and is passed over.
                if event.payload.task_id not in self.finished:
                    self._task_moved(event, at)
        self.position = event.position
        if self.pushed > max(self.compact_after, 2 * len(self.tasks)):
            self._compact()
        # Records are in the order their tasks finished, so the oldest is first: a function of the position only,
        # which keeps a state restored from a snapshot and one replayed equal.
        while self.finished:
            oldest = next(iter(self.finished.values()))
            if oldest.at > event.position - self.remember:
                break
            del self.finished[next(iter(self.finished))]

    def status_of(self, task_id: str) -> TaskStatus | None:
        """Where task ``task_id`` stands, forgotten or not; None for a task not submitted yet."""
        task = self.tasks.get(task_id)
        if task is not None:
            return task.status
        finished = self.finished.get(task_id)
        if finished is not None:
            return finished.status
        # Not in the state: not submitted yet, or finished more than ``remember`` positions ago. The log says which,
        # as of the position folded (a final status never changes, so the answer is the one a full fold would give).
        return self.lookup(task_id, self.position) if self.lookup is not None else None

    def _submitted(self, p: TaskSubmitted, e: RecordedEvent) -> None:
        if p.task_id in self.finished:
            return  # a foreign log's resubmission of a finished task (see evolve)
        task = self.tasks.get(p.task_id)
        if task is None:
            task = self.tasks[p.task_id] = TaskView(p.task_id, p.capability, p.priority, p.request_id,
                                                    tuple(p.depends_on), p.max_attempts, inputs=p.inputs)
        task.version = e.stream_version
        self.waiting.add(task.task_id)

    def _task_moved(self, e: RecordedEvent, at: float) -> None:
        """A task event after its submission: the status moves as :func:`events.catalogue.next_status` says."""
        payload = e.payload
        task = self._task(e)
        task.status = next_status(task.status, type(payload))
        match payload:
            case TaskQueued():
                self.waiting.discard(task.task_id)
                task.priority, task.start_deadline = payload.priority, payload.start_deadline
                self._enqueue(task, at, not_before=0.0)
            case TaskAssigned():
                task.agent_id, task.lease_id = payload.agent_id, payload.lease_id
                task.lease_expires_at, task.attempt, task.assigned_at_position = (
                    payload.lease_expires_at, payload.attempt, e.position)
                self.leased.add(task.task_id)
                agent = self.agents.get(payload.agent_id)
                if agent is not None:
                    agent.in_flight.add(task.task_id)
            case TaskStarted():
                pass
            case TaskCompleted():
                self._release(task)
                task.inputs = None
            case TaskFailed():
                self._release(task)
                task.last_error, task.failure = payload.error, payload.kind
                if payload.kind == "lost":
                    task.requeues += 1  # its next attempt is a fresh run: the lost run's actions are not answers
                self.undecided.add(task.task_id)
            case TaskLeaseExpired():
                self._release(task)
                task.last_error = f"its lease was taken back: {payload.reason or 'it expired'}"
                task.failure = "transient"
                task.taken_back = payload.attempt
                self.undecided.add(task.task_id)
            case TaskRetried():
                self.undecided.discard(task.task_id)
                task.attempt = payload.attempt
                self._enqueue(task, at, not_before=payload.not_before)
            case TaskDeadLettered():
                self._release(task)
                self.undecided.discard(task.task_id)
                self.waiting.discard(task.task_id)  # its inputs stay: a requeue runs it again with them
                task.blocked_by = payload.dependency
                if payload.dependency is not None:
                    self.blocked.add(task.task_id)
            case TaskReopened():
                self._unblock(task)
                self.waiting.add(task.task_id)
            case TaskCancelled():
                # Only a task holding no slot is cancelled; its queue entry, if any, is stale from now on.
                self._release(task)
                self._unblock(task)
                self.waiting.discard(task.task_id)
                self.undecided.discard(task.task_id)
                self.resumable.discard(task.task_id)
                task.inputs = None
            case TaskRequeued():
                self._unblock(task)
                task.requeues += 1
                task.attempt += 1
                task.first_attempt = task.attempt
                self._enqueue(task, at, not_before=0.0)
            case TaskAwaiting():
                self._release(task)
                self.awaiting[payload.authority_id] = task.task_id
                if payload.authority_id in self.decided:  # decided before the agent's report was folded
                    self.resumable.add(task.task_id)
            case TaskResumed():
                self.resumable.discard(task.task_id)
                self.awaiting.pop(payload.authority_id, None)
                # A wait is not a failure: the next attempt does not count against max_attempts.
                task.attempt += 1
                task.first_attempt += 1
                self._enqueue(task, at, not_before=0.0)
        if self.forget and task.status in FINAL:
            self._forget(task, e.position)

    def _forget(self, task: TaskView, position: int) -> None:
        """Drop a final task, keeping its :class:`Finished` record.

        Invariant this relies on: a final task is queued nowhere that a decision reads it from. Its
        slot was released and it left ``waiting``/``undecided``/``resumable``/``blocked`` when it
        completed or was cancelled; its queue entries are stale (``is_current`` is false for a task
        not in ``tasks``, as it was for one not queued); an authority it waited on would resume
        nothing (it is not awaiting any more), so that link is dropped too.
        """
        task_id = task.task_id
        del self.tasks[task_id]
        self.finished[task_id] = Finished(task.status, task.attempt, task.agent_id, task.taken_back, position)
        for index in (self.waiting, self.leased, self.undecided, self.resumable, self.blocked):
            index.discard(task_id)
        for authority in [a for a, t in self.awaiting.items() if t == task_id]:
            del self.awaiting[authority]

    def _compact(self) -> None:
        """Drop the queues' stale entries (of tasks no longer queued, or queued again since), which ``decide`` only
        skips when they reach the top, so the queues stay the size of the work waiting.

        Changes no decision: every entry is unique (its token), so a heap pops its current entries in the same
        order whatever its layout. Every key stays, even emptied: ``decide`` walks the queues in their order.
        Runs at positions that depend only on the fold, so a restored state and a replayed one compact alike.
        """
        for key, heap in self._ready.items():
            kept = [entry for entry in heap if self.is_current(entry)]
            heapq.heapify(kept)
            self._ready[key] = kept
        self._delayed = [entry for entry in self._delayed if self.is_current(entry)]
        heapq.heapify(self._delayed)
        self.pushed = 0

    def _authority_decided(self, authority: str, outcome: str) -> None:
        self.decided[authority] = outcome
        task_id = self.awaiting.get(authority)
        if task_id is not None and self.tasks[task_id].status == TaskStatus.AWAITING_APPROVAL:
            self.resumable.add(task_id)

    def _registered(self, p: AgentRegistered, e: RecordedEvent, at: float) -> None:
        old = self.agents.get(p.agent_id)
        agent = self.agents[p.agent_id] = AgentView(p.agent_id, p.role, frozenset(p.capabilities), p.slots, p.epoch,
                                                   AgentStatus.LIVE, at, e.position)
        if old is not None:
            agent.in_flight = old.in_flight

    def _task(self, e: RecordedEvent) -> TaskView:
        """The task an event is about; a stub if its submission was never seen (a foreign log)."""
        task_id: str = e.payload.task_id  # type: ignore[attr-defined]  # every task event has one
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskView(task_id, "unknown", 3, None, (), 1)
        task.version = e.stream_version
        return task

    def _unblock(self, task: TaskView) -> None:
        task.blocked_by = None
        self.blocked.discard(task.task_id)

    def _release(self, task: TaskView) -> None:
        self.leased.discard(task.task_id)
        agent = self.agents.get(task.agent_id) if task.agent_id else None
        if agent is not None:
            agent.in_flight.discard(task.task_id)

    def _enqueue(self, task: TaskView, at: float, *, not_before: float) -> None:
        task.queued_at, task.not_before = at, not_before
        task.agent_id = task.lease_id = None
        self.seq += 1
        task.queue_token = self.seq
        self.pushed += 1
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
            if task is not None and task.status == TaskStatus.QUEUED and task.queue_token == token:
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
        return task is not None and task.status == TaskStatus.QUEUED and task.queue_token == entry[1]
