"""The dispatcher as a :class:`actors.follow.Process`: its fold, its decisions, and when it must look again.

The Ray shell (:mod:`actors.dispatcher`) only adds what needs Ray: handing each new lease to its
agent (:meth:`Dispatch.react`) and noticing an agent whose actor died while it held a task
(:meth:`Dispatch.sense`). Tests drive this class with the real :class:`actors.follow.Follower`
over an in-memory log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec

from actors.dispatch import snapshot
from actors.dispatch.decide import decide, holder_silent, lease_expiry
from actors.dispatch.liveness import Liveness
from actors.dispatch.settings import DispatchSettings
from actors.dispatch.state import DispatchState, Lookup
from actors.follow import Process
from events import Intent, RecordedEvent
from events.catalogue import AgentRegistered, AgentRestarted, CheckpointSigned, SnapshotTaken, TaskStatus, status_after
from events.streams import task as task_stream
from projections.strategies import StrategyBook


class StreamReader(Protocol):
    """What :func:`status_in` reads: an ``EventStore`` or a ``StoreClient``."""

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]: ...


def status_in(log: StreamReader) -> Lookup:
    """A :data:`actors.dispatch.state.Lookup` that reads task streams from ``log``, as they stood at a position."""

    def lookup(task_id: str, position: int) -> TaskStatus | None:
        return status_after(e.type for e in log.read_stream(task_stream(task_id)) if e.position <= position)

    return lookup


class BeatReply(msgspec.Struct, frozen=True):
    """What a heartbeat hears back: whether a newer incarnation owns the agent, and the attempts it must give up
    (the log says they are over: their lease was taken back, a newer attempt exists, or the task was cancelled)."""

    fenced: bool = False
    abandon: list[str] = []


class Dispatch(Process):
    """Tasks and agents folded from the log, and the dispatcher's decisions about them.

    It can be snapshotted (:class:`actors.snapshots.Snapshotting`): see :mod:`actors.dispatch.snapshot`.
    """

    snapshot_schema = snapshot.SCHEMA
    snapshot_version = snapshot.VERSION

    def __init__(self, settings: DispatchSettings | None = None,
                 new_lease_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
                 started_at: float | None = None, lookup: Lookup | None = None) -> None:
        """``lookup``: asks the log where a task that left the state stood (:func:`status_in`); none: such a task
        counts as not submitted."""
        self.settings = self.configured = settings or DispatchSettings.model_validate({})
        self.strategies = StrategyBook()
        """The strategies in effect: a lease strategy for a capability overrides its configured lease."""
        self.state = DispatchState(remember=self.settings.remember_finished, lookup=lookup)
        self.new_lease_id = new_lease_id
        self._changed = 0
        self.gone: set[str] = set()
        """Agents seen dead (by the shell) since they last registered: what they hold is taken back at once."""
        self.liveness = Liveness(time.time() if started_at is None else started_at, keep=self.settings.lease)
        """What this dispatcher heard from its agents since it started (not in the log)."""

    @property
    def position(self) -> int:
        """The last log position folded."""
        return self.state.position

    @position.setter
    def position(self, value: int) -> None:
        self.state.position = value

    @property
    def changed(self) -> int:
        """The position of the last event that changed the state: the log's bookkeeping — snapshots of any actor,
        the council's signed checkpoints — does not, or snapshots and checkpoints would call for each other forever."""
        return self._changed

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event into the dispatcher's state (a strategy's into the leases it gives)."""
        if not isinstance(event.payload, SnapshotTaken | CheckpointSigned):
            self._changed = event.position
        if self.strategies.evolve(event):
            self.settings = self.configured.model_copy(
                update={"leases": {**self.configured.leases, **self.strategies.leases()}})
        self.state.evolve(event)
        if isinstance(event.payload, AgentRegistered | AgentRestarted):
            self.gone.discard(event.payload.agent_id)

    def encode_state(self) -> bytes:
        """Everything folded so far, as snapshot bytes."""
        return snapshot.encode(self.state, self.strategies)

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        """Become the state a snapshot encodes (decoded whole before anything is assigned)."""
        state, book = snapshot.decode(data, position, version)
        state.lookup = self.state.lookup
        self.state, self.strategies = state, book
        if book.strategies:  # as evolve derives them when a strategy is folded
            self.settings = self.configured.model_copy(
                update={"leases": {**self.configured.leases, **book.leases()}})

    def beat(self, agent_id: str, epoch: int, attempts: Mapping[str, int], now: float) -> BeatReply:
        """A heartbeat: incarnation ``epoch`` of ``agent_id`` is alive and works on ``attempts`` (task → attempt).

        An older incarnation than the log's latest is told it is fenced (and is not heard): it
        should stop everything. An attempt the log says is over is named in ``abandon`` and renews
        nothing: the agent stops its work at once. Its appends would be refused anyway; this stops
        its commands sooner, so no two attempts of a task work in one tree at once.
        """
        agent = self.state.agents.get(agent_id)
        if agent is not None and epoch < agent.epoch:
            return BeatReply(fenced=True, abandon=sorted(attempts))
        abandon = sorted(t for t, attempt in attempts.items() if self.over(t, attempt, agent_id))
        self.liveness.beat(agent_id, epoch, [t for t in attempts if t not in abandon], now)
        return BeatReply(abandon=abandon)

    def over(self, task_id: str, attempt: int, agent_id: str) -> bool:
        """Whether the log says attempt ``attempt`` of ``task_id`` by ``agent_id`` is over while its agent still works
        on it. Read from another thread than the fold's: every field read here only ever moves forward."""
        task = self.state.tasks.get(task_id) or self.state.finished.get(task_id)  # a finished one is forgotten
        if task is None:
            return False  # its submission is not folded yet: nothing says it is over
        return (task.taken_back >= attempt or task.attempt > attempt or task.status is TaskStatus.CANCELLED
                or (task.attempt == attempt and task.agent_id not in (None, agent_id)))

    def decide(self, now: float) -> Sequence[Intent]:
        """Queue, take back, resume, retry or bury, and assign: see :func:`actors.dispatch.decide`."""
        return decide(self.state, now, self.settings, self.new_lease_id, self.gone, self.liveness)

    def due(self, now: float) -> float:
        """The nearest lease expiry, holder silence or retry backoff: nothing else falls due without a new event."""
        due = []
        for task_id in self.state.leased:
            task = self.state.tasks[task_id]
            agent = self.state.agents.get(task.agent_id or "")
            due.append(lease_expiry(task, agent, self.settings, self.liveness))
            if agent is not None and not holder_silent(agent, now, self.settings, self.liveness):
                due.append(self.liveness.holding(agent) + self.settings.heartbeat_timeout)
        next_retry = self.state.next_due()
        if next_retry is not None:
            due.append(next_retry)
        return max(now + 0.01, min(due, default=now + 1.0))
