"""Booting and stopping the system's actors on Ray: the store, the council, the agents, the dispatcher, the projector.

Every long-lived actor is named and detached in the ``council`` namespace (rule 6): a driver
that exits leaves them running, and the next one finds them by name. Booting is idempotent:
an actor that already runs is reused, not duplicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict, Field, field_validator
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import names
from actors.agent import ACTING_SKILLS, AgentActor
from actors.council_actor import CouncilActor
from actors.dispatcher import DispatcherActor
from actors.projector_actor import ProjectorActor
from actors.skills import BUILTIN
from actors.store_actor import StoreActor
from events import CouncilError
from governance.keys import COUNCIL_KEY, Keyring
from monitoring.detector import DetectorActor
from monitoring.exporter import ExporterActor
from monitoring.health_actor import HealthMonitorActor, Recipe


class CouncilAlreadyRunning(CouncilError):
    """A council with another log already runs on this Ray cluster."""


class AgentSpec(BaseModel):
    """One agent of the team."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    role: str = "worker"
    capabilities: tuple[str, ...] = ("noop", "echo", "sleep", "fail")
    slots: int = Field(4, ge=1, le=256)

    @field_validator("capabilities")
    @classmethod
    def _skills_exist(cls, capabilities: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in capabilities if c not in BUILTIN and c not in ACTING_SKILLS]
        if unknown:
            raise ValueError(f"no skill for {', '.join(unknown)}; agents can do: "
                             f"{', '.join(sorted([*BUILTIN, *ACTING_SKILLS]))}")
        if not capabilities:
            raise ValueError("an agent needs at least one capability")
        return capabilities


ROLE_AGENTS = (AgentSpec(agent_id="coder-1", role="coder", capabilities=("files.write",), slots=2),
               AgentSpec(agent_id="tester-1", role="tester",
                         capabilities=("ci.changes", "ci.impact", "ci.test", "ci.smoke"), slots=2),
               AgentSpec(agent_id="reviewer-1", role="reviewer", capabilities=("ci.review",), slots=1),
               AgentSpec(agent_id="builder-1", role="builder", capabilities=("command.run", "ci.build"), slots=2),
               AgentSpec(agent_id="deployer-1", role="deployer", capabilities=("deploy.local", "ci.deploy"), slots=1),
               AgentSpec(agent_id="documenter-1", role="documenter", capabilities=("ci.docs",), slots=1))
"""Agents that act on the world, each under the warrants its role gets from the policy; together they
carry out every step of the pipeline (``actors/pipeline``)."""

DEFAULT_TEAM = (AgentSpec(agent_id="worker-1"), AgentSpec(agent_id="worker-2"), *ROLE_AGENTS)


_PATHS: dict[Any, str] = {
    StoreActor: "actors.store_actor:StoreActor", CouncilActor: "actors.council_actor:CouncilActor",
    AgentActor: "actors.agent:AgentActor", DispatcherActor: "actors.dispatcher:DispatcherActor",
    ProjectorActor: "actors.projector_actor:ProjectorActor", ExporterActor: "monitoring.exporter:ExporterActor",
    DetectorActor: "monitoring.detector:DetectorActor",
}
"""Where each actor class lives, for the recipes the health monitor re-creates actors from."""


def _named(actor_class: Any, name: str, *args: Any, init: dict[str, Any] | None = None, **options: Any) -> Any:
    """The named, detached actor ``name``: the running one, or a new one built with ``args`` and ``init``."""
    return actor_class.options(name=name, namespace=names.NAMESPACE, lifetime="detached", get_if_exists=True,
                               num_cpus=0, **options).remote(*args, **(init or {}))


