"""The dispatcher's decisions: given what the log says and the time, which events to append.

:func:`decide` never changes what a task *is*; it proposes events, each appended to the task's
own stream with the stream version the decision was based on. If anything happened to the task
in between — another dispatcher incarnation assigned it, the agent finished it — the append is
refused with a concurrency error and the next round decides again from the log. That is why a
dispatcher killed at any moment, or two of them racing, never assign a task twice.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Set
from typing import NamedTuple

from actors.dispatch.liveness import Liveness
from actors.dispatch.settings import DispatchSettings
from actors.dispatch.state import AgentView, DispatchState, TaskView
from events import Event, Intent
from events.catalogue import (
    AgentStatus,
    TaskAssigned,
    TaskDeadLettered,
    TaskLeaseExpired,
    TaskQueued,
    TaskReopened,
    TaskResumed,
    TaskRetried,
    TaskStatus,
)
from events.catalogue.tasks import RETRIED


def decide(state: DispatchState, now: float, settings: DispatchSettings,
           new_lease_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
           gone: Set[str] = frozenset(), liveness: Liveness | None = None) -> list[Intent]:
    """Everything the dispatcher should do now, in this order: reopen tasks dead-lettered by a dependency that was
    requeued, queue tasks whose dependencies are done, take back expired leases, resume tasks whose approval or
    vote was decided, retry or dead-letter failed attempts, assign queued work.

    ``gone`` are agents seen dead since their last registration (their actor died while running
    a task): their leases are taken back at once. ``liveness`` is what the dispatcher heard from
    its agents (none: only their registrations count). Each task gets at most one decision per
    call. No fact in the state changes; only retried tasks whose backoff has passed move between
    the state's queue indexes.
    """
    heard = liveness or Liveness(started_at=0.0)
    released = _reopen(state) + _release_dependents(state, now, settings)
    out = _expire_leases(state, now, settings, gone, heard) + _retry_or_bury(state, now, settings) + _resume(state)
    state.release_due(now)
    fresh = {a.stream: a for a in released if isinstance(a.events[0], TaskQueued)}
    for assignment in _assign(state, now, settings, new_lease_id, list(fresh.values()), gone, heard):
        queued = fresh.pop(assignment.stream, None)  # queued and assigned in one append
        out.append(assignment if queued is None else
                   Intent(assignment.stream, [*queued.events, *assignment.events], assignment.expected))
    out += [a for a in released if a.stream in fresh or not isinstance(a.events[0], TaskQueued)]
    return out


def live(agent: AgentView, now: float, settings: DispatchSettings, liveness: Liveness) -> bool:
    """Whether ``agent`` may take work: registered, not retired or unresponsive, heard from lately."""
    return agent.status == AgentStatus.LIVE and now - liveness.heard(agent) <= settings.heartbeat_timeout


def lease_expiry(task: TaskView, agent: AgentView | None, settings: DispatchSettings, liveness: Liveness) -> float:
    """When ``task``'s lease runs out: its capability's lease (``settings.lease_for``) after its assignment, or after
    the last heartbeat in which its holder ``agent`` said it works on it — and never within one heartbeat
    timeout of the dispatcher's start, before the holder could be heard."""
    renewed = liveness.renewed(task, agent) if agent is not None else None
    return max(task.lease_expires_at, liveness.started_at + settings.heartbeat_timeout,
               -1.0 if renewed is None else renewed + settings.lease_for(task.capability))


def holder_silent(agent: AgentView, now: float, settings: DispatchSettings, liveness: Liveness) -> bool:
    """Whether the agent holding a lease is no longer registered as live, or has been silent too long."""
    return agent.status != AgentStatus.LIVE or now - liveness.holding(agent) > settings.heartbeat_timeout


class TakenBack(NamedTuple):
    """Why a lease is taken back: in words, and whether its term ran out while its holder was alive and heard (a
    lease too short for the work, not a holder that died, restarted or fell silent)."""

    reason: str
    ran_out: bool = False


