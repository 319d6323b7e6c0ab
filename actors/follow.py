"""Folding the log from a position onwards, page by page: what every log-following actor does on each round."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from events import RecordedEvent

PAGE = 5000
"""Events read per call."""


class Source(Protocol):
    """Anything that reads the log in order: an ``EventStore`` (the file, on this node) or a ``StoreClient``."""

    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]: ...


def fold_from(source: Source, after: int, apply: Callable[[RecordedEvent], None],
              types: Sequence[str] | None = None) -> int:
    """Apply every event after position ``after`` (of ``types``, if given) in log order; return how many.

    Reads until a page comes back short, so it returns with everything appended before the call.
    """
    folded, position = 0, after + 1
    while True:
        events = source.read_all(position, PAGE, types)
        for event in events:
            apply(event)
        folded += len(events)
        if len(events) < PAGE:
            return folded
        position = events[-1].position + 1
