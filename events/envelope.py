"""What travels around a payload: the writer's request and the store's record.

The envelope keeps system metadata (correlation, causation, actor, warrant) apart from the
payload, the way KurrentDB does, so a payload schema never has to carry them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import msgspec

from events.ids import new_event_id
from events.registry import Event


class Metadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who and what caused an event. Stored next to the payload, never inside it."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    warrant_id: str | None = None
    extra: dict[str, str] = {}


NO_METADATA = Metadata()


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event a writer wants stored.

    ``event_id`` makes the append idempotent: a writer that retries must reuse the ids of the
    first attempt. A plain :class:`Event` passed to ``append`` gets a fresh id, so retrying it
    would store it twice.
    """

    payload: Event
    event_id: UUID = msgspec.field(default_factory=new_event_id)
    metadata: Metadata = NO_METADATA


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as the store holds it.

    ``position`` is global, 1-based and gap-free; ``stream_version`` is 1-based within
    ``stream``; ``schema_version`` is the version the payload was stored at (``payload`` is
    always upcast to the current class); ``hash`` is the ledger's chain hash of this event.
    """

    position: int
    stream: str
    stream_version: int
    event_id: UUID
    type: str
    schema_version: int
    recorded_at: datetime
    metadata: Metadata
    payload: Event
    hash: bytes


class Expect(enum.Enum):
    """Expected-version conditions other than an exact version."""

    ANY = "any"
    NO_STREAM = "no stream"

    def __repr__(self) -> str:
        return f"Expect.{self.name}"


ANY = Expect.ANY
"""Append whatever the stream's version is."""
NO_STREAM = Expect.NO_STREAM
"""Append only if the stream has no events yet (the same as expecting version 0)."""

ExpectedVersion = int | Expect


class AppendResult(msgspec.Struct, frozen=True):
    """Where an append put its events.

    ``positions`` are in the order of the batch. ``stream_version`` is the stream's version
    after the batch's last event. ``duplicate`` is true when every event id was already stored
    and nothing was written (a retry).
    """

    positions: tuple[int, ...]
    stream_version: int
    duplicate: bool = False

    @property
    def last_position(self) -> int:
        """The position of the batch's last event."""
        return self.positions[-1]


class Intent(NamedTuple):
    """A decision not stored yet: ``events`` to append to ``stream``, valid only while it stands at ``expected``.

    Whoever decides (the dispatcher, the council, the gate, the error detector) returns intents;
    whoever holds the log appends them (``EventStore.append_many`` takes them as they are). An
    intent decided from a stream at version *v* carries ``expected=v``, so if anything landed on
    the stream since, the append is refused and the decision is taken again from the log.
    """

    stream: str
    events: Sequence[Event | NewEvent]
    expected: ExpectedVersion