def taken_back(task: TaskView, agent: AgentView | None, now: float, settings: DispatchSettings, gone: Set[str],
               liveness: Liveness) -> TakenBack | None:
    """Why ``task``'s lease, held by ``agent``, must be taken back now; None while it holds."""
    if agent is None:
        return TakenBack(f"its agent {task.agent_id} is not registered")
    if agent.agent_id in gone:
        return TakenBack(f"its agent {agent.agent_id} died while running it")
    if task.assigned_at_position < agent.incarnation_position:
        return TakenBack(f"its agent {agent.agent_id} restarted")
    if agent.status != AgentStatus.LIVE:
        return TakenBack(f"its agent {agent.agent_id} is {agent.status}")
    silent = now - liveness.holding(agent)
    if silent > settings.heartbeat_timeout:
        return TakenBack(f"its agent {agent.agent_id} was silent for {silent:.0f} s")
    if now >= lease_expiry(task, agent, settings, liveness):
        return TakenBack(f"no heartbeat of {agent.agent_id} said it was still working on it for "
                         f"{settings.lease_for(task.capability):g} s", ran_out=True)
    return None


def effective_priority(task: TaskView, now: float, settings: DispatchSettings) -> int:
    """The priority a waiting task competes with: 0 once past its start deadline, otherwise its
    priority raised one level for every ``settings.ageing`` seconds it has waited."""
    if task.start_deadline is not None and now > task.start_deadline:
        return 0
    return max(0, task.priority - int((now - task.queued_at) // settings.ageing))


_GONE = {TaskStatus.DEAD_LETTERED: "dead-lettered", TaskStatus.CANCELLED: "cancelled"}
"""Statuses of a dependency that will never complete, and how a dependent's dead letter says it."""


def _reopen(state: DispatchState) -> list[Intent]:
    """Reopen each task dead-lettered because a dependency was, once that dependency is no longer dead: a person or
    the error detector requeued it. Its own dependents follow a round later, so a requeue brings back the whole
    chain behind it, each task waiting for the one before it."""
    out = []
    for task_id in sorted(state.blocked):
        task = state.tasks[task_id]
        dependency = state.tasks.get(task.blocked_by or "")
        if task.status == TaskStatus.DEAD_LETTERED and dependency is not None and dependency.status not in _GONE:
            out.append(Intent(task.stream, [TaskReopened(task_id=task_id, dependency=dependency.task_id)],
                              task.version))
    return out


def _release_dependents(state: DispatchState, now: float, settings: DispatchSettings) -> list[Intent]:
    """Queue submitted tasks whose dependencies completed; dead-letter those with a dead dependency."""
    out = []
    for task_id in sorted(state.waiting):
        task = state.tasks[task_id]
        if task.status != TaskStatus.SUBMITTED:
            continue
        deps = [(d, state.status_of(d)) for d in task.depends_on]  # a finished dependency is forgotten: ask its status
        dead = next(((d, s) for d, s in deps if s in _GONE), None)
        if dead is not None:
            dead_id, status = dead
            kind = "permanent" if status == TaskStatus.CANCELLED else state.tasks[dead_id].failure
            out.append(Intent(task.stream, [TaskDeadLettered(
                task_id=task_id, attempts=0, last_error=f"dependency {dead_id} was {_GONE[status]}",
                kind=kind, dependency=dead_id)], task.version))
        elif all(s == TaskStatus.COMPLETED for _, s in deps):
            wait = settings.start_deadlines[task.priority]
            out.append(Intent(task.stream, [TaskQueued(
                task_id=task_id, priority=task.priority, start_deadline=None if wait is None else now + wait)],
                task.version))
    return out


def _expire_leases(state: DispatchState, now: float, settings: DispatchSettings, gone: Set[str],
                   liveness: Liveness) -> list[Intent]:
    out = []
    for task_id in sorted(state.leased):
        task = state.tasks[task_id]
        why = taken_back(task, state.agents.get(task.agent_id or ""), now, settings, gone, liveness)
        if why is not None:
            out.append(Intent(task.stream, [TaskLeaseExpired(
                task_id=task_id, agent_id=task.agent_id or "unknown", lease_id=task.lease_id or "unknown",
                attempt=task.attempt, reason=why.reason, ran_out=why.ran_out)], task.version))
    return out


def _resume(state: DispatchState) -> list[Intent]:
    """Send back to their queues tasks whose approval or vote was decided (the gate then acts on the outcome)."""
    out = []
    for task_id in sorted(state.resumable):
        task = state.tasks[task_id]
        authority = next((a for a, t in state.awaiting.items() if t == task_id), None)
        if authority is None or task.status != TaskStatus.AWAITING_APPROVAL:
            continue
        out.append(Intent(task.stream, [TaskResumed(task_id=task_id, authority_id=authority,
                                                    outcome=state.decided.get(authority, ""))], task.version))
    return out


def _retry_or_bury(state: DispatchState, now: float, settings: DispatchSettings) -> list[Intent]:
    out = []
    for task_id in sorted(state.undecided):
        task = state.tasks[task_id]
        used = task.attempt - task.first_attempt + 1
        if task.failure in RETRIED and used < task.max_attempts:
            event: Event = TaskRetried(task_id=task_id, attempt=task.attempt + 1,
                                       not_before=now + settings.backoff(used))
        else:
            event = TaskDeadLettered(task_id=task_id, attempts=used, last_error=task.last_error, kind=task.failure)
        out.append(Intent(task.stream, [event], task.version))
    return out


def _assign(state: DispatchState, now: float, settings: DispatchSettings, new_lease_id: Callable[[], str],
            fresh: list[Intent], gone: Set[str], liveness: Liveness) -> list[Intent]:
    """Give the most urgent queued tasks to the least loaded capable agents, while slots are free.

    ``fresh`` are tasks being queued by this same round: they compete as if queued now (behind
    every task already waiting in their queue) and may be assigned in the same append. Tasks for
    which no capable agent has a free slot stay in their queues (backpressure): nothing is held
    anywhere but in the log.
    """
    load = {a.agent_id: len(a.in_flight) for a in state.agents.values()
            if live(a, now, settings, liveness) and a.agent_id not in gone and a.free_slots() > 0}
    by_capability: dict[str, list[AgentView]] = {}
    for agent_id in load:
        agent = state.agents[agent_id]
        for capability in agent.capabilities:
            by_capability.setdefault(capability, []).append(agent)
    queues = state.ready_queues()
    newcomers: dict[tuple[str, int], list[TaskView]] = {}
    for append in fresh:
        queued = append.events[0]
        assert isinstance(queued, TaskQueued)
        task = state.tasks[queued.task_id]
        newcomers.setdefault((task.capability, task.priority), []).append(task)
    for key in newcomers:
        queues.setdefault(key, [])
    taken: list[tuple[tuple[str, int], tuple[float, int, str]]] = []
    out: list[Intent] = []
    while True:
        best: tuple[tuple[int, float, int], tuple[str, int], TaskView] | None = None
        for key, heap in queues.items():
            if not any(load[a.agent_id] < a.slots for a in by_capability.get(key[0], ())):
                continue
            while heap and not state.is_current(heap[0]):
                heapq.heappop(heap)  # a stale entry: the task moved on
            if heap:
                task = state.tasks[heap[0][2]]
                rank = (effective_priority(task, now, settings), task.queued_at, task.queue_token)
            elif newcomers.get(key):
                task = newcomers[key][0]
                rank = (task.priority, now, 0)
            else:
                continue
            if best is None or rank < best[0]:
                best = (rank, key, task)
        if best is None:
            break
        _, key, task = best
        if queues[key] and queues[key][0][2] == task.task_id:
            taken.append((key, heapq.heappop(queues[key])))
        else:
            newcomers[key].pop(0)
        agent = min((a for a in by_capability[key[0]] if load[a.agent_id] < a.slots),
                    key=lambda a: (load[a.agent_id] / a.slots, a.agent_id))
        load[agent.agent_id] += 1
        out.append(Intent(task.stream, [TaskAssigned(
            task_id=task.task_id, agent_id=agent.agent_id, lease_id=new_lease_id(),
            lease_expires_at=now + settings.lease_for(task.capability), attempt=task.attempt)], task.version))
    for key, entry in taken:  # back in place: entries become stale once the assignment is folded
        heapq.heappush(queues[key], entry)
    return out
