"""Agents: event-sourced Ray actors that register, send heartbeats and carry out leased tasks.

The plain part (:class:`AgentLifecycle`, an :mod:`actors.eventsourced` behaviour) decides and
evolves the agent's own stream — registration, restarts with a new epoch, heartbeats.
The Ray shell replays that stream in its constructor (so calls that arrive during recovery wait,
as Ray delivers none before the constructor returns), claims a new epoch, and then runs tasks.

Fencing: a new incarnation appends ``agent.restarted`` with the next epoch at the stream version
it read, so of two incarnations racing to start only one succeeds. An old incarnation that
lingers finds its heartbeats refused (its stream moved on) and stops taking work; its tasks'
appends are refused too, because every task append expects the task stream's version at the
time of the lease, and the dispatcher takes back the leases of an old incarnation.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import ray

from actors import names
from actors.eventsourced import Entity, Fenced
from actors.gatekeeper import Gatekeeper
from actors.pipeline.steps import SKILLS as PIPELINE_SKILLS
from actors.skills import ACTING, BUILTIN, ActingSkill, PermanentFailure, Skill, reporting
from actors.store_client import StoreClient
from actors.tools.checkout import tree_of
from actors.tools.ci import CiTools
from actors.tools.gated import ActionRefused, AwaitingAuthority
from actors.tools.workspace import Workspace
from events import CouncilError, Event
from events.catalogue import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    TaskAwaiting,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
)
from events.errors import ConcurrencyError
from governance.keys import Keyring, PublicKey

ACTING_SKILLS: dict[str, ActingSkill] = {**ACTING, **PIPELINE_SKILLS}
"""Every capability that acts on the world: the general ones and the pipeline's steps."""


@dataclass(frozen=True)
class Life:
    """An agent's identity over its incarnations."""

    epoch: int = 0
    retired: bool = False


@dataclass(frozen=True)
class Start:
    """Command: a new incarnation starts with this description."""

    role: str
    capabilities: tuple[str, ...]
    version: str
    slots: int


@dataclass(frozen=True)
class Beat:
    """Command: say the agent is alive and how many tasks it holds."""

    in_flight: int


