"""Booting and stopping the system's actors on Ray: the store, the council, the agents, the dispatcher, the projector.

Booting is a plan and a start. :func:`plan` is pure: from a :class:`System` (what to run) and the
keys it needs, it lists an :class:`actors.specs.ActorSpec` per actor, in the order they start.
:func:`boot` checks the team against the skills and the policy (or takes :func:`check`'s verdict,
so a driver that checked before starting Ray does not check twice), makes the keys, starts the plan,
and hands the health monitor the same specs, from which it creates again an actor that is gone
for good. Every long-lived actor is named and detached in the ``council`` namespace (rule 6): a
driver that exits leaves them running, and the next one finds them by name. Booting is
idempotent: an actor that already runs is reused, not duplicated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import names
from actors.agent import AgentActor
from actors.council_actor import CouncilActor
from actors.depot import CALLS_AT_ONCE, DepotActor
from actors.dispatcher import DispatcherActor
from actors.follow import reader_for
from actors.orchestrator.actor import orchestrate
from actors.projector_actor import ProjectorActor
from actors.skills import SkillRegistry
from actors.specs import ActorSpec
from actors.store_actor import StoreActor
from actors.tools.bundles import Trees
from cluster.team import AgentSpec, Team, check_team
from events import CouncilError
from events.catalogue import FeatureRequested, RequestFinished
from governance.keys import COUNCIL_KEY, Keyring, agent_key
from governance.ledgers import policy_in
from governance.policy import Policy, load_policy
from monitoring.detector import DetectorActor
from monitoring.exporter import ExporterActor
from monitoring.health_actor import HealthMonitorActor
from monitoring.learner_actor import LearnerActor


class CouncilAlreadyRunning(CouncilError):
    """A council with another log already runs on this Ray cluster."""


class System(BaseModel):
    """What to run: the log, the team and its skills, and which of the optional actors.

    Without ``home`` (the council's directory) there is no council: acting skills are denied at
    the gate. With ``metrics_port`` (0: any free port) the exporter serves ``/metrics`` on
    ``metrics_host``. With ``health`` (settings for :class:`monitoring.health.HealthSettings`,
    ``{}`` for the defaults) a health monitor watches every actor started here and the error
    detector runs with ``detector`` (:class:`monitoring.errors.DetectorSettings`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    store: str
    max_event_bytes: int = 1 << 20
    team: tuple[AgentSpec, ...] = ()
    skills: tuple[str, ...] = ()
    """Modules of skills besides the installed entry points (a team file's ``skills``)."""
    dispatch: dict[str, Any] | None = None
    projections: str | None = None
    home: str | None = None
    policy: str | None = None
    workspace: str | None = None
    trees: Trees = "shared"
    """Where agents find requests' trees: the shared ``workspace``, or fetched from the depot (:mod:`actors.depot`)
    into ``node_workspace`` on their own node."""
    node_workspace: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    health: dict[str, Any] | None = None
    detector: dict[str, Any] | None = None
    models: dict[str, Any] | None = None
    """The team's ``[models]`` table (:class:`actors.llm.config.ModelsConfig`), for every agent."""
    learning: dict[str, Any] | None = None
    """Settings of :class:`monitoring.learner.LearnerSettings` for the learner, which runs with the error detector
    (a team file's ``[learning]`` table)."""

    @classmethod
    def of(cls, store: str, team: Team | Sequence[AgentSpec] = (), **options: Any) -> System:
        """A system with ``team`` (a team file's team, or its members) and ``options`` (the other fields)."""
        if isinstance(team, Team):
            return cls(store=store, team=tuple(team.members()),
                       skills=(*team.skills, *options.pop("skills", ())),
                       models=options.pop("models", None) or team.models.model_dump(),
                       learning=options.pop("learning", None) or team.learning.model_dump(exclude_defaults=True),
                       **options)
        return cls(store=store, team=tuple(team), **options)


@dataclass(frozen=True)
class Keys:
    """What the plan needs of the keyring: the council's public key, and each agent's identity."""

    council: bytes | None = None
    identities: dict[str, str] = field(default_factory=dict)


def plan(system: System, keys: Keys, node: NodeAffinitySchedulingStrategy | None) -> list[ActorSpec]:
    """The actors ``system`` runs, in the order they start (the health monitor last, watching all the others).

    Pure: no Ray call, no file. ``node`` is the node that boots the system. With a log in a file
    there (SQLite: :func:`log_on_node`) the actors that open the log (the store, the council, the
    dispatcher, the projector, the exporter, the detector, the learner, the monitor) are pinned to
    it. With a PostgreSQL log they prefer it — the council's home is there (keys, blobs, the read
    models' file), and Prometheus scrapes the exporter's address there — and Ray restarts one whose
    node is lost on another (which needs the home on a disk that node sees). Agents go where their
    team file's placement says (:class:`actors.placement.Placement`), on any node that matches it.
    """
    if node is None:
        here: dict[str, Any] = {}
    elif log_on_node(system.store):
        here = {"scheduling_strategy": node}
    else:
        here = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node.node_id, soft=True)}
    keyring = str(Path(system.home) / "keys") if system.home is not None else None
    specs = [ActorSpec(names.STORE, StoreActor, (system.store, system.max_event_bytes), options=here)]
    if system.home is not None:
        specs.append(ActorSpec(names.COUNCIL, CouncilActor, (system.store, system.home, system.policy), options=here))
        if system.trees == "fetch" and system.workspace is not None:
            # The trees' and blobs' keeper is pinned to the booting node whatever the log: the canonical trees are
            # made there (by the driver, in its workspace) and live on its disk.
            disk = {"scheduling_strategy": node} if node is not None else {}
            specs.append(ActorSpec(names.DEPOT, DepotActor, (system.workspace, str(Path(system.home) / "blobs")),
                                   options={**disk, "max_concurrency": CALLS_AT_ONCE}))
    for member in system.team:
        specs.append(ActorSpec(names.agent(member.agent_id), AgentActor,
                               (member.agent_id, member.role, list(member.capabilities), member.slots),
                               init={"skill_modules": list(system.skills), "workspace": system.workspace,
                                     "council_key": keys.council, "identity": keys.identities.get(member.agent_id),
                                     "keyring": keyring, "models": system.models, "trees": system.trees,
                                     "node_workspace": system.node_workspace},
                               options={"max_concurrency": member.slots + 4, **member.ray_options()}))
    blobs = str(Path(system.home) / "blobs") if system.home is not None else None  # where snapshots go
    specs.append(ActorSpec(names.DISPATCHER, DispatcherActor, (system.dispatch or {}, system.store, blobs),
                           options=here))
    if system.projections is not None:
        specs.append(ActorSpec(names.PROJECTOR, ProjectorActor, (system.store, system.projections), options=here))
    if system.metrics_port is not None:
        specs.append(ActorSpec(names.EXPORTER, ExporterActor, (system.store, system.metrics_port, system.metrics_host,
                                                               blobs), options=here))
    if system.health is not None:
        specs.append(ActorSpec(names.DETECTOR, DetectorActor, (system.store, system.detector or {}, blobs),
                               options=here))
        specs.append(ActorSpec(names.LEARNER, LearnerActor, (system.store, system.learning or {}, system.models,
                                                             system.dispatch or {}), options=here))
        watched = list(specs)
        specs.append(ActorSpec(names.HEALTH, HealthMonitorActor, (watched, system.health, system.store, blobs),
                               options=here))
    return specs


