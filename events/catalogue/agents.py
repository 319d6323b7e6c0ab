"""The agent lifecycle, in the agent's own stream (``agent-<agent_id>``).

registered → heartbeat* → (unresponsive → restarted → heartbeat*)* → retired. ``epoch`` counts
incarnations: an instance acts only while its epoch is the agent's latest.
"""

from __future__ import annotations

from typing import Any

from events.catalogue.fields import Capability, Count, Id, Positive, Text
from events.registry import Event, event_type, upcaster


@event_type("agent.registered", version=2)
class AgentRegistered(Event):
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
class AgentHeartbeat(Event):
    """The agent is alive and holds ``in_flight`` tasks."""

    agent_id: Id
    epoch: Positive = 1
    in_flight: Count = 0


@event_type("agent.unresponsive")
class AgentUnresponsive(Event):
    """A health check found the agent dead or making no progress."""

    agent_id: Id
    reason: Text
    last_seen_at: float | None = None


@event_type("agent.restarted")
class AgentRestarted(Event):
    """A new incarnation of the agent started; ``epoch`` fences the old one."""

    agent_id: Id
    epoch: Positive
    reason: Text = ""


@event_type("agent.retired")
class AgentRetired(Event):
    """The agent left the registry and takes no more work."""

    agent_id: Id
    reason: Text = ""