class AgentLifecycle:
    """The behaviour of an agent's own stream: registration, restarts with new epochs, heartbeats."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.stream = f"agent-{agent_id}"

    def initial(self) -> Life:
        return Life()

    def decide(self, state: Life, command: Start | Beat) -> list[Event]:
        if isinstance(command, Beat):
            return [AgentHeartbeat(agent_id=self.agent_id, epoch=state.epoch, in_flight=command.in_flight)]
        registration = AgentRegistered(agent_id=self.agent_id, role=command.role,
                                       capabilities=list(command.capabilities), version=command.version,
                                       slots=command.slots, epoch=state.epoch + 1)
        if state.epoch == 0 or state.retired:
            return [registration]
        return [AgentRestarted(agent_id=self.agent_id, epoch=state.epoch + 1, reason="new incarnation"), registration]

    def evolve(self, state: Life, event: Event) -> Life:
        if isinstance(event, AgentRegistered | AgentRestarted):
            return Life(max(state.epoch, event.epoch), retired=False)
        if isinstance(event, AgentRetired):
            return Life(state.epoch, retired=True)
        return state


@ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"health": 1})
class AgentActor:
    """A worker agent. Create it with ``max_concurrency`` above its slots so tasks run side by side."""

    def __init__(self, agent_id: str, role: str, capabilities: list[str], slots: int = 1,
                 heartbeat_every: float = 2.0, skills: dict[str, str] | None = None, version: str = "",
                 workspace: str | None = None, council_key: bytes | None = None, identity: str | None = None,
                 keyring: str | None = None) -> None:
        self.agent_id, self.role, self.slots = agent_id, role, slots
        self.stream = f"agent-{agent_id}"
        self.client = StoreClient()
        self.skills: dict[str, Skill] = {c: BUILTIN[(skills or {}).get(c, c)] for c in capabilities
                                         if (skills or {}).get(c, c) in BUILTIN}
        self.acting: dict[str, ActingSkill] = {c: ACTING_SKILLS[c] for c in capabilities if c in ACTING_SKILLS}
        self.keyring = keyring  # where this agent's own signing key is (it signs build provenance)
        # Acting skills need the council's key (to check warrants) and a workspace; without them
        # the gate has nothing to trust, and denies every action (fail closed).
        self.workspace = Workspace(workspace) if workspace else None
        self.gatekeeper = Gatekeeper(agent_id, identity or agent_id, self.client,
                                     PublicKey.from_raw("council", council_key) if council_key else
                                     PublicKey("council", b"\0" * 32), time.time)
        # Recovery: the agent's own stream, replayed before any call is served; then a new epoch.
        self.life: Entity[Life, Start | Beat] = Entity(AgentLifecycle(agent_id), self.client.read_stream(self.stream))
        self.life.handle(Start(role, tuple(capabilities), version, slots), self.client.append)
        self.epoch = self.life.state.epoch
        self.in_flight: set[str] = set()
        self.progress_at = time.time()
        self.fenced = False
        self._lock = threading.Lock()
        self._beat = threading.Thread(target=self._heartbeats, args=(heartbeat_every,), daemon=True, name="heartbeat")
        self._beat.start()

    def _heartbeats(self, every: float) -> None:
        while not self.fenced:
            time.sleep(every)
            with self._lock:
                beat = Beat(len(self.in_flight))
            try:
                self.life.handle(beat, self.client.append)
            except Fenced:
                self.fenced = True  # a newer incarnation owns this agent now
            except CouncilError:
                continue  # the store is away; the next beat tries again

    def run(self, task_id: str, attempt: int, capability: str, inputs: dict[str, Any], version: int,
            request_id: str | None = None) -> str:
        """Carry out attempt ``attempt`` of task ``task_id``; return how it ended.

        ``version`` is the task stream's version at the lease: it, not a lease id, is the fence. Every append expects the stream
        to be where this agent last left it, so if the lease was taken back in the meantime
        (expired, or given to another agent) this agent's report is refused and counts for
        nothing: "lost" is returned.
        """
        if self.fenced:
            return "fenced"
        stream = f"task-{task_id}"
        try:
            version = self.client.append(stream, [TaskStarted(task_id=task_id, agent_id=self.agent_id,
                                                              attempt=attempt)], version).stream_version
        except ConcurrencyError:
            return "lost"
        with self._lock:
            self.in_flight.add(task_id)
            self.progress_at = time.time()
        started = time.monotonic()
        reporting(self._progress)
        outcome: Event
        try:
            if capability in self.acting:
                result = self._act(capability, task_id, dict(inputs), request_id)
            else:
                skill = self.skills.get(capability)
                if skill is None:
                    raise PermanentFailure(f"agent {self.agent_id} has no skill for {capability!r}")
                result = skill(dict(inputs))
            outcome = TaskCompleted(task_id=task_id, agent_id=self.agent_id, attempt=attempt, result=result,
                                    duration_s=time.monotonic() - started)
        except AwaitingAuthority as wait:
            outcome = TaskAwaiting(task_id=task_id, agent_id=self.agent_id, attempt=attempt,
                                   authority_id=wait.authority_id, reason=str(wait)[:2000])
        except Exception as exc:  # a skill's failure is the task's failure, recorded, never the agent's
            outcome = TaskFailed(task_id=task_id, agent_id=self.agent_id, attempt=attempt,
                                 error=f"{type(exc).__name__}: {exc}"[:2000],
                                 retryable=not isinstance(exc, PermanentFailure))
        finally:
            reporting(None)
            with self._lock:
                self.in_flight.discard(task_id)
                self.progress_at = time.time()
        try:
            self.client.append(stream, [outcome], version)
        except ConcurrencyError:
            return "lost"
        return outcome.type_name.removeprefix("task.")

    def _act(self, capability: str, task_id: str, inputs: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """Run an acting skill with gated tools, under the warrant the council issued this agent for the task."""
        if self.workspace is None:
            raise PermanentFailure(f"agent {self.agent_id} has no workspace; start the council with one")
        warrant_id: str | None = None
        refusal = ""
        try:
            council = ray.get_actor(names.COUNCIL, namespace=names.NAMESPACE)
            issued = ray.get(council.warrant_for.remote(task_id, self.agent_id, self.role, request_id))
            warrant_id = issued.warrant_id
        except ValueError:
            refusal = "no council is running to issue warrants"
        except ray.exceptions.RayError as exc:  # the council refused (or was unreachable)
            cause = getattr(exc, "cause", None)
            refusal = str(cause) if isinstance(cause, CouncilError) else f"the council did not answer ({type(exc).__name__})"
        try:
            # Without a warrant the gate denies the skill's first action and records why (fail closed).
            return self.acting[capability](inputs, self._tools(warrant_id, task_id, request_id))
        except ActionRefused as exc:
            raise ActionRefused(f"{exc}; the council refused a warrant: {refusal}" if refusal else str(exc)) from None

    def _tools(self, warrant_id: str | None, task_id: str, request_id: str | None) -> CiTools:
        """Gated tools in the request's own tree if it has one (``requests/<id>``), else in the workspace."""
        assert self.workspace is not None
        root = self.workspace
        if request_id is not None:
            tree = self.workspace.path(tree_of(request_id))
            root = Workspace(tree) if tree.is_dir() else root
        signer = None
        if self.keyring is not None and self.role == "builder":
            signer = Keyring(self.keyring).signer(f"agent-{self.agent_id.lower()}")
        environments = Workspace(self.workspace.path("environments"))
        return CiTools(self.gatekeeper, warrant_id, task_id, root, environments, history=self.client.read_stream,
                       signer=signer, builder_id=f"agent-council/{self.agent_id}")

    def _progress(self) -> None:
        self.progress_at = time.time()

    @ray.method(concurrency_group="health")
    def health(self) -> tuple[int, bool, float]:
        """For the health monitor, on its own thread: (process id, whether a task is running, last progress time)."""
        with self._lock:
            return os.getpid(), bool(self.in_flight), self.progress_at

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()

    def describe(self) -> dict[str, object]:
        """Who this incarnation is and what it holds."""
        return {"agent_id": self.agent_id, "epoch": self.epoch, "slots": self.slots, "fenced": self.fenced,
                "in_flight": sorted(self.in_flight), "pid": os.getpid()}
