"""The read models as a plain fold of the log: rows in dicts, changed keys remembered.

:class:`Fold` knows nothing of DuckDB. It applies events one at a time, in log order, to the
rows of ``tasks``, ``requests`` and ``agents`` (:mod:`projections.rows`), and remembers which
rows changed so a writer can store just those. Event types it does not read are skipped, so the
log may grow new types without breaking it. It accepts every order the log allows: events of a
stream come in order, but streams interleave freely, so a task may name a request or an agent the
fold has not seen yet (it gets a minimal row), and a stream may even start past its first event.

Derived counts (a request's tasks by status, an agent's tasks in flight) are kept up to date on
every task transition, from the task row before and after the event: see :meth:`Fold._moved`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from events import RecordedEvent
from projections.rows import AgentRow, RequestRow, TaskRow

_HOLDING = frozenset({"assigned", "running"})
"""Task statuses in which the task occupies one of its agent's slots."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _us(seconds: float | None) -> int | None:
    """Epoch seconds (as task payloads carry them) to integer microseconds."""
    return None if seconds is None else round(seconds * 1_000_000)


def _bucket(status: str | None) -> str:
    """Which of a request's counters a task in ``status`` counts in."""
    return status if status == "completed" or status == "dead_lettered" else "in_progress"


class Changed(NamedTuple):
    """The rows that changed since the last :meth:`Fold.take_changed`, each once."""

    tasks: list[TaskRow]
    requests: list[RequestRow]
    agents: list[AgentRow]

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.tasks) + len(self.requests) + len(self.agents)


