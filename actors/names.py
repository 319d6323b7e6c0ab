"""Where the long-lived actors live: one Ray namespace, one name each (rule 6)."""

from __future__ import annotations

NAMESPACE = "council"
STORE = "store"
DISPATCHER = "dispatcher"
PROJECTOR = "projector"
COUNCIL = "council"
EXPORTER = "exporter"
HEALTH = "health"
DETECTOR = "detector"


def agent(agent_id: str) -> str:
    """The actor name of agent ``agent_id``."""
    return f"agent:{agent_id}"
