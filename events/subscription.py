"""Following the log: catch up from a position, then receive new appends as they are stored."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator, Sequence

from events.envelope import RecordedEvent
from events.ledger import Row
from events.recorder import Recorder

_WAIT = 1.0


class Subscription(Iterator[RecordedEvent]):
    """An iterator over the log from a position onwards that never skips or repeats an event.

    ``position`` is the next position it will deliver. With a type filter it reads each range
    only up to the head it saw first, then moves past the whole range, so events of other
    types are skipped without being read twice and none of the wanted ones is missed (the
    backend's ordering invariant: a visible head means every position below it is visible).
    """

    def __init__(self, recorder: Recorder, decode: Callable[[Row], RecordedEvent], from_position: int,
                 types: Sequence[str] | None, batch_size: int) -> None:
        self._recorder = recorder
        self._decode = decode
        self._types = list(types) if types is not None else None
        self._batch = max(1, batch_size)
        self._buffer: collections.deque[Row] = collections.deque()
        self._closed = False
        self.position = from_position

    def poll(self, timeout: float = 0.0, max_events: int | None = None) -> list[RecordedEvent]:
        """Up to ``max_events`` next events, waiting at most ``timeout`` seconds for the first one."""
        deadline = time.monotonic() + timeout
        while not self._buffer and not self._closed:
            if self._fill():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._recorder.wait_for(self.position, remaining):
                break
        count = len(self._buffer) if max_events is None else min(max_events, len(self._buffer))
        return [self._decode(self._buffer.popleft()) for _ in range(count)]

    def _fill(self) -> bool:
        if self._types is None:
            rows = self._recorder.read_all(self.position, self._batch, None, None)
            if rows:
                self.position = rows[-1][0] + 1
        else:
            head = self._recorder.head()
            if head < self.position:
                return False
            rows = self._recorder.read_all(self.position, self._batch, self._types, head)
            self.position = rows[-1][0] + 1 if len(rows) == self._batch else head + 1
        self._buffer.extend(rows)
        return bool(rows)

    def __next__(self) -> RecordedEvent:
        while not self._closed:
            events = self.poll(_WAIT, 1)
            if events:
                return events[0]
        raise StopIteration

    def close(self) -> None:
        """Stop following; a blocked iteration ends within about a second."""
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
