"""The dispatcher actor: the Ray shell around :mod:`actors.dispatch`.

It folds the log into a :class:`DispatchState` (rebuilt from position 1 whenever the actor
starts), asks :func:`actors.dispatch.decide` what to do, appends the decisions as one group
commit, and hands each new lease to its agent. Everything it knows is a fold of the log, so
killing it at any moment loses no task, and since every decision is appended at the task
stream's version, it never assigns a task twice — not even while an old incarnation lingers.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from actors import names
from actors.dispatch import DispatchSettings, DispatchState, decide
from actors.follow import fold_from
from actors.store_client import StoreClient
from events import AppendResult, CouncilError, EventStore, open_store
from events.catalogue import TaskAssigned, TaskLeaseExpired


class DispatchLoop:
    """Catch up, decide, append, deliver — until stopped. Runs in its own thread."""

    def __init__(self, client: StoreClient, settings: DispatchSettings, reader: EventStore | None = None) -> None:
        self.client, self.settings = client, settings
        self.reader = reader  # the log file itself, when this process can open it: reads skip the store actor
        self.state = DispatchState()
        self.rounds = 0
        self.assigned = 0
        self._agents: dict[str, Any] = {}
        self._deliveries: dict[Any, tuple[str, str]] = {}  # ObjectRef → (task_id, lease_id)
        self._stop = threading.Event()

    def catch_up(self) -> None:
        """Fold every event after the state's position."""
        fold_from(self.reader if self.reader is not None else self.client, self.state.position, self.state.evolve)

    def step(self, now: float | None = None) -> int:
        """One round; returns how many decisions were appended."""
        self.catch_up()
        self._reap_deliveries()
        decisions = decide(self.state, time.time() if now is None else now, self.settings)
        if not decisions:
            return 0
        results = self.client.append_many([(d.stream, list(d.events), d.expected_version) for d in decisions])
        for decision, result in zip(decisions, results):
            event = decision.events[-1]
            if isinstance(result, AppendResult) and isinstance(event, TaskAssigned):
                self._deliver(event, result.stream_version)
        self.rounds += 1
        return sum(isinstance(r, AppendResult) for r in results)

    def run(self) -> None:
        """Loop until :meth:`stop`: wake when the log moves, or when a lease or backoff falls due."""
        while not self._stop.is_set():
            try:
                if self.step():
                    continue
                self.client.wait_for(self.state.position + 1, timeout=self._idle_wait())
            except CouncilError:
                time.sleep(0.5)  # the store is away; the client already waited for it

    def stop(self) -> None:
        """End :meth:`run` after its current round."""
        self._stop.set()

    def _idle_wait(self) -> float:
        """Seconds until something may fall due without a new event: the nearest lease or backoff."""
        due = [self.state.tasks[t].lease_expires_at for t in self.state.leased]
        if self.state.next_due() is not None:
            due.append(self.state.next_due())  # type: ignore[arg-type]
        wait = min(due, default=time.time() + 1.0) - time.time()
        return max(0.01, min(1.0, wait))

    def _deliver(self, assigned: TaskAssigned, version: int) -> None:
        """Hand the lease to its agent, with what it needs to start without reading the log."""
        handle = self._agent(assigned.agent_id)
        task = self.state.tasks.get(assigned.task_id)
        if handle is None or task is None:
            return  # the lease runs out, or the agent's silence takes it back
        ref = handle.run.remote(assigned.task_id, assigned.attempt, task.capability, task.inputs or {}, version,
                                task.request_id)
        self._deliveries[ref] = (assigned.task_id, assigned.lease_id)
        self.assigned += 1

    def _agent(self, agent_id: str) -> Any:
        handle = self._agents.get(agent_id)
        if handle is None:
            try:
                handle = self._agents[agent_id] = ray.get_actor(names.agent(agent_id), namespace=names.NAMESPACE)
            except ValueError:
                return None
        return handle

    def _reap_deliveries(self) -> None:
        """Take back at once the lease of a task whose agent died while running it."""
        if not self._deliveries:
            return
        done, _ = ray.wait(list(self._deliveries), num_returns=len(self._deliveries), timeout=0)
        lost = []
        for ref in done:
            task_id, lease_id = self._deliveries.pop(ref)
            try:
                ray.get(ref)
            except RayActorError:
                lost.append((task_id, lease_id))
            except RayError:
                continue
        for task_id, lease_id in lost:
            task = self.state.tasks.get(task_id)
            if task is not None and task.lease_id == lease_id and task_id in self.state.leased:
                self._agents.pop(task.agent_id or "", None)
                self.client.append_many([(task.stream, [TaskLeaseExpired(
                    task_id=task_id, agent_id=task.agent_id or "unknown", lease_id=lease_id, attempt=task.attempt)],
                    task.version)])


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)
class DispatcherActor:
    """Runs a :class:`DispatchLoop` in a thread from the moment it is created (or restarted)."""

    def __init__(self, settings: dict[str, Any] | None = None, store_url: str | None = None) -> None:
        reader = open_store(store_url, create=False) if store_url and store_url.startswith("sqlite:") else None
        self.loop = DispatchLoop(StoreClient(), DispatchSettings(**(settings or {})), reader)
        self.loop.catch_up()  # recovery: the whole state, from the log, before anything else
        self._thread = threading.Thread(target=self.loop.run, daemon=True, name="dispatch")
        self._thread.start()

    def stats(self) -> dict[str, int]:
        """Position folded, rounds decided, leases handed out by this incarnation."""
        state = self.loop.state
        return {"position": state.position, "rounds": self.loop.rounds, "assigned": self.loop.assigned,
                "tasks": len(state.tasks), "leased": len(state.leased)}

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()

    def stop(self) -> None:
        """Stop dispatching (the actor stays up; `council down` kills it)."""
        self.loop.stop()
