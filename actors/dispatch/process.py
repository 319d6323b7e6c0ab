"""The dispatcher as a :class:`actors.follow.Process`: its fold, its decisions, and when it must look again.

The Ray shell (:mod:`actors.dispatcher`) only adds what needs Ray: handing each new lease to its
agent (:meth:`Dispatch.react`) and noticing an agent whose actor died while it held a task
(:meth:`Dispatch.sense`). Tests drive this class with the real :class:`actors.follow.Follower`
over an in-memory log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from actors.dispatch.decide import decide
from actors.dispatch.settings import DispatchSettings
from actors.dispatch.state import DispatchState
from actors.follow import Process
from events import Intent, RecordedEvent
from events.catalogue import AgentRegistered, AgentRestarted


class Dispatch(Process):
    """Tasks and agents folded from the log, and the dispatcher's decisions about them."""

    def __init__(self, settings: DispatchSettings | None = None,
                 new_lease_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16]) -> None:
        self.settings = settings or DispatchSettings.model_validate({})
        self.state = DispatchState()
        self.new_lease_id = new_lease_id
        self.gone: set[str] = set()
        """Agents seen dead (by the shell) since they last registered: what they hold is taken back at once."""

    @property
    def position(self) -> int:
        """The last log position folded."""
        return self.state.position

    @position.setter
    def position(self, value: int) -> None:
        self.state.position = value

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event into the dispatcher's state."""
        self.state.evolve(event)
        if isinstance(event.payload, AgentRegistered | AgentRestarted):
            self.gone.discard(event.payload.agent_id)

    def decide(self, now: float) -> Sequence[Intent]:
        """Queue, take back, resume, retry or bury, and assign: see :func:`actors.dispatch.decide`."""
        return decide(self.state, now, self.settings, self.new_lease_id, self.gone)

    def due(self, now: float) -> float:
        """The nearest lease expiry or retry backoff: nothing else falls due without a new event."""
        due = [self.state.tasks[t].lease_expires_at for t in self.state.leased]
        next_retry = self.state.next_due()
        if next_retry is not None:
            due.append(next_retry)
        return max(now + 0.01, min(due, default=now + 1.0))