class Fold:
    """``tasks``, ``requests`` and ``agents`` rows folded from the log up to :attr:`position`."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRow] = {}
        self.requests: dict[str, RequestRow] = {}
        self.agents: dict[str, AgentRow] = {}
        self.position = 0
        self._dirty_tasks: set[str] = set()
        self._dirty_requests: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._task_steps: dict[str, Callable[[TaskRow, Any, int], None]] = {
            "task.submitted": _submitted, "task.queued": _queued, "task.assigned": _assigned,
            "task.started": _started, "task.completed": _completed, "task.failed": _failed,
            "task.lease_expired": _lease_expired, "task.retried": _retried,
            "task.dead_lettered": _dead_lettered, "task.requeued": _requeued,
        }
        self._agent_steps: dict[str, Callable[[AgentRow, Any, int], None]] = {
            "agent.registered": _registered, "agent.heartbeat": _heartbeat,
            "agent.unresponsive": _unresponsive, "agent.restarted": _restarted, "agent.retired": _retired,
        }
        self.reads: frozenset[str] = frozenset({*self._task_steps, *self._agent_steps, "request.submitted"})
        """The event types this fold reads; a reader may skip decoding any other."""

    # -- applying events ----------------------------------------------------------------------

    def apply(self, event: RecordedEvent) -> None:
        """Fold one event; events must come in log order. Types the fold does not read are skipped."""
        at = (event.recorded_at - _EPOCH) // _ONE_US
        self.apply_payload(event.position, event.type, at, event.payload)

    def apply_payload(self, position: int, type_name: str, recorded_at_us: int, payload: Any) -> None:
        """Fold one event given as its position, type, recorded-at (UTC µs) and decoded payload.

        The same as :meth:`apply` without the envelope, for a reader of raw rows. Promises that
        every row it touches is reported once by the next :meth:`take_changed`.
        """
        self.position = position
        step = self._task_steps.get(type_name)
        if step is not None:
            self._task(position, recorded_at_us, payload, step)
            return
        agent_step = self._agent_steps.get(type_name)
        if agent_step is not None:
            row = self._agent(payload.agent_id)
            agent_step(row, payload, recorded_at_us)
            row.position = position
            self._dirty_agents.add(row.agent_id)
        elif type_name == "request.submitted":
            req = self._request(payload.request_id)
            req.title, req.priority, req.submitted_by = payload.title, payload.priority, payload.submitted_by
            req.submitted_at = recorded_at_us
            req.position = position
            self._dirty_requests.add(req.request_id)

    def _task(self, position: int, at: int, payload: Any, step: Callable[[TaskRow, Any, int], None]) -> None:
        task_id = payload.task_id
        row = self.tasks.get(task_id)
        if row is None:  # its first event in the log, usually task.submitted; any other gets a minimal row
            row = self.tasks[task_id] = TaskRow(task_id)
            before = None
        else:
            before = (row.status, row.agent_id, row.request_id)
        step(row, payload, at)
        row.position = position
        self._dirty_tasks.add(task_id)
        after = (row.status, row.agent_id, row.request_id)
        if after != before:
            self._moved(before, after, position, at)

    def _moved(self, before: tuple[str | None, str | None, str | None] | None,
               after: tuple[str | None, str | None, str | None], position: int, at: int) -> None:
        """Move one task's weight in the derived counts from where ``before`` put it to where ``after`` does.

        Invariant: an agent's ``in_flight`` is the number of tasks whose (status, agent) is
        (assigned or running, that agent); a request's ``tasks``/``completed``/``dead_lettered``/
        ``in_progress`` count the tasks carrying its id, by :func:`_bucket`. Each task adds its
        weight once, where its row says, and takes it back from exactly there when the row changes,
        so the counts stay equal to a recount of the task rows.
        """
        status, agent_id, request_id = after
        if before is not None and before[0] in _HOLDING and before[1] is not None:
            agent = self._agent(before[1])
            agent.in_flight -= 1
            agent.position = position
            self._dirty_agents.add(agent.agent_id)
        if status in _HOLDING and agent_id is not None:
            agent = self._agent(agent_id)
            agent.in_flight += 1
            agent.position = position
            self._dirty_agents.add(agent_id)
        old = (before[2], _bucket(before[0])) if before is not None and before[2] is not None else None
        new = (request_id, _bucket(status)) if request_id is not None else None
        if old == new:
            return
        if old is not None:
            self._count(old[0], old[1], -1, position, at)
        if new is not None:
            self._count(new[0], new[1], +1, position, at)

    def _count(self, request_id: str, bucket: str, delta: int, position: int, at: int) -> None:
        req = self._request(request_id)
        req.tasks += delta
        if bucket == "completed":
            req.completed += delta
        elif bucket == "dead_lettered":
            req.dead_lettered += delta
        else:
            req.in_progress += delta
        if req.tasks and req.completed == req.tasks:
            status = "completed"
        elif req.dead_lettered and not req.in_progress:
            status = "failed"
        else:
            status = "open"
        if status != req.status:
            req.status = status
            req.finished_at = None if status == "open" else at
        req.position = position
        self._dirty_requests.add(request_id)

    def _agent(self, agent_id: str) -> AgentRow:
        row = self.agents.get(agent_id)
        if row is None:
            row = self.agents[agent_id] = AgentRow(agent_id)
        return row

    def _request(self, request_id: str) -> RequestRow:
        row = self.requests.get(request_id)
        if row is None:
            row = self.requests[request_id] = RequestRow(request_id)
        return row

    # -- what changed ---------------------------------------------------------------------------

    def take_changed(self) -> Changed:
        """The rows changed since the last call (each once, in no particular order); forget them."""
        changed = Changed([self.tasks[k] for k in self._dirty_tasks], [self.requests[k] for k in self._dirty_requests],
                          [self.agents[k] for k in self._dirty_agents])
        self._dirty_tasks, self._dirty_requests, self._dirty_agents = set(), set(), set()
        return changed

    def load(self, position: int, tasks: Iterable[TaskRow], requests: Iterable[RequestRow],
             agents: Iterable[AgentRow]) -> None:
        """Replace every row with stored ones, folded up to ``position``; nothing is left changed."""
        self.tasks = {r.task_id: r for r in tasks}
        self.requests = {r.request_id: r for r in requests}
        self.agents = {r.agent_id: r for r in agents}
        self.position = position
        self.take_changed()


# -- one function per task event: change the row as the event says --------------------------------


def _submitted(row: TaskRow, e: Any, at: int) -> None:
    row.request_id, row.capability, row.title = e.request_id, e.capability, e.title
    row.priority, row.max_attempts, row.depends_on = e.priority, e.max_attempts, list(e.depends_on)
    row.status, row.submitted_at, row.attempts_used = "submitted", at, 0


def _queued(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.priority, row.queued_at = "queued", e.priority, at


def _assigned(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.agent_id, row.attempt, row.assigned_at = "assigned", e.agent_id, e.attempt, at
    row.lease_expires_at, row.started_at = _us(e.lease_expires_at), None
    row.attempts_used += 1


def _started(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.agent_id, row.attempt, row.started_at = "running", e.agent_id, e.attempt, at


def _completed(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.agent_id, row.attempt, row.finished_at = "completed", e.agent_id, e.attempt, at
    row.duration_s, row.lease_expires_at = e.duration_s, None


def _failed(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.attempt, row.last_error, row.lease_expires_at = "failed", e.attempt, e.error, None
    if e.agent_id is not None:
        row.agent_id = e.agent_id


def _lease_expired(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.agent_id, row.attempt, row.lease_expires_at = "failed", e.agent_id, e.attempt, None
    row.last_error = f"lease {e.lease_id} of agent {e.agent_id} expired"


def _retried(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.attempt, row.queued_at, row.not_before = "queued", e.attempt, at, _us(e.not_before)


def _dead_lettered(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.attempts_used, row.last_error, row.finished_at = "dead_lettered", e.attempts, e.last_error, at
    row.lease_expires_at = None


def _requeued(row: TaskRow, e: Any, at: int) -> None:
    row.status, row.queued_at, row.attempts_used = "queued", at, 0
    row.finished_at = row.not_before = row.lease_expires_at = None


# -- one function per agent event ------------------------------------------------------------------


def _registered(row: AgentRow, e: Any, at: int) -> None:
    row.role, row.capabilities, row.version, row.slots = e.role, list(e.capabilities), e.version, e.slots
    row.epoch, row.status, row.registered_at = e.epoch, "live", at


def _heartbeat(row: AgentRow, e: Any, at: int) -> None:
    if row.epoch is not None and e.epoch < row.epoch:
        return  # a fenced incarnation's heartbeat says nothing about the agent now
    row.epoch, row.last_heartbeat = e.epoch, at
    if row.status != "retired":
        row.status = "live"


def _unresponsive(row: AgentRow, e: Any, at: int) -> None:
    if row.status != "retired":
        row.status = "unresponsive"


def _restarted(row: AgentRow, e: Any, at: int) -> None:
    row.epoch, row.status = e.epoch, "live"


def _retired(row: AgentRow, e: Any, at: int) -> None:
    row.status = "retired"
