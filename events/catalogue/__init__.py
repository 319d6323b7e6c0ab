"""Every event type agent-council defines, registered in :data:`events.registry.VOCABULARY`.

Importing this package registers the whole catalogue. Each module holds one lifecycle.
"""

from events.catalogue.agents import (
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    AgentUnresponsive,
)
from events.catalogue.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskQueued,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
)

__all__ = [
    "AgentRegistered",
    "AgentRestarted",
    "AgentRetired",
    "AgentUnresponsive",
    "TaskAssigned",
    "TaskCompleted",
    "TaskDeadLettered",
    "TaskFailed",
    "TaskQueued",
    "TaskRetried",
    "TaskStarted",
    "TaskSubmitted",
]
