"""The read models as a plain fold of the log: rows in dicts, changed keys remembered.

:class:`Fold` knows nothing of DuckDB. It applies events one at a time, in log order, to the
rows of ``tasks``, ``requests``, ``agents`` and ``llm_calls`` (:mod:`projections.rows`), and
remembers which rows changed so a writer can store just those. Event types it does not read are skipped, so the
log may grow new types without breaking it. It accepts every order the log allows: events of a
stream come in order, but streams interleave freely, so a task may name a request or an agent the
fold has not seen yet (it gets a minimal row), and a stream may even start past its first event
(a model call may be first seen at its answer, or at its repair).

What each event does to its own row is in :mod:`projections.steps`. Derived counts (a request's
tasks by status, an agent's tasks in flight) are kept here, up to date on every task transition,
from the task row before and after the event: see :meth:`Fold._moved`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from events import RecordedEvent
from events.catalogue import HOLDING, TaskStatus, next_status
from projections.rows import AgentRow, ModelCallRow, RequestRow, TaskRow
from projections.steps import AGENT_STEPS, CALL_STEPS, FIELDS, TASK_STEPS, Payload, request_submitted

__all__ = ["FIELDS", "Changed", "Fold"]

_UNCOUNTED = "(not counted yet)"
"""Stands for the status of a task the fold has not seen before: it is in no count yet."""

_BUCKETS: dict[str | None, str | None] = {TaskStatus.COMPLETED: "completed", TaskStatus.DEAD_LETTERED: "dead_lettered",
                                          TaskStatus.CANCELLED: "cancelled", _UNCOUNTED: None}
"""Which of a request's counters a task in a status counts in; any status not here: ``in_progress``."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class Changed(NamedTuple):
    """The rows that changed since the last :meth:`Fold.take_changed`, each once."""

    tasks: list[TaskRow]
    requests: list[RequestRow]
    agents: list[AgentRow]
    calls: list[ModelCallRow]

    def __len__(self) -> int:
        return len(self.tasks) + len(self.requests) + len(self.agents) + len(self.calls)


