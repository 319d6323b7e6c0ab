"""The vocabulary and the log: typed events, the append-only store and its Merkle ledger.

The public surface::

    from events import open_store, NewEvent, Metadata, ANY, NO_STREAM
    from events.catalogue import TaskSubmitted

    with open_store("sqlite:///.council/events.db") as store:
        store.append("task-1", [TaskSubmitted(task_id="task-1", capability="code.generate")])
        for event in store.read_stream("task-1"):
            ...
"""

from events.envelope import (
    ANY,
    NO_STREAM,
    AppendResult,
    Expect,
    ExpectedVersion,
    Intent,
    Metadata,
    NewEvent,
    RecordedEvent,
)
from events.errors import CouncilError
from events.ledger import VerifyReport
from events.registry import VOCABULARY, Event, Registry, event_type, upcaster
from events.store import EventStore, open_store
from events.subscription import Subscription

__all__ = [
    "ANY",
    "NO_STREAM",
    "VOCABULARY",
    "AppendResult",
    "CouncilError",
    "Event",
    "EventStore",
    "Expect",
    "ExpectedVersion",
    "Intent",
    "Metadata",
    "NewEvent",
    "RecordedEvent",
    "Registry",
    "Subscription",
    "VerifyReport",
    "event_type",
    "open_store",
    "upcaster",
]
