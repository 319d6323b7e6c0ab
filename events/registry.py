"""The event vocabulary: typed event payloads, their stable names and versions, and upcasters.

An event payload is a frozen msgspec Struct registered under a stable dotted name
(``task.submitted``) and a schema version. The name and version are what is stored; the Python
class name is free to change. When a schema changes, its version goes up and an upcaster turns a
stored payload of the old version into the new one on read. Stored bytes are never rewritten:
the ledger hashes them, so the log stays verifiable across schema changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import msgspec

from events.errors import InvalidPayload, UnknownEventType, UnsupportedSchemaVersion

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

E = TypeVar("E", bound="Event")
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# Payloads are encoded with dictionaries in sorted key order, so equal payloads have equal bytes:
# the store compares bytes when it recognises a retried append.
_ENCODER = msgspec.json.Encoder(order="deterministic")
_JSON = msgspec.json.Decoder()


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event payload. Subclasses are registered with :func:`event_type`."""

    type_name: ClassVar[str]
    schema_version: ClassVar[int]


class _Entry(msgspec.Struct, frozen=True):
    cls: type[Event]
    name: str
    version: int
    decoder: msgspec.json.Decoder[Event]
    many: msgspec.json.Decoder[list[Event]]


class Registry:
    """Maps stored type names to payload classes and upgrades old payloads on read."""

    def __init__(self) -> None:
        self._by_name: dict[str, _Entry] = {}
        self._by_class: dict[type[Event], _Entry] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[E], name: str, version: int = 1) -> type[E]:
        """Register ``cls`` as event type ``name`` at schema ``version``; return ``cls``."""
        if not _NAME.match(name):
            raise ValueError(f"event type name {name!r} must be dotted lower-case words, like 'task.submitted'")
        if version < 1:
            raise ValueError(f"event type {name!r}: schema version must be >= 1, got {version}")
        known = self._by_name.get(name)
        if known is not None and known.cls is not cls:
            raise ValueError(f"event type {name!r} is already registered to {known.cls.__qualname__}")
        cls.type_name = name
        cls.schema_version = version
        entry = _Entry(cls, name, version, msgspec.json.Decoder(cls), msgspec.json.Decoder(list[cls]))  # type: ignore[valid-type]
        self._by_name[name] = self._by_class[cls] = entry
        return cls

    def upcaster(self, name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorate a function that turns a ``name`` payload of ``from_version`` into ``from_version + 1``."""

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(name, from_version)] = fn
            return fn

        return register

    def names(self) -> list[str]:
        """Every registered event type name, sorted."""
        return sorted(self._by_name)

    def class_of(self, name: str) -> type[Event]:
        """The payload class registered as ``name``; :class:`UnknownEventType` if there is none."""
        return self._entry(name).cls

    def encode(self, payload: Event) -> tuple[str, int, bytes]:
        """Validate ``payload`` against its schema and return ``(type name, version, bytes)``."""
        names, versions, datas = self.encode_many([payload])
        return names[0], versions[0], datas[0]

    def encode_many(self, payloads: Sequence[Event]) -> tuple[list[str], list[int], list[bytes]]:
        """Validate every payload against its schema; return their type names, versions and bytes.

        Raises :class:`UnknownEventType` for an unregistered class and :class:`InvalidPayload`,
        naming the first offending item, when a field does not fit its declared type or
        constraints. msgspec does not check types when a Struct is constructed, so the encoded
        bytes are decoded once, strictly, before they may be stored; payloads of one class are
        checked together in one decode.
        """
        entries = {kind: self._by_class.get(kind) for kind in {type(p) for p in payloads}}
        if None in entries.values():
            i, payload = next((i, p) for i, p in enumerate(payloads) if entries[type(p)] is None)
            raise UnknownEventType(
                f"{type(payload).__qualname__} (item {i}) is not a registered event type; decorate it with "
                "@event_type('some.name') before appending it"
            )
        try:
            datas = [_ENCODER.encode(p) for p in payloads]
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
            self._raise_first_invalid(payloads, strict=False)
            raise
        for kind, entry in entries.items():
            group = datas if len(entries) == 1 else [d for d, p in zip(datas, payloads, strict=True) if type(p) is kind]
            try:
                entry.many.decode(b"[" + b",".join(group) + b"]")  # type: ignore[union-attr]
            except msgspec.ValidationError:
                self._raise_first_invalid(payloads, strict=True)
                raise
        if len(entries) == 1:
            (entry,) = entries.values()
            return [entry.name] * len(payloads), [entry.version] * len(payloads), datas  # type: ignore[union-attr]
        return ([entries[type(p)].name for p in payloads], [entries[type(p)].version for p in payloads],  # type: ignore[union-attr]
                datas)

    def _raise_first_invalid(self, payloads: Sequence[Event], *, strict: bool) -> None:
        """Raise :class:`InvalidPayload` for the first payload that does not encode (or, strictly, validate)."""
        for i, payload in enumerate(payloads):
            entry = self._by_class[type(payload)]
            try:
                data = _ENCODER.encode(payload)
                if strict:
                    entry.decoder.decode(data)
            except (msgspec.EncodeError, msgspec.ValidationError, TypeError, ValueError, OverflowError) as exc:
                raise InvalidPayload(f"{entry.name} payload (item {i}) does not fit its schema: {exc}") from None

    def decode(self, name: str, version: int, data: bytes) -> Event:
        """Decode stored payload bytes into the current class of ``name``, upcasting old versions."""
        entry = self._entry(name)
        try:
            if version == entry.version:
                return entry.decoder.decode(data)
            if version > entry.version:
                raise UnsupportedSchemaVersion(
                    f"a stored {name} event has schema version {version}, but this agent-council "
                    f"knows versions up to {entry.version}; upgrade agent-council to read this store"
                )
            raw = _JSON.decode(data)
            for v in range(version, entry.version):
                step = self._upcasters.get((name, v))
                if step is None:
                    raise UnsupportedSchemaVersion(
                        f"a stored {name} event has schema version {v}, and no upcaster from {v} "
                        f"to {v + 1} is registered"
                    )
                raw = step(raw)
            return msgspec.convert(raw, entry.cls)
        except msgspec.ValidationError as exc:
            raise InvalidPayload(f"stored {name} v{version} payload does not fit its schema: {exc}") from None

    def _entry(self, name: str) -> _Entry:
        entry = self._by_name.get(name)
        if entry is None:
            raise UnknownEventType(
                f"event type {name!r} is not known to this agent-council; known types: "
                f"{', '.join(self.names()) or 'none'}"
            )
        return entry


VOCABULARY = Registry()
"""The registry of every event type agent-council itself defines (``events.catalogue``)."""


def event_type(name: str, version: int = 1) -> Callable[[type[E]], type[E]]:
    """Class decorator: register an :class:`Event` subclass in :data:`VOCABULARY`."""

    def register(cls: type[E]) -> type[E]:
        return VOCABULARY.register(cls, name, version)

    return register


def upcaster(name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Function decorator: register an upcaster in :data:`VOCABULARY`."""
    return VOCABULARY.upcaster(name, from_version)
