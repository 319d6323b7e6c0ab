"""What an append and its results look like between a :class:`actors.store_client.StoreClient` and the store actor.

One MessagePack byte string each way, rather than the Python objects themselves: Ray pickles
objects it carries (an event, a result) and passes bytes as they are, and with 16 writers on two
cores that difference is a third of the calls Ray can make per second (``bench/store_postgres.py``,
"Ray alone"). Nothing is trusted because it crossed: each event's payload is decoded into the
class its type name registers, strictly (an unknown type or a payload that does not fit is that
append's refusal, as :meth:`events.EventStore.append` would raise it), and the store then checks
and encodes it as it does any event.

A refusal travels pickled, as Ray would carry it: it comes from the store actor, never from a
writer.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec

from events import AppendResult, CouncilError, ExpectedVersion, NewEvent
from events.envelope import NO_METADATA, Metadata
from events.errors import InvalidPayload
from events.registry import Event, Registry

AppendCall = tuple[str, Sequence[Event | NewEvent], ExpectedVersion]

_Sent = list[tuple[str, list[tuple[bytes, str, msgspec.Raw, Metadata | None]], ExpectedVersion]]
_calls = msgspec.msgpack.Decoder(_Sent)
_encode = msgspec.msgpack.Encoder().encode


class _Results(msgspec.Struct, array_like=True):
    appended: list[AppendResult | None]
    refused: dict[int, bytes]  # by index in the calls: the pickled refusal


_results = msgspec.msgpack.Decoder(_Results)


def calls_to_wire(calls: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]]) -> bytes:
    """``calls`` (their events with ids and metadata given) as the store actor takes them."""
    return _encode([(stream, [(e.event_id.bytes, _name_of(e.payload), e.payload,
                               None if e.metadata is NO_METADATA else e.metadata) for e in events], expected)
                    for stream, events, expected in calls])


def _name_of(payload: Event) -> str:
    # The name its own class registered: a subclass inherits its parent's, and must not pass for the parent.
    name: str | None = type(payload).__dict__.get("type_name")
    return name or f"<unregistered {type(payload).__qualname__}>"  # the store refuses it, naming the class


def calls_from_wire(wire: bytes, registry: Registry) -> list[AppendCall | CouncilError]:
    """The calls ``wire`` holds, each with its events decoded strictly into their classes — or the refusal of a
    call with an event of an unknown type or a payload that does not fit it. A malformed ``wire`` raises
    :class:`msgspec.DecodeError` (it never came from a StoreClient)."""
    out: list[AppendCall | CouncilError] = []
    for stream, sent, expected in _calls.decode(wire):
        try:
            events = [NewEvent(payload=_payload(registry, name, raw, i), event_id=UUID(bytes=eid),
                               metadata=meta or NO_METADATA) for i, (eid, name, raw, meta) in enumerate(sent)]
        except CouncilError as exc:
            out.append(exc)
            continue
        except ValueError as exc:  # an id that is not 16 bytes
            out.append(InvalidPayload(f"the append to {stream!r} carries a malformed event id: {exc}"))
            continue
        out.append((stream, events, expected))
    return out


def _payload(registry: Registry, name: str, raw: msgspec.Raw, item: int) -> Event:
    cls = registry.class_of(name)
    try:
        payload: Event = msgspec.msgpack.decode(raw, type=cls)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"{name} payload (item {item}) does not fit its schema: {exc}") from None
    return payload


def results_to_wire(results: Sequence[AppendResult | CouncilError]) -> bytes:
    """Each call's result or refusal, in order, as the client reads them."""
    return _encode(_Results([r if isinstance(r, AppendResult) else None for r in results],
                            {i: pickle.dumps(r) for i, r in enumerate(results) if not isinstance(r, AppendResult)}))


def results_from_wire(wire: bytes) -> list[AppendResult | CouncilError]:
    """The results :func:`results_to_wire` sent, in order."""
    sent = _results.decode(wire)
    refused: dict[int, Any] = {i: pickle.loads(data) for i, data in sent.refused.items()}  # from the store actor
    return [refused[i] if result is None else result for i, result in enumerate(sent.appended)]