def boot(system: System | Checked, *, ready_within: float | None = None) -> dict[str, Any]:
    """Start (or find) every actor of ``system``; return the handles by name once each has recovered from the log.

    Refuses, before anything starts, a team with a capability no registered skill carries out or
    an acting agent in a role the policy never names (:class:`cluster.team.TeamError`) — unless
    ``system`` is what :func:`check` returned, which it checked already — and a second council on
    a cluster whose running council writes another log. Waits for actors Ray is restarting (their
    node was lost), and raises :class:`CouncilError` naming any actor that no node took within
    ``ready_within`` seconds (:data:`READY_WITHIN` unless given).
    """
    system = (system if isinstance(system, Checked) else check(system)).system
    keys = _keys(system)
    specs = plan(system, keys, here())
    within = READY_WITHIN if ready_within is None else ready_within
    store = specs[0].start()
    _await_ready({names.STORE: store}, {names.STORE: specs[0]}, within)
    running_url = ray.get(store.url.remote())
    if running_url != system.store:
        raise CouncilAlreadyRunning(f"a council is already running on this Ray cluster with the log {running_url}, "
                                    f"not {system.store}; use that store, or stop it first with `council down`")
    if system.workspace is not None and system.home is not None:
        Path(system.workspace).mkdir(parents=True, exist_ok=True)
    if system.projections is not None:
        Path(system.projections).parent.mkdir(parents=True, exist_ok=True)
    handles = {names.STORE: store, **{spec.name: spec.start() for spec in specs[1:]}}
    try:
        _await_ready(handles, {spec.name: spec for spec in specs}, within)
    except ray.exceptions.RayActorError as exc:
        if names.EXPORTER in handles and "Address already in use" in str(exc):
            raise CouncilError(f"the metrics port {system.metrics_host}:{system.metrics_port} is in use; choose "
                               "another with --metrics-port (or COUNCIL_METRICS_PORT), or 0 for any free "
                               "port") from None
        raise
    if system.home is not None:
        handles.update(_resume_orchestrators(store, system.store))
    return handles


READY_WITHIN = 120.0
"""Seconds :func:`boot` waits for every actor to answer: to be placed on a node, and to recover from the log."""


