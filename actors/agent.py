"""Agents: event-sourced Ray actors that register, send heartbeats and carry out leased tasks.

The plain part (:class:`AgentLifecycle`, an :mod:`actors.eventsourced` behaviour) decides and
evolves the agent's own stream — registration, and restarts with a new epoch.
The Ray shell replays that stream in its constructor (so calls that arrive during recovery wait,
as Ray delivers none before the constructor returns), claims a new epoch, and then runs tasks.

Heartbeats are calls to the dispatcher, not events (liveness is not history): every few seconds
the agent says which incarnation it is and which tasks it works on, which keeps its leases; an
agent silent for the dispatcher's ``heartbeat_timeout`` loses them.

Fencing: a new incarnation appends ``agent.restarted`` with the next epoch at the stream version
it read, so of two incarnations racing to start only one succeeds. An old incarnation that
lingers hears from the dispatcher that it is fenced and stops taking work; its tasks' appends are
refused in any case, because every task append expects the task stream's version at the time of
the lease, and the dispatcher takes back the leases of an old incarnation.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import ray

from actors import names
from actors.depot import DepotBlobs, Fetched, fetch, leasing
from actors.dispatch.process import BeatReply
from actors.eventsourced import Entity
from actors.gatekeeper import Gatekeeper
from actors.llm.config import load_models
from actors.llm.providers import Providers
from actors.remote import ask
from actors.skills import PermanentFailure, Skill, SkillRegistry, abandoned, failure_kind, reporting
from actors.store_client import StoreClient
from actors.tools import limits
from actors.tools.bundles import Trees
from actors.tools.checkout import tree_of
from actors.tools.gated import ActionRefused, AwaitingAuthority, run_of
from actors.tools.redact import scrub
from actors.tools.sandbox import Sandbox
from actors.tools.toolsets import Bench, Thinking, tools_for
from actors.tools.tree_lock import holding
from actors.tools.workspace import Workspace
from events import CouncilError, Event, streams
from events.blobs import Blobs, BlobStore
from events.catalogue import (
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    GitCommitted,
    TaskAwaiting,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    WarrantIssued,
)
from events.errors import ConcurrencyError
from governance.keys import Keyring, PublicKey, SigningKey, agent_key
from projections.knowledge import KnowledgeBase

Outcome = str
"""How an attempt ended, as :meth:`AgentActor.run` reports it: ``completed``, ``failed``, ``awaiting`` (an
approval or vote), ``lost`` (the lease was taken back first) or ``fenced`` (a newer incarnation owns the agent)."""


@dataclass(frozen=True)
class Life:
    """An agent's identity over its incarnations."""

    epoch: int = 0
    retired: bool = False


@dataclass(frozen=True)
class Attempt:
    """An attempt this incarnation is working on: its number, and the flag that tells its skill to give it up."""

    number: int
    abandoned: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Start:
    """Command: a new incarnation starts with this description."""

    role: str
    capabilities: tuple[str, ...]
    version: str
    slots: int


