"""Test support: random, seeded logs of everything the read models fold, and ways to compare projections.

``write_random_log`` appends task, agent and request lifecycles to a real store, interleaved:
retries, lease expiries (also before a task started), dead letters and requeues, dependencies
that hold a task in ``submitted``, tasks without a request, requests submitted after their tasks
or never, streams that begin past their first event, agents that hold tasks before they register,
stale heartbeats, restarts and retirements, and rows of a type this agent-council does not know.
"""

from __future__ import annotations

import uuid
from random import Random

import msgspec

from events import ANY, EventStore
from events.catalogue import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    AgentUnresponsive,
    RequestSubmitted,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
)
from projections import READ_MODELS, Projector


def append_raw(store: EventStore, stream: str, type_name: str, version: int, payload: dict[str, object]) -> None:
    """Store a payload as another release would have (an old schema version, or a type unknown here)."""
    store._recorder.append(stream, ANY, [  # below the store on purpose: the store only writes what it knows
        (uuid.uuid4().bytes, type_name, version, b"{}", msgspec.json.encode(payload))
    ])


class _Task:
    def __init__(self, task_id: str, request_id: str | None, max_attempts: int) -> None:
        self.task_id, self.request_id, self.max_attempts = task_id, request_id, max_attempts
        self.phase, self.agent_id, self.attempt, self.used = "queued", "", 0, 0
        self.waits_for: str | None = None


