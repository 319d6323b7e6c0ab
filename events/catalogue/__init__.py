"""Every event type agent-council defines, registered in :data:`events.registry.VOCABULARY`.

Importing this package registers the whole catalogue. Each module holds one lifecycle.
"""

from events.catalogue.agents import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    AgentUnresponsive,
)
from events.catalogue.requests import RequestSubmitted
from events.catalogue.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
)

__all__ = [
    "AgentHeartbeat",
    "AgentRegistered",
    "AgentRestarted",
    "AgentRetired",
    "AgentUnresponsive",
    "RequestSubmitted",
    "TaskAssigned",
    "TaskCompleted",
    "TaskDeadLettered",
    "TaskFailed",
    "TaskLeaseExpired",
    "TaskQueued",
    "TaskRequeued",
    "TaskRetried",
    "TaskStarted",
    "TaskSubmitted",
]
