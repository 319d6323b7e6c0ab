"""Booting and stopping the system's actors on Ray: the store, the agents, the dispatcher, the projector.

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
from actors.agent import AgentActor
from actors.dispatcher import DispatcherActor
from actors.projector_actor import ProjectorActor
from actors.skills import BUILTIN
from actors.store_actor import StoreActor
from events import CouncilError


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
        unknown = [c for c in capabilities if c not in BUILTIN]
        if unknown:
            raise ValueError(f"no skill for {', '.join(unknown)}; agents can do: {', '.join(sorted(BUILTIN))}")
        if not capabilities:
            raise ValueError("an agent needs at least one capability")
        return capabilities


DEFAULT_TEAM = (AgentSpec(agent_id="worker-1"), AgentSpec(agent_id="worker-2"))


def _named(actor_class: Any, name: str, *args: Any, **options: Any) -> Any:
    return actor_class.options(name=name, namespace=names.NAMESPACE, lifetime="detached", get_if_exists=True,
                               num_cpus=0, **options).remote(*args)


def here() -> NodeAffinitySchedulingStrategy:
    """Run on this driver's node: where the SQLite log and the DuckDB file are."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def boot(store_url: str, *, max_event_bytes: int = 1 << 20, team: Sequence[AgentSpec] = DEFAULT_TEAM,
         dispatch: dict[str, Any] | None = None, projections: str | None = None) -> dict[str, Any]:
    """Start (or find) the store, the team, the dispatcher and, given a DuckDB path, the projector.

    Returns their handles by name once every actor has finished its constructor, i.e. has
    recovered from the log.
    """
    store = _named(StoreActor, names.STORE, store_url, max_event_bytes, scheduling_strategy=here())
    running_url = ray.get(store.url.remote())
    if running_url != store_url:
        raise CouncilAlreadyRunning(f"a council is already running on this Ray cluster with the log {running_url}, "
                                    f"not {store_url}; use that store, or stop it first with `council down`")
    handles: dict[str, Any] = {names.STORE: store}
    for spec in team:
        handles[names.agent(spec.agent_id)] = _named(
            AgentActor, names.agent(spec.agent_id), spec.agent_id, spec.role, list(spec.capabilities), spec.slots,
            max_concurrency=spec.slots + 4)
    handles[names.DISPATCHER] = _named(DispatcherActor, names.DISPATCHER, dispatch or {}, store_url,
                                       scheduling_strategy=here())
    if projections is not None:
        Path(projections).parent.mkdir(parents=True, exist_ok=True)
        handles[names.PROJECTOR] = _named(ProjectorActor, names.PROJECTOR, store_url, projections,
                                          scheduling_strategy=here())
    ray.get([h.pid.remote() for h in handles.values()])
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
        return [names.DISPATCHER, names.PROJECTOR, names.STORE]