class AgentLifecycle:
    """The behaviour of an agent's own stream: registration, and restarts with new epochs."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.stream = streams.agent(agent_id)

    def initial(self) -> Life:
        return Life()

    def decide(self, state: Life, command: Start) -> list[Event]:
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


@ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"health": 1})  # type: ignore[call-overload]  # Ray's stub takes no actor options
class AgentActor:
    """A worker agent. Create it with ``max_concurrency`` above its slots so tasks run side by side.

    Its skills come from the skill registry (installed entry points and ``skill_modules``), one
    per capability; each is handed the tools its toolset names, and only a skill that signs gets
    the agent's own key (``keyring``).
    """

    def __init__(self, agent_id: str, role: str, capabilities: list[str], slots: int = 1,
                 heartbeat_every: float = 2.0, skill_modules: Sequence[str] = (), version: str = "",
                 workspace: str | None = None, council_key: bytes | None = None, identity: str | None = None,
                 keyring: str | None = None, models: dict[str, Any] | None = None, trees: Trees = "shared",
                 node_workspace: str | None = None) -> None:
        self.agent_id, self.role, self.slots = agent_id, role, slots
        self.stream = streams.agent(agent_id)
        self.client = StoreClient()
        registry = SkillRegistry.load(skill_modules)
        self.skills: dict[str, Skill] = {c: registry.get(c) for c in capabilities}
        self.keyring = keyring  # where this agent's own signing key is (for skills that sign)
        # How it calls models: the team's [models], providers made when first asked, call bodies in the home's blobs.
        self.models = load_models(models)
        self.providers = Providers(self.models)
        self.known = KnowledgeBase()  # what the council knows, folded as far as this agent's last recall read
        # Trees and blobs: on the shared disk (the home's blobs, the workspace's trees), or through the depot.
        self.trees = trees
        self.blobs: Blobs | None = (DepotBlobs() if trees == "fetch" else
                                    BlobStore(Path(keyring).resolve().parent / "blobs") if keyring else None)
        limits.sweep()  # the empty command cgroups an earlier incarnation left when it was killed
        # Acting skills need the council's key (to check warrants) and a workspace; without them
        # the gate has nothing to trust, and denies every action (fail closed).
        self.workspace = Workspace(workspace) if workspace else None
        # Where this node keeps its copies of requests' trees (and Python environments): the workspace itself when it
        # is shared; a directory of this node's own when trees are fetched.
        local = node_workspace or workspace
        self.local = Workspace(local) if local and trees == "fetch" else self.workspace
        self.gatekeeper = Gatekeeper(agent_id, identity or agent_id, self.client,
                                     PublicKey.from_raw("council", council_key) if council_key else
                                     PublicKey("council", b"\0" * 32), time.time)
        # Recovery: the agent's own stream, replayed before any call is served; then a new epoch.
        self.life: Entity[Life, Start] = Entity(AgentLifecycle(agent_id), self.client.read_stream(self.stream))
        self.life.handle(Start(role, tuple(capabilities), version, slots), self.client.append)
        self.epoch = self.life.state.epoch
        self.in_flight: dict[str, Attempt] = {}
        self.progress_at = time.time()
        self.fenced = False
        self._lock = threading.Lock()
        self._beat = threading.Thread(target=self._heartbeats, args=(heartbeat_every,), daemon=True, name="heartbeat")
        self._beat.start()

    def _heartbeats(self, every: float) -> None:
        """Every ``every`` seconds, tell the dispatcher this incarnation is alive and which tasks it works on."""
        dispatcher: Any = None
        while not self.fenced:
            time.sleep(every)
            with self._lock:
                attempts = {task_id: a.number for task_id, a in self.in_flight.items()}
            try:
                dispatcher = dispatcher or ray.get_actor(names.DISPATCHER, namespace=names.NAMESPACE)
                reply: BeatReply = ray.get(dispatcher.beat.remote(self.agent_id, self.epoch, attempts),
                                           timeout=max(5.0, every))
            except ValueError:
                continue  # no dispatcher runs yet; nobody to tell
            except ray.exceptions.RayError:
                dispatcher = None  # it died or is restarting: look it up again at the next beat
                continue
            self.fenced = self.fenced or reply.fenced  # a newer incarnation owns this agent now
            with self._lock:
                for task_id in reply.abandon:
                    given_up = self.in_flight.get(task_id)
                    if given_up is not None and given_up.number == attempts.get(task_id):
                        given_up.abandoned.set()  # its commands are killed; what it reports is refused

    def run(self, task_id: str, attempt: int, capability: str, inputs: dict[str, Any], version: int,
            request_id: str | None = None, requeues: int = 0) -> Outcome:
        """Carry out attempt ``attempt`` of task ``task_id``; return how it ended (see :data:`Outcome`).

        ``requeues`` is how many fresh runs the task has had: each requeue (a person has a step done again)
        and each attempt whose work was lost (kind ``lost``) starts one, whose actions are not answered by
        what an earlier run did.

        ``version`` is the task stream's version at the lease: it, not a lease id, is the fence.
        Every append expects the stream to be where this agent last left it, so if the lease was
        taken back in the meantime (expired, or given to another agent) this agent's report is
        refused and counts for nothing: "lost" is returned.
        """
        if self.fenced:
            return "fenced"
        stream = streams.task(task_id)
        try:
            version = self.client.append(stream, [TaskStarted(task_id=task_id, agent_id=self.agent_id,
                                                              attempt=attempt)], version).stream_version
        except ConcurrencyError:
            return "lost"
        current = Attempt(attempt)
        with self._lock:
            self.in_flight[task_id] = current
            self.progress_at = time.time()
        started = time.monotonic()
        reporting(self._progress, current.abandoned)
        outcome: Event
        try:
            skill = self.skills.get(capability)
            if skill is None:
                raise PermanentFailure(f"agent {self.agent_id} has no skill for {capability!r}")
            result = (self._act(skill, task_id, dict(inputs), request_id, requeues) if skill.acts
                      else skill(dict(inputs)))
            outcome = TaskCompleted(task_id=task_id, agent_id=self.agent_id, attempt=attempt,
                                    result=_as_result(result), duration_s=time.monotonic() - started)
        except AwaitingAuthority as wait:
            outcome = TaskAwaiting(task_id=task_id, agent_id=self.agent_id, attempt=attempt,
                                   authority_id=wait.authority_id, reason=str(wait)[:2000])
        except Exception as exc:  # noqa: BLE001 - a skill's failure is the task's failure, recorded, never the agent's
            outcome = TaskFailed(task_id=task_id, agent_id=self.agent_id, attempt=attempt,
                                 error=f"{type(exc).__name__}: {exc}"[:2000], kind=failure_kind(exc),
                                 exception=type(exc).__qualname__[:200], traceback=where(exc))
        finally:
            reporting(None)
            with self._lock:
                if self.in_flight.get(task_id) is current:
                    del self.in_flight[task_id]
                self.progress_at = time.time()
        try:
            self.client.append(stream, [outcome], version)
        except ConcurrencyError:
            return "lost"
        return _OUTCOMES[type(outcome)]

    def _act(self, skill: Skill, task_id: str, inputs: dict[str, Any], request_id: str | None,
             requeues: int = 0) -> Any:
        """Run an acting skill with its tools, under the warrant the council issued this agent for the task."""
        if self.workspace is None:
            raise PermanentFailure(f"agent {self.agent_id} has no workspace; start the council with one")
        warrant_id: str | None = None
        refusal = ""
        try:
            council = ray.get_actor(names.COUNCIL, namespace=names.NAMESPACE)
            issued: WarrantIssued = ask(council.warrant_for, task_id, self.agent_id, self.role, request_id)
            warrant_id = issued.warrant_id
        except ValueError:
            refusal = "no council is running to issue warrants"
        except ray.exceptions.RayError as exc:  # the council refused (or was unreachable)
            cause = getattr(exc, "cause", None)
            refusal = (str(cause) if isinstance(cause, CouncilError)
                       else f"the council did not answer ({type(exc).__name__})")
        tree = self._tree(request_id)
        # Fetched trees: attempts of the request on other nodes take turns with this one through the depot's lease.
        turn = (leasing(request_id, TREE_WAIT, waiting=self._progress, given_up=abandoned)
                if self.trees == "fetch" and tree is not None and request_id is not None else nullcontext())
        try:
            with holding(tree, TREE_WAIT, waiting=self._progress, given_up=abandoned) if tree else nullcontext(), turn:
                fetched = None
                if self.trees == "fetch" and tree is not None and request_id is not None:
                    fetched = self._fetch(request_id, tree)
                    tree = tree if fetched is not None else None  # the depot has no tree: the workspace it is
                bench = self._bench(warrant_id, task_id, tree, request_id, requeues)
                try:
                    # Without a warrant the gate denies the skill's first action and records why (fail closed).
                    result = skill(inputs, tools_for(skill, bench))
                except BaseException:
                    if fetched is not None:  # what it committed before it failed stays, as in a shared tree
                        with suppress(CouncilError):
                            fetched.push()
                    raise
                if fetched is not None:  # the outcome is reported only once its commits are in the request's tree
                    fetched.push(self._committed(warrant_id, task_id, requeues))
                return result
        except ActionRefused as exc:
            if not refusal:
                raise
            raise ActionRefused(f"{exc}; the council refused a warrant: {refusal}", exc.denial) from None

    def _tree(self, request_id: str | None) -> Path | None:
        """Where request ``request_id``'s tree is on this node (``requests/<id>`` in the local workspace): with shared
        trees, if it exists; with fetched trees, where its copy is kept (made when the depot has a tree). None for a
        task outside a request."""
        if request_id is None or self.local is None:
            return None
        tree = self.local.path(tree_of(request_id))
        if self.trees == "fetch":
            tree.parent.mkdir(parents=True, exist_ok=True)  # the lock lives beside the copy, before it is made
            return tree
        return tree if tree.is_dir() else None

    def _fetch(self, request_id: str, tree: Path) -> Fetched | None:
        """Bring this node's copy of the request's tree to the depot's head (made, or only what it lacks)."""
        hidden = tuple(str(w.root) for w in (self.workspace, self.local) if w is not None)
        box = Sandbox(self.gatekeeper.sandbox().terms(network=False, wall_time_s=300.0), hidden=hidden)
        return fetch(request_id, tree, box)

    def _committed(self, warrant_id: str | None, task_id: str, requeues: int) -> list[str]:
        """The commits this run of the task recorded under ``warrant_id`` (this attempt's, and earlier ones')."""
        if warrant_id is None:
            return []
        run = run_of(task_id, requeues)
        return [e.payload.commit for e in self.client.read_stream(streams.warrant(warrant_id))
                if isinstance(e.payload, GitCommitted) and e.payload.key.split("#")[0] == run]

    def _bench(self, warrant_id: str | None, task_id: str, tree: Path | None, request_id: str | None,
               requeues: int = 0) -> Bench:
        """Where this attempt works: the request's own tree (``tree``) if it has one, else the workspace."""
        assert self.workspace is not None and self.local is not None
        root = Workspace(tree) if tree is not None else self.local
        # The council's home holds the keyring, the log and checkpoints; the workspace roots every request's tree.
        home = Path(self.keyring).resolve().parent if self.keyring else None
        hidden = tuple(dict.fromkeys(str(p) for p in (self.workspace.root, self.local.root, home) if p is not None))
        thinking = (Thinking(self.models, self.role, self.blobs, self.providers, request_id, self.known)
                    if self.blobs else None)
        return Bench(self.gatekeeper, warrant_id, task_id, root, Workspace(self.local.path("environments")),
                     history=self.client.read_stream, signer=self._signer, hidden=hidden, requeues=requeues,
                     thinking=thinking)

    def _signer(self) -> SigningKey:
        if self.keyring is None:
            raise PermanentFailure(f"agent {self.agent_id} has no keyring, so it cannot sign; start the council "
                                   "with a home")
        if not Path(self.keyring).is_dir():
            # Private keys never travel between nodes: an agent that signs runs where its keyring is.
            raise PermanentFailure(f"agent {self.agent_id} signs with its own key, kept in the keyring "
                                   f"{self.keyring}, which its node ({socket.gethostname()}) does not have; agents "
                                   "that sign need the council's keyring on their node (a shared home) or must be "
                                   "pinned to the council's node")
        return Keyring(self.keyring).signer(agent_key(self.agent_id))

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


TREE_WAIT = 60.0
"""Seconds an attempt waits for an older one to leave its request's tree (it is killed within a heartbeat)."""

TRACEBACK_CHARS = 4000
"""How much of a failure's traceback ``task.failed`` keeps: its last frames."""

_OUTCOMES: dict[type[Event], Outcome] = {TaskCompleted: "completed", TaskFailed: "failed", TaskAwaiting: "awaiting"}


def where(exc: BaseException, limit: int = TRACEBACK_CHARS) -> str:
    """The last ``limit`` characters of ``exc``'s traceback, secrets scrubbed: where a failure was raised."""
    text = "".join(traceback.format_exception(exc))
    return scrub(text[-limit:])


def _as_result(result: Any) -> dict[str, Any]:
    """A skill's result as ``task.completed`` stores it: a msgspec Struct or a dict, as plain data."""
    if isinstance(result, msgspec.Struct):
        result = msgspec.to_builtins(result)
    if not isinstance(result, dict):
        raise PermanentFailure(f"the skill returned a {type(result).__name__}; a skill returns a dict or a msgspec "
                               "Struct of its results")
    return result
