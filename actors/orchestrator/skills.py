"""The orchestrator's skills, in the one module the ``agent_council.skills`` entry point ``orchestrator`` names."""

from actors.orchestrator.architect import write_design
from actors.orchestrator.planner import write_plan

__all__ = ["write_design", "write_plan"]