def here() -> NodeAffinitySchedulingStrategy:
    """Run on this driver's node: where the SQLite log and the DuckDB file are."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def boot(store_url: str, *, max_event_bytes: int = 1 << 20, team: Sequence[AgentSpec] = DEFAULT_TEAM,
         dispatch: dict[str, Any] | None = None, projections: str | None = None, home: str | None = None,
         policy: str | None = None, workspace: str | None = None, metrics_port: int | None = None,
         metrics_host: str = "127.0.0.1", health: dict[str, Any] | None = None,
         detector: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start (or find) the store, the council, the team, the dispatcher and, given a DuckDB path, the projector.

    With a ``home`` (the council's directory), the council actor runs with the council key from
    ``home/keys`` (created if missing, like each agent's identity key) and puts ``policy`` in
    force if the log has none yet; agents act in ``workspace``. Without one, there is no council:
    acting skills are denied at the gate. With a ``metrics_port`` (0: any free port), the
    exporter serves ``/metrics`` on ``metrics_host``. With ``health`` (settings for
    :class:`monitoring.health.HealthSettings`, ``{}`` for the defaults), a health monitor watches
    every actor started here and restarts the crashed and the hung, and the error detector runs
    with ``detector`` (settings for :class:`monitoring.errors.DetectorSettings`). Returns the handles by name
    once every actor has finished its constructor, i.e. has recovered from the log.
    """
    recipes: dict[str, Recipe] = {}

    def start(actor_class: Any, name: str, *args: Any, init: dict[str, Any] | None = None, **options: Any) -> Any:
        recipes[name] = Recipe(_PATHS[actor_class], args, dict(init or {}), {"num_cpus": 0, **options})
        return _named(actor_class, name, *args, init=init, **options)

    store = start(StoreActor, names.STORE, store_url, max_event_bytes, scheduling_strategy=here())
    running_url = ray.get(store.url.remote())
    if running_url != store_url:
        raise CouncilAlreadyRunning(f"a council is already running on this Ray cluster with the log {running_url}, "
                                    f"not {store_url}; use that store, or stop it first with `council down`")
    handles: dict[str, Any] = {names.STORE: store}
    council_key: bytes | None = None
    identities: dict[str, str] = {}
    if home is not None:
        keys = Keyring(Path(home) / "keys")
        council_key = keys.ensure(COUNCIL_KEY).raw
        identities = {spec.agent_id: keys.ensure(f"agent-{spec.agent_id.lower()}").fingerprint for spec in team}
        handles[names.COUNCIL] = start(CouncilActor, names.COUNCIL, store_url, home, policy, scheduling_strategy=here())
        if workspace is not None:
            Path(workspace).mkdir(parents=True, exist_ok=True)
    for spec in team:
        handles[names.agent(spec.agent_id)] = start(
            AgentActor, names.agent(spec.agent_id), spec.agent_id, spec.role, list(spec.capabilities), spec.slots,
            max_concurrency=spec.slots + 4,
            init={"workspace": workspace, "council_key": council_key, "identity": identities.get(spec.agent_id),
                  "keyring": str(Path(home) / "keys") if home is not None else None})
    handles[names.DISPATCHER] = start(DispatcherActor, names.DISPATCHER, dispatch or {}, store_url,
                                      scheduling_strategy=here())
    if projections is not None:
        Path(projections).parent.mkdir(parents=True, exist_ok=True)
        handles[names.PROJECTOR] = start(ProjectorActor, names.PROJECTOR, store_url, projections,
                                         scheduling_strategy=here())
    if metrics_port is not None:
        handles[names.EXPORTER] = start(ExporterActor, names.EXPORTER, store_url, metrics_port, metrics_host,
                                        scheduling_strategy=here())
    if health is not None:
        handles[names.DETECTOR] = start(DetectorActor, names.DETECTOR, store_url, detector or {},
                                        scheduling_strategy=here())
        handles[names.HEALTH] = _named(HealthMonitorActor, names.HEALTH, recipes, health, scheduling_strategy=here())
    try:
        ray.get([h.pid.remote() for h in handles.values()])
    except ray.exceptions.RayActorError as exc:
        if names.EXPORTER in handles and "Address already in use" in str(exc):
            raise CouncilError(f"the metrics port {metrics_host}:{metrics_port} is in use; choose another with "
                               "--metrics-port (or COUNCIL_METRICS_PORT), or 0 for any free port") from None
        raise
    return handles


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


def _known_names() -> list[str]:
    try:
        return running()
    except Exception:  # the state API needs the dashboard; fall back to the fixed names
        return [names.HEALTH, names.DETECTOR, names.DISPATCHER, names.PROJECTOR, names.COUNCIL, names.EXPORTER,
                names.STORE]
