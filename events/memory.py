"""An in-process backend for tests and throwaway runs: the same rules, no disk.

Everything happens under one lock, which gives the ordering invariant of
:class:`events.recorder.Recorder` trivially: rows are appended to one list in position order.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from events.envelope import AppendResult, ExpectedVersion
from events.errors import ConcurrencyError, IdempotencyConflict, StoreClosed, StoreError
from events.ledger import GENESIS, Row
from events.recorder import AppendRequest, EncodedEvent, Recorder, Stored, plan_append, seal_batch


class MemoryRecorder(Recorder):
    """Rows in a list, shared by the threads of one process."""

    shared_across_processes = False

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._rows: list[Row] = []
        self._by_id: dict[bytes, int] = {}
        self._streams: dict[str, list[int]] = {}
        self._changed = threading.Condition()
        self._closed = False

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | StoreError]:
        with self._changed:
            self._check_open()
            results: list[AppendResult | StoreError] = []
            for stream, expected, batch in requests:
                try:
                    results.append(self._append_one(stream, expected, batch))
                except (ConcurrencyError, IdempotencyConflict) as exc:
                    results.append(exc)
            return results

    def _append_one(self, stream: str, expected: ExpectedVersion, batch: Sequence[EncodedEvent]) -> AppendResult:
        """One append, under the lock the caller holds."""
        positions = self._streams.get(stream, [])
        stored = {}
        for e in batch:
            index = self._by_id.get(e[0])
            if index is not None:
                r = self._rows[index]
                stored[e[0]] = Stored(r[0], r[1], r[2], r[4], r[8])
        decided = plan_append(stream, expected, batch, len(positions), stored)
        if decided is not None:
            return decided
        head = self._rows[-1] if self._rows else (0, "", 0, b"", "", 0, 0, b"", b"", GENESIS)
        sealed = seal_batch(stream, batch, len(positions), head[0], head[9], head[6])
        for row in sealed.rows(batch):
            self._by_id[row[3]] = len(self._rows)
            self._rows.append(row)
            positions.append(row[0])
        self._streams[stream] = positions
        self._changed.notify_all()
        return sealed.result()

    def read_stream(self, stream: str, from_version: int, limit: int | None) -> list[Row]:
        with self._changed:
            self._check_open()
            positions = self._streams.get(stream, [])[max(from_version, 1) - 1 :]
            if limit is not None:
                positions = positions[:limit]
            return [self._rows[p - 1] for p in positions]

    def read_all(self, from_position: int, limit: int | None, types: Sequence[str] | None,
                 until: int | None) -> list[Row]:
        with self._changed:
            self._check_open()
            end = len(self._rows) if until is None else min(until, len(self._rows))
            rows = self._rows[max(from_position, 1) - 1 : end]
        if types is not None:
            wanted = set(types)
            rows = [r for r in rows if r[4] in wanted]
        return rows if limit is None else rows[:limit]

    def head(self) -> int:
        with self._changed:
            self._check_open()
            return len(self._rows)

    def wait_for(self, position: int, timeout: float) -> bool:
        with self._changed:
            reached = self._changed.wait_for(lambda: self._closed or len(self._rows) >= position, timeout)
            return reached and not self._closed

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"the store at {self.url} is closed")