def write_random_log(store: EventStore, *, tasks: int = 300, agents: int = 12, requests: int = 20,
                     seed: int = 1, finish: bool = False) -> None:
    """Append ``tasks`` task lifecycles with their agents and requests to ``store``.

    With ``finish=False`` about 25 tasks are left where they are (queued, assigned, running...).
    """
    rng = Random(seed)
    agent_ids = [f"ag{i}" for i in range(agents)]
    epochs = dict.fromkeys(agent_ids, 0)
    request_ids = [f"rq{i}" for i in range(requests)]
    late_requests = set(rng.sample(request_ids, requests // 4))
    never = set(rng.sample(sorted(late_requests), len(late_requests) // 2))
    for a in agent_ids[: agents // 2]:  # the rest register later, some after their first task
        _register(store, a, epochs, rng)
    for r in request_ids:
        if r not in late_requests:
            store.append(f"request-{r}", [RequestSubmitted(request_id=r, title=r, priority=rng.randrange(4))])
    live: list[_Task] = []
    done: list[str] = []
    dead: list[_Task] = []
    made = 0
    while made < tasks or (finish and live):
        if made < tasks and (len(live) < 25 or rng.random() < 0.2):
            made += 1
            live.append(_new_task(store, f"t{made}", rng, request_ids, done))
        if rng.random() < 0.03:
            _agent_event(store, rng.choice(agent_ids), epochs, rng)
        if rng.random() < 0.02:
            late = sorted(late_requests - never)
            if late:
                r = rng.choice(late)
                late_requests.discard(r)
                store.append(f"request-{r}", [RequestSubmitted(request_id=r, title=r, submitted_by="late")])
        if rng.random() < 0.01:
            append_raw(store, "elsewhere", "order.shipped", 1, {"order": made})  # a type from the future
        if dead and rng.random() < 0.05:
            t = dead.pop(rng.randrange(len(dead)))
            store.append(f"task-{t.task_id}", [TaskRequeued(task_id=t.task_id, reason="try again")])
            t.phase, t.used = "queued", 0
            live.append(t)
        if not live:
            continue
        t = rng.choice(live)
        if _step(store, t, rng, agent_ids, done):
            live.remove(t)
            if t.phase == "dead_lettered":
                dead.append(t)
    for a in agent_ids:
        if epochs[a] == 0 and rng.random() < 0.5:
            _register(store, a, epochs, rng)


def _new_task(store: EventStore, task_id: str, rng: Random, request_ids: list[str], done: list[str]) -> _Task:
    request_id = rng.choice(request_ids) if rng.random() < 0.9 else None
    t = _Task(task_id, request_id, max_attempts=rng.choice([1, 2, 3]))
    priority = rng.randrange(4)
    if rng.random() < 0.04:  # a stream that starts past its first event (an older, trimmed history)
        t.phase = rng.choice(["queued", "running"])
        t.agent_id, t.attempt, t.used = "ag0", 1, 1
        if t.phase == "queued":
            store.append(f"task-{task_id}", [TaskQueued(task_id=task_id, priority=priority)])
        else:
            store.append(f"task-{task_id}", [TaskStarted(task_id=task_id, agent_id="ag0", attempt=1)])
        return t
    depends = [rng.choice(done)] if done and rng.random() < 0.15 else []
    submitted = TaskSubmitted(task_id=task_id, capability=rng.choice(["code.generate", "test.run"]), priority=priority,
                              request_id=request_id, inputs={"n": rng.randrange(100)}, depends_on=depends,
                              max_attempts=t.max_attempts, title=f"task {task_id}")
    if depends and rng.random() < 0.5:
        store.append(f"task-{task_id}", [submitted])  # waits in 'submitted' for a while
        t.phase = "submitted"
    else:
        store.append(f"task-{task_id}", [submitted, TaskQueued(task_id=task_id, priority=priority)])
    return t


def _step(store: EventStore, t: _Task, rng: Random, agent_ids: list[str], done: list[str]) -> bool:
    """Move ``t`` one step; True when it leaves the live set (completed or dead-lettered)."""
    stream, tid = f"task-{t.task_id}", t.task_id
    if t.phase == "submitted":
        store.append(stream, [TaskQueued(task_id=tid, priority=rng.randrange(4), start_deadline=1.9e9)])
        t.phase = "queued"
    elif t.phase == "queued":
        t.agent_id, t.attempt, t.used = rng.choice(agent_ids), t.attempt + 1, t.used + 1
        store.append(stream, [TaskAssigned(task_id=tid, agent_id=t.agent_id, lease_id=f"{tid}/{t.attempt}",
                                           lease_expires_at=1.8e9 + rng.random() * 1000, attempt=t.attempt)])
        t.phase = "assigned"
    elif t.phase == "assigned" and rng.random() < 0.1:
        store.append(stream, [TaskLeaseExpired(task_id=tid, agent_id=t.agent_id, lease_id=f"{tid}/{t.attempt}",
                                               attempt=t.attempt)])
        t.phase = "failed"
    elif t.phase == "assigned":
        store.append(stream, [TaskStarted(task_id=tid, agent_id=t.agent_id, attempt=t.attempt)])
        t.phase = "running"
    elif t.phase == "running":
        r = rng.random()
        if r < 0.6:
            store.append(stream, [TaskCompleted(task_id=tid, agent_id=t.agent_id, attempt=t.attempt,
                                                result={"ok": True}, duration_s=rng.random() * 60)])
            t.phase = "completed"
            done.append(tid)
            return True
        if r < 0.9:
            agent = None if rng.random() < 0.1 else t.agent_id
            store.append(stream, [TaskFailed(task_id=tid, agent_id=agent, attempt=t.attempt, error=f"boom {t.attempt}",
                                                     kind="transient")])
        else:
            store.append(stream, [TaskLeaseExpired(task_id=tid, agent_id=t.agent_id, lease_id=f"{tid}/{t.attempt}",
                                                   attempt=t.attempt)])
        t.phase = "failed"
    elif t.phase == "failed":
        if t.used < t.max_attempts:
            store.append(stream, [TaskRetried(task_id=tid, attempt=t.attempt + 1, not_before=1.8e9 + t.attempt)])
            t.phase = "queued"
        else:
            store.append(stream, [TaskDeadLettered(task_id=tid, attempts=t.used, last_error="out of attempts",
                                                           kind="transient")])
            t.phase = "dead_lettered"
            return True
    return False


def _register(store: EventStore, agent_id: str, epochs: dict[str, int], rng: Random) -> None:
    epochs[agent_id] = max(1, epochs[agent_id])
    if agent_id == "ag1" or rng.random() < 0.2:  # as an older release stored it: schema v1, capabilities in one string
        append_raw(store, f"agent-{agent_id}", "agent.registered", 1,
                   {"agent_id": agent_id, "role": "coder", "capabilities": "code.generate, test.run", "version": "0.1"})
        return
    store.append(f"agent-{agent_id}", [AgentRegistered(agent_id=agent_id, role=rng.choice(["coder", "tester"]),
                                                       capabilities=["code.generate", "test.run"], version="0.2",
                                                       slots=rng.choice([1, 2, 4]), epoch=epochs[agent_id])])


def _agent_event(store: EventStore, agent_id: str, epochs: dict[str, int], rng: Random) -> None:
    stream = f"agent-{agent_id}"
    if epochs[agent_id] == 0:
        _register(store, agent_id, epochs, rng)
        return
    r = rng.random()
    if r < 0.5:
        epoch = epochs[agent_id] - (1 if epochs[agent_id] > 1 and rng.random() < 0.3 else 0)  # some are stale
        store.append(stream, [AgentHeartbeat(agent_id=agent_id, epoch=epoch, in_flight=rng.randrange(3))])
    elif r < 0.7:
        store.append(stream, [AgentUnresponsive(agent_id=agent_id, reason="no heartbeat", last_seen_at=1.8e9)])
    elif r < 0.9:
        epochs[agent_id] += 1
        store.append(stream, [AgentRestarted(agent_id=agent_id, epoch=epochs[agent_id], reason="health monitor")])
    else:
        store.append(stream, [AgentRetired(agent_id=agent_id, reason="scaled down")])


# -- comparing projections -------------------------------------------------------------------------

ORDER = {"tasks": "task_id", "requests": "request_id", "agents": "agent_id", "agent_load": "agent_id",
         "queue": "priority", "dead_letters": "task_id",
         "llm_calls": "key", "model_costs": "request_id", "agent_model_costs": "agent_id",
         "knowledge_uses": "entry_id, revision, task_id"}
_NOW_DEPENDENT = {"queue": "oldest_age_s"}


def snapshot(projector: Projector) -> dict[str, list[tuple[object, ...]]]:
    """Every table and view, row by row in key order, without the columns that depend on now()."""
    out = {}
    for name in READ_MODELS:
        skip = _NOW_DEPENDENT.get(name)
        columns = "*" if skip is None else f"* EXCLUDE ({skip})"
        out[name] = projector.query(f"SELECT {columns} FROM {name} ORDER BY {ORDER[name]}").rows
    return out


RECOUNTS = {
    "agents.in_flight": """
        SELECT a.agent_id, a.in_flight, count(t.task_id) AS recount FROM agents a
        LEFT JOIN tasks t ON t.agent_id = a.agent_id AND t.status IN ('assigned', 'running')
        GROUP BY ALL HAVING a.in_flight <> count(t.task_id)""",
    "requests' counts": """
        SELECT r.request_id FROM requests r LEFT JOIN (
            SELECT request_id, count(*) AS n, count(*) FILTER (status = 'completed') AS done,
                   count(*) FILTER (status = 'dead_lettered') AS dead FROM tasks GROUP BY request_id
        ) t USING (request_id)
        WHERE r.tasks <> coalesce(t.n, 0) OR r.completed <> coalesce(t.done, 0)
           OR r.dead_lettered <> coalesce(t.dead, 0) OR r.in_progress <> coalesce(t.n - t.done - t.dead, 0)
           OR r.status <> CASE WHEN r.tasks > 0 AND r.completed = r.tasks THEN 'completed'
                               WHEN r.dead_lettered > 0 AND r.in_progress = 0 THEN 'failed' ELSE 'open' END""",
    "tasks held by unknown agents": """
        SELECT task_id FROM tasks WHERE status IN ('assigned', 'running')
        AND agent_id NOT IN (SELECT agent_id FROM agents)""",
    "tasks of unknown requests": """
        SELECT task_id FROM tasks WHERE request_id IS NOT NULL
        AND request_id NOT IN (SELECT request_id FROM requests)""",
}
"""Queries that return the rows whose derived counts disagree with a recount of the task rows."""


def recount_problems(projector: Projector) -> dict[str, list[tuple[object, ...]]]:
    """Each recount that found disagreeing rows, with those rows; {} when every count holds."""
    found = {name: projector.query(sql).rows for name, sql in RECOUNTS.items()}
    return {name: rows for name, rows in found.items() if rows}
