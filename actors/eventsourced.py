"""The event-sourced actor base: a behaviour decides events from commands and evolves its state
from events; an :class:`Entity` holds that state, rebuilt from the behaviour's stream.

This is the plain half of every event-sourced actor (rule 2, in the shape of Akka's
EventSourcedBehavior). The Ray half only replays the stream in its constructor — so commands
that arrive during recovery wait, because Ray delivers no call before the constructor returns —
and then passes each command to :meth:`Entity.handle`. Each decision is appended at the stream
version the state was built from: if another incarnation appended in between, the append is
refused and :class:`Fenced` is raised, so two incarnations never both act on one stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from events import NO_STREAM, AppendResult, CouncilError, Event, ExpectedVersion, RecordedEvent
from events.errors import ConcurrencyError

S = TypeVar("S")
C = TypeVar("C", contravariant=True)
Writer = Callable[[str, Sequence[Event], ExpectedVersion], AppendResult]
"""Appends events to a stream at an expected version (``StoreClient.append``, ``EventStore.append``)."""


class Fenced(CouncilError):
    """Another incarnation appended to this entity's stream: this one must stop acting."""


class Behaviour(Protocol[S, C]):
    """What an event-sourced actor is, without Ray: its stream, its first state, decide and evolve."""

    @property
    def stream(self) -> str:
        """The stream that holds this entity's events."""

    def initial(self) -> S:
        """The state before any event."""

    def decide(self, state: S, command: C) -> Sequence[Event]:
        """The events ``command`` causes in ``state`` (none is fine); raise to refuse it."""

    def evolve(self, state: S, event: Event) -> S:
        """The state after ``event``."""


class Entity(Generic[S, C]):
    """A behaviour's current state and the stream version it stands at."""

    def __init__(self, behaviour: Behaviour[S, C], history: Iterable[RecordedEvent] = ()) -> None:
        self.behaviour = behaviour
        self.state = behaviour.initial()
        self.version = 0
        for event in history:
            self.state = behaviour.evolve(self.state, event.payload)
            self.version = event.stream_version

    def handle(self, command: C, append: Writer) -> list[Event]:
        """Decide on ``command``, append the events at this entity's version, then evolve; return them.

        Raises :class:`Fenced` if the stream moved on since this state was built.
        """
        events = list(self.behaviour.decide(self.state, command))
        if not events:
            return events
        try:
            result = append(self.behaviour.stream, events, self.version or NO_STREAM)
        except ConcurrencyError as exc:
            raise Fenced(f"{self.behaviour.stream} moved on to version {exc.actual} while this incarnation held "
                         f"version {self.version}; a newer incarnation owns it") from None
        for event in events:
            self.state = self.behaviour.evolve(self.state, event)
        self.version = result.stream_version
        return events
