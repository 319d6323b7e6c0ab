"""Notes for an agent-council team: skills registered through the ``agent_council.skills`` entry point group."""
