"""Decoding just the payload fields a fold reads, straight from the stored bytes.

A ``task.submitted`` payload carries the task's inputs, a ``task.completed`` its result: the read
models need neither, and decoding them is most of the cost of decoding those events. For each
event type a fold reads, :class:`PayloadReader` derives from the registered class a slim struct
holding only the named fields — same names, same types, same defaults — and decodes the stored
JSON into it, skipping the rest.

It is only a shortcut for payloads stored at the class's current schema version. A payload stored
at an older version goes through :meth:`events.Registry.decode`, which upcasts it; so the slim
structs can never disagree with the vocabulary, because they are rebuilt from it every time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from events import Registry

Decode = Callable[[bytes], Any]


class PayloadReader:
    """Decodes stored payloads of the types in ``fields`` into objects with (at least) those fields."""

    def __init__(self, registry: Registry, fields: Mapping[str, tuple[str, ...]]) -> None:
        """Build a slim decoder per type; ``fields`` maps an event type name to the fields read.

        Raises :class:`events.errors.UnknownEventType` for a type the registry does not know and
        ``ValueError`` for a field its class does not have (a fold out of step with the vocabulary).
        """
        self._registry = registry
        self._fast: dict[str, tuple[int, Decode]] = {}
        for name, wanted in fields.items():
            cls = registry.class_of(name)
            known = {f.name: f for f in msgspec.structs.fields(cls)}
            missing = [f for f in wanted if f not in known]
            if missing:
                raise ValueError(f"{name} ({cls.__qualname__}) has no field(s) {', '.join(missing)}")
            slim = msgspec.defstruct(f"Slim{cls.__name__}", [_spec(known[f]) for f in wanted], kw_only=True, gc=False)
            self._fast[name] = (cls.schema_version, msgspec.json.Decoder(slim).decode)

    def decode(self, name: str, schema_version: int, data: bytes) -> Any:
        """The payload of a stored ``name`` event: slim if stored at the current version, else fully upcast.

        A payload that does not decode raises what :meth:`events.Registry.decode` raises for it
        (:class:`events.errors.InvalidPayload`, a :class:`events.CouncilError`).
        """
        fast = self._fast.get(name)
        if fast is not None and fast[0] == schema_version:
            try:
                return fast[1](data)
            except msgspec.MsgspecError:
                pass  # let the registry name the problem, as a CouncilError
        return self._registry.decode(name, schema_version, data)


def _spec(field: msgspec.structs.FieldInfo) -> tuple[Any, ...]:
    """``field`` as :func:`msgspec.defstruct` takes it: name, type and the default, if it has one."""
    if field.default is not msgspec.NODEFAULT:
        return (field.name, field.type, field.default)
    if field.default_factory is not msgspec.NODEFAULT:
        return (field.name, field.type, msgspec.field(default_factory=field.default_factory))
    return (field.name, field.type)
