"""The Ray actors: the store actor, the dispatcher, the council and projector actors, the agents.

May import ``events``, ``governance`` and ``projections``.
"""
