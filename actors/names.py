"""Where the long-lived actors live: one Ray namespace, one name each (rule 6)."""

from __future__ import annotations

import hashlib

NAMESPACE = "council"
STORE = "store"
DISPATCHER = "dispatcher"
PROJECTOR = "projector"
COUNCIL = "council"
EXPORTER = "exporter"
HEALTH = "health"
DETECTOR = "detector"
LEARNER = "learner"
DEPOT = "depot"


def agent(agent_id: str) -> str:
    """The actor name of agent ``agent_id``."""
    return f"agent:{agent_id}"


def model_server(model_file: str) -> str:
    """The actor name of the server of the local model in ``model_file`` (one per file, cluster-wide)."""
    return "model-server:" + hashlib.sha256(model_file.encode()).hexdigest()[:12]


def orchestrator(request_id: str) -> str:
    """The actor name of the orchestrator of request ``request_id`` (one per request)."""
    return f"orchestrator:{request_id}"
