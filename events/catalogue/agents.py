"""The agent lifecycle, in the agent's own stream (``agent-<agent_id>``).

registered → (unresponsive → restarted → registered)* → retired. ``epoch`` counts incarnations:
an instance acts only while its epoch is the agent's latest. Only what changes is recorded;
heartbeats are calls to the dispatcher, not events (see ``actors.dispatch.liveness``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from events.catalogue.fields import Capability, Count, Id, Positive, Text
from events.registry import Event, event_type, upcaster


@event_type("agent.registered", version=2)
class AgentRegistered(Event, frozen=True):
    """An agent joined the registry with what it can do and how much at once."""

    agent_id: Id
    role: Id
    capabilities: list[Capability]
    version: Text = ""
    slots: Positive = 1
    epoch: Positive = 1


@upcaster("agent.registered", from_version=1)
def _agent_registered_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 stored capabilities as one comma-separated string and had no slots."""
    caps = payload.get("capabilities", "")
    payload["capabilities"] = [c.strip() for c in caps.split(",") if c.strip()]
    payload.setdefault("slots", 1)
    return payload


@event_type("agent.heartbeat")
class AgentHeartbeat(Event, frozen=True):
    """The agent is alive and holds ``in_flight`` tasks.

    No longer written: logs of earlier versions hold them, and they are read and ignored.
    """

    agent_id: Id
    epoch: Positive = 1
    in_flight: Count = 0


@event_type("agent.unresponsive")
class AgentUnresponsive(Event, frozen=True):
    """A health check found the agent dead or making no progress."""

    agent_id: Id
    reason: Text
    last_seen_at: float | None = None


@event_type("agent.restarted")
class AgentRestarted(Event, frozen=True):
    """A new incarnation of the agent started; ``epoch`` fences the old one."""

    agent_id: Id
    epoch: Positive
    reason: Text = ""


Retirement = Literal["restart-budget", "person"]
"""Why an agent was retired: the health monitor restarted it more often than its budget allows, or a person did it."""


@event_type("agent.retired", version=2)
class AgentRetired(Event, frozen=True):
    """The agent left the registry and takes no more work; ``cause`` says who retired it and why."""

    agent_id: Id
    reason: Text = ""
    cause: Retirement = "person"


@upcaster("agent.retired", from_version=1)
def _agent_retired_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 told the health monitor's retirements apart only by their reason, which said "over the budget"."""
    payload["cause"] = "restart-budget" if "over the budget" in str(payload.get("reason", "")) else "person"
    return payload


class AgentStatus(StrEnum):
    """Whether an agent takes work: the ``agents`` read model's status, and the dispatcher's view."""

    LIVE = "live"
    """Registered (or restarted, or heard from) and not retired."""
    UNRESPONSIVE = "unresponsive"
    """The health monitor found it dead or hung; it takes no work until it is heard from again."""
    RETIRED = "retired"
    """Gone for good; it takes no work."""