def _await_ready(handles: dict[str, Any], specs: dict[str, ActorSpec], within: float) -> None:
    """Return once every actor of ``handles`` has answered; :class:`CouncilError` naming those that did not within
    ``within`` seconds, and what their placement asks of a node.

    An actor Ray is restarting (its node was lost, and it is being started again on another) refuses calls for a
    while (``ActorUnavailableError``; the system's actors take no retries): it is asked again until it answers. An
    actor that died for good raises as Ray reports it. An actor no node can take stays pending until one joins:
    that is the error at the end, not a boot that never returns.
    """
    deadline = time.monotonic() + within
    waiting = dict(handles)
    while waiting:
        calls = {h.pid.remote(): name for name, h in waiting.items()}
        ready, _ = ray.wait(list(calls), num_returns=len(calls), timeout=max(0.0, deadline - time.monotonic()))
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.ActorUnavailableError:
                continue  # restarting: asked again below
            del waiting[calls[ref]]
        if waiting and time.monotonic() >= deadline:
            asks = "; ".join(f"{name} needs {_needs(specs[name]) if name in specs else 'nothing special'}"
                             for name in sorted(waiting))
            raise CouncilError(f"{len(waiting)} of the council's actors did not start within {within:.0f} s, as no "
                               f"node of the Ray cluster can take them, or they are still being placed: {asks}. "
                               "Start a node that has them (ray start --resources/--labels), or change the team "
                               "file's placement; then run `council up` again")
        if waiting:
            time.sleep(0.2)


def _needs(spec: ActorSpec) -> str:
    """What ``spec``'s Ray options ask of a node, in words for an error."""
    options = spec.options
    wants = [f"{k}={options[k]}" for k in ("num_cpus", "num_gpus") if options.get(k)]
    wants += [f"resources {dict(options['resources'])}"] if options.get("resources") else []
    wants += [f"labels {dict(options['label_selector'])}"] if options.get("label_selector") else []
    return ", ".join(wants) or "nothing special"


def _resume_orchestrators(store: Any, url: str) -> dict[str, Any]:
    """Start the orchestrator of every orchestrated request the log has not seen finish (a council started again
    after `council down` takes its requests on where they were); their handles by actor name."""
    found = ray.get(store.read_all.remote(1, None, [FeatureRequested.type_name, RequestFinished.type_name]))
    open_requests: dict[str, None] = {}
    for event in found:
        if isinstance(event.payload, FeatureRequested):
            open_requests[event.payload.request_id] = None
        elif isinstance(event.payload, RequestFinished):
            open_requests.pop(event.payload.request_id, None)
    return {names.orchestrator(rid): orchestrate(url, rid) for rid in open_requests}


@dataclass(frozen=True)
class Checked:
    """A system :func:`check` accepted: :func:`boot` starts it without checking it again."""

    system: System


def check(system: System) -> Checked:
    """Refuse a system whose team cannot work (see :func:`cluster.team.check_team`), before anything starts.

    Loads the skill registry and reads the policy in force: pass the result to :func:`boot`
    so that is done once.
    """
    if system.trees == "fetch" and (system.home is None or system.workspace is None):
        raise CouncilError('trees = "fetch" needs a council with a home and a workspace: the depot serves the trees '
                           "and blobs kept there; start the council with a home (`council up`)")
    check_team(list(system.team), SkillRegistry.load(system.skills), policy_for(system))
    return Checked(system)


def policy_for(system: System) -> Policy | None:
    """The policy the team will act under: the one in force in the log, else the one the council will adopt."""
    if system.home is None:
        return None
    reader = reader_for(system.store)
    if reader is not None:
        with reader:
            in_force = policy_in(reader)
        if in_force is not None:
            return in_force
    return load_policy(system.policy) if system.policy is not None else None


def log_on_node(store: str) -> bool:
    """Whether the log ``store`` names lives in a file on one node (SQLite), so the actors that open it must run
    there; a PostgreSQL log is reached from every node."""
    return not store.startswith(("postgresql://", "postgres://"))


def here() -> NodeAffinitySchedulingStrategy:
    """Run on this driver's node: where the SQLite log and the DuckDB file are."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def running() -> list[str]:
    """Names of the system's actors alive in the ``council`` namespace."""
    from ray.util.state import list_actors

    return sorted(a.name for a in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000)
                  if a.name and getattr(a, "ray_namespace", names.NAMESPACE) == names.NAMESPACE)


def shutdown(actor_names: Sequence[str] | None = None) -> list[str]:
    """Kill the named system actors for good (no restart); return the names killed."""
    killed = []
    for name in actor_names if actor_names is not None else _known_names():
        try:
            handle = ray.get_actor(name, namespace=names.NAMESPACE)
        except ValueError:
            continue
        ray.kill(handle, no_restart=True)
        killed.append(name)
    return killed


def _keys(system: System) -> Keys:
    """The council's key and each agent's identity key, created if missing (only with a home)."""
    if system.home is None:
        return Keys()
    keyring = Keyring(Path(system.home) / "keys")
    return Keys(keyring.ensure(COUNCIL_KEY).raw,
                {m.agent_id: keyring.ensure(agent_key(m.agent_id)).fingerprint for m in system.team})


def _known_names() -> list[str]:
    try:
        return running()
    except Exception:  # noqa: BLE001 - the state API needs the dashboard; fall back to the fixed names
        return [names.HEALTH, names.DETECTOR, names.LEARNER, names.DISPATCHER, names.PROJECTOR, names.COUNCIL,
                names.EXPORTER, names.STORE]