class Fold:
    """``tasks``, ``requests``, ``agents`` and ``llm_calls`` rows folded from the log up to :attr:`position`."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRow] = {}
        self.requests: dict[str, RequestRow] = {}
        self.agents: dict[str, AgentRow] = {}
        self.calls: dict[str, ModelCallRow] = {}
        """Model calls by key."""
        self.position = 0
        self._dirty_tasks: set[str] = set()
        self._dirty_requests: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._dirty_calls: set[str] = set()
        self._task_steps = TASK_STEPS
        self._agent_steps = AGENT_STEPS
        self._call_steps = CALL_STEPS
        self.reads: frozenset[str] = frozenset(FIELDS)
        """The event types this fold reads; a reader may skip decoding any other."""

    # -- applying events ----------------------------------------------------------------------

    def apply(self, event: RecordedEvent) -> None:
        """Fold one event; events must come in log order. Types the fold does not read are skipped."""
        at = (event.recorded_at - _EPOCH) // _ONE_US
        self.apply_payload(event.position, event.type, at, event.payload)

    def apply_payload(self, position: int, type_name: str, recorded_at_us: int, payload: Payload) -> None:
        """Fold one event given as its position, type, recorded-at (UTC µs) and decoded payload.

        The same as :meth:`apply` without the envelope, for a reader of raw rows; ``payload``
        needs only the fields :data:`FIELDS` names for its type. Promises that every row it
        touches is reported once by the next :meth:`take_changed`.
        """
        self.position = position
        step = self._task_steps.get(type_name)
        if step is None:
            self._apply_other(position, type_name, recorded_at_us, payload)
            return
        # The task path, inline: it runs for most events of a log.
        task_id = payload.task_id
        row = self.tasks.get(task_id)
        status: str | None
        agent_id: str | None
        request_id: str | None
        if row is None:  # its first event in the log, usually task.submitted; any other gets a minimal row
            row = self.tasks[task_id] = TaskRow(task_id)
            status, agent_id, request_id = _UNCOUNTED, None, None
        else:
            status, agent_id, request_id = row.status, row.agent_id, row.request_id
        row.status = next_status(row.status, type_name)  # type: ignore[arg-type]  # a stored status is a TaskStatus value
        step(row, payload, recorded_at_us)
        row.position = position
        self._dirty_tasks.add(task_id)
        if row.status != status or row.agent_id != agent_id or row.request_id != request_id:
            self._moved(row, status, agent_id, request_id, position, recorded_at_us)

    def _apply_other(self, position: int, type_name: str, at: int, payload: Payload) -> None:
        agent_step = self._agent_steps.get(type_name)
        if agent_step is not None:
            row = self._agent(payload.agent_id)
            agent_step(row, payload, at)
            row.position = position
            self._dirty_agents.add(row.agent_id)
            return
        call_step = self._call_steps.get(type_name)
        if call_step is not None:
            call = self.calls.get(payload.key)
            if call is None:
                call = self.calls[payload.key] = ModelCallRow(payload.key)
            call_step(call, payload, at)
            call.position = position
            self._dirty_calls.add(call.key)
        elif type_name == "request.submitted":
            req = self._request(payload.request_id)
            request_submitted(req, payload, at)
            req.position = position
            self._dirty_requests.add(req.request_id)
        elif type_name == "request.finished":
            req = self._request(payload.request_id)
            req.outcome = payload.outcome
            req.position = position
            self._dirty_requests.add(req.request_id)

    def _moved(self, row: TaskRow, status: str | None, agent_id: str | None, request_id: str | None,
               position: int, at: int) -> None:
        """Move ``row``'s weight in the derived counts from where (status, agent_id, request_id) put it.

        Invariant: an agent's ``in_flight`` is the number of tasks whose (status, agent) is
        (assigned or running, that agent); a request's ``tasks``/``completed``/``dead_lettered``/
        ``in_progress`` count the tasks carrying its id, by bucket (:data:`_BUCKETS`). Each task
        adds its weight once, where its row says, and takes it back from exactly there when the
        row changes, so the counts always equal a recount of the task rows. A task seen for the
        first time (``status`` is ``_UNCOUNTED``) has no weight to take back.
        """
        new_status, new_agent, new_request = row.status, row.agent_id, row.request_id
        held = agent_id if status in HOLDING else None
        holds = new_agent if new_status in HOLDING else None
        if held != holds:
            if held is not None:
                self._hold(held, -1, position)
            if holds is not None:
                self._hold(holds, +1, position)
        old = _BUCKETS.get(status, "in_progress")
        new = _BUCKETS.get(new_status, "in_progress")
        if old == new and request_id == new_request:
            return
        if old is not None and request_id is not None:
            self._count(request_id, old, -1, position, at)
        if new is not None and new_request is not None:  # (new is None only for _UNCOUNTED, never a row's status)
            self._count(new_request, new, +1, position, at)

    def _hold(self, agent_id: str, delta: int, position: int) -> None:
        agent = self._agent(agent_id)
        agent.in_flight += delta
        agent.position = position
        self._dirty_agents.add(agent_id)

    def _count(self, request_id: str, bucket: str, delta: int, position: int, at: int) -> None:
        req = self._request(request_id)
        req.tasks += delta
        if bucket == "completed":
            req.completed += delta
        elif bucket == "dead_lettered":
            req.dead_lettered += delta
        elif bucket == "cancelled":
            req.cancelled += delta
        else:
            req.in_progress += delta
        if req.tasks and req.completed == req.tasks:
            status = "completed"
        elif req.dead_lettered and not req.in_progress:
            status = "failed"
        elif req.cancelled and not req.in_progress:
            status = "cancelled"
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
        changed = self.peek_changed()
        self._dirty_tasks, self._dirty_requests, self._dirty_agents, self._dirty_calls = set(), set(), set(), set()
        return changed

    def changed(self, table: str) -> list[TaskRow] | list[RequestRow] | list[AgentRow] | list[ModelCallRow]:
        """The rows of ``table`` (``tasks``, ``requests``, ``agents`` or ``llm_calls``) :meth:`take_changed` would
        return now."""
        if table == "tasks":
            return [self.tasks[k] for k in self._dirty_tasks]
        if table == "requests":
            return [self.requests[k] for k in self._dirty_requests]
        if table == "agents":
            return [self.agents[k] for k in self._dirty_agents]
        if table == "llm_calls":
            return [self.calls[k] for k in self._dirty_calls]
        raise KeyError(table)

    def peek_changed(self) -> Changed:
        """The rows :meth:`take_changed` would return now, without forgetting them (the live rows, not copies)."""
        return Changed([self.tasks[k] for k in self._dirty_tasks], [self.requests[k] for k in self._dirty_requests],
                       [self.agents[k] for k in self._dirty_agents], [self.calls[k] for k in self._dirty_calls])

    def load(self, position: int, tasks: Iterable[TaskRow], requests: Iterable[RequestRow],
             agents: Iterable[AgentRow], calls: Iterable[ModelCallRow] = ()) -> None:
        """Replace every row with stored ones, folded up to ``position``; nothing is left changed."""
        self.tasks = {r.task_id: r for r in tasks}
        self.requests = {r.request_id: r for r in requests}
        self.agents = {r.agent_id: r for r in agents}
        self.calls = {r.key: r for r in calls}
        self.position = position
        self._dirty_tasks, self._dirty_requests, self._dirty_agents, self._dirty_calls = set(), set(), set(), set()
