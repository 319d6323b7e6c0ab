"""The dispatcher actor: the Ray shell around :class:`actors.dispatch.Dispatch`.

A :class:`actors.follow.Follower` runs the dispatcher's fold and decisions in a thread from the
moment the actor is created (rebuilt whenever it starts from its newest valid snapshot and the
events after it, or from position 1: :mod:`actors.snapshots`); this shell only hands
each new lease to its agent, notices an agent whose actor died while running a task, and hears
the agents' heartbeats (calls, not events: see :mod:`actors.dispatch.liveness`).
Everything it decides is a fold of the log, so killing it at any moment loses no task, and since
every decision is appended at the task stream's version, it never assigns a task twice — not
even while an old incarnation lingers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import ray
from ray.exceptions import RayActorError, RayError

from actors import names
from actors.dispatch import Dispatch, DispatchSettings
from actors.dispatch.process import BeatReply, status_in
from actors.dispatch.state import Lookup
from actors.follow import Follower, reader_for
from actors.snapshots import Snapshots
from actors.store_client import StoreClient
from events import AppendResult, Intent
from events.blobs import BlobStore
from events.catalogue import TaskAssigned


class Delivery(NamedTuple):
    """A lease handed to an agent: to whom, the agent's incarnation then, the Ray actor called, and the call's
    arguments (for :meth:`actors.agent.AgentActor.run`)."""

    agent_id: str
    epoch: int
    actor: str
    args: tuple[Any, ...]


class RayDispatch(Dispatch):
    """:class:`Dispatch` with the two things only Ray can do: deliver leases, and see agents die."""

    def __init__(self, settings: DispatchSettings, lookup: Lookup | None = None) -> None:
        super().__init__(settings, lookup=lookup)
        self.delivered = 0
        self._agents: dict[str, Any] = {}
        self._deliveries: dict[Any, Delivery] = {}  # by the ObjectRef of the run call

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        """Hand each new lease to its agent, with what it needs to start without reading the log."""
        for intent, result in stored:
            assigned = intent.events[-1]
            if not isinstance(assigned, TaskAssigned):
                continue
            handle = self._agent(assigned.agent_id)
            task = self.state.tasks.get(assigned.task_id)
            if handle is None or task is None:
                continue  # the lease runs out, or the agent's silence takes it back
            agent = self.state.agents.get(assigned.agent_id)
            self._deliver(handle, Delivery(assigned.agent_id, agent.epoch if agent is not None else 0, "",
                                           (assigned.task_id, assigned.attempt, task.capability, task.inputs or {},
                                            result.stream_version, task.request_id, task.requeues)))

    def _deliver(self, handle: Any, delivery: Delivery) -> None:
        ref = handle.run.remote(*delivery.args)
        self._deliveries[ref] = delivery._replace(actor=handle._actor_id.hex())
        self.delivered += 1

    def sense(self, now: float) -> None:
        """An agent whose ``run`` call failed because its actor died is gone until it registers again.

        Only the incarnation the call went to is gone: one that registered since takes work. A call
        that went to an actor no longer holding the agent's name (the agent was started anew — by
        `council up` with another placement, or by the health monitor — while this dispatcher still
        held the old handle) says nothing of the agent's current actor: the handle is dropped, and
        if the lease was given to the incarnation that holds the name now (it registered before the
        lease was given), the lease is handed to it; a lease given before it registered is taken
        back as its agent's restart.
        """
        if not self._deliveries:
            return
        done, _ = ray.wait(list(self._deliveries), num_returns=len(self._deliveries), timeout=0)
        for ref in done:
            delivery = self._deliveries.pop(ref)
            try:
                ray.get(ref)
            except RayActorError:
                cached = self._agents.get(delivery.agent_id)
                if cached is not None and cached._actor_id.hex() == delivery.actor:
                    del self._agents[delivery.agent_id]
                agent = self.state.agents.get(delivery.agent_id)
                if agent is None or agent.epoch != delivery.epoch:
                    continue
                current = self._named_actor(delivery.agent_id)
                if current in (delivery.actor, None):
                    self.gone.add(delivery.agent_id)
                elif self._holds(delivery) and (handle := self._agent(delivery.agent_id)) is not None:
                    self._deliver(handle, delivery)
            except RayError:
                continue

    def _holds(self, delivery: Delivery) -> bool:
        """Whether the lease ``delivery`` handed over is still its agent's: the same attempt, not yet ended."""
        task_id, attempt = delivery.args[0], delivery.args[1]
        task = self.state.tasks.get(task_id)
        return (task is not None and task_id in self.state.leased and task.agent_id == delivery.agent_id
                and task.attempt == attempt)

    @staticmethod
    def _named_actor(agent_id: str) -> str | None:
        """The id of the Ray actor that holds ``agent_id``'s name now (None: none does)."""
        try:
            return str(ray.get_actor(names.agent(agent_id), namespace=names.NAMESPACE)._actor_id.hex())
        except ValueError:
            return None

    def _agent(self, agent_id: str) -> Any:
        handle = self._agents.get(agent_id)
        if handle is None:
            try:
                handle = self._agents[agent_id] = ray.get_actor(names.agent(agent_id), namespace=names.NAMESPACE)
            except ValueError:
                return None
        return handle


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class DispatcherActor:
    """Runs the dispatcher's :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, settings: dict[str, Any] | None = None, store_url: str | None = None,
                 blobs: str | None = None) -> None:
        """``blobs``: the council's blob directory, where snapshots of the state go (none: no snapshots)."""
        config = DispatchSettings(**(settings or {}))
        client = StoreClient()
        reader = reader_for(store_url) if store_url else None
        self.dispatch = RayDispatch(config, status_in(reader or client))
        self.snapshots = Snapshots(names.DISPATCHER, BlobStore(Path(blobs)) if blobs else None, config.snapshots)
        # Recovery, before anything else: the newest valid snapshot and the events after it, or the whole log.
        self.snapshots.recover(self.dispatch, reader or client)
        self.follower = Follower(self.dispatch, client, reader=reader,
                                 after_round=lambda: self.snapshots.maybe_take(self.dispatch, client))
        self.follower.start("dispatch")

    def beat(self, agent_id: str, epoch: int, attempts: dict[str, int]) -> BeatReply:
        """An agent's heartbeat (a call, not an event): it is alive and works on ``attempts`` (task → attempt); see
        :meth:`actors.dispatch.Dispatch.beat`."""
        return self.dispatch.beat(agent_id, epoch, attempts, time.time())

    def seen(self) -> dict[str, float]:
        """Seconds since this dispatcher last heard each agent's heartbeat."""
        return self.dispatch.liveness.seen(time.time())

    def stats(self) -> dict[str, int | float | str]:
        """Position folded, rounds decided, leases handed out by this incarnation, tasks in its state (finished ones
        forgotten), and its snapshots: taken, and the one it recovered from (``actors.snapshots.Snapshots.stats``)."""
        state = self.dispatch.state
        return {"position": state.position, "rounds": self.follower.rounds, "assigned": self.dispatch.delivered,
                "tasks": len(state.tasks), "finished": len(state.finished), "leased": len(state.leased),
                **self.snapshots.stats()}

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()

    def stop(self) -> None:
        """Stop dispatching (the actor stays up; `council down` kills it)."""
        self.follower.stop()
