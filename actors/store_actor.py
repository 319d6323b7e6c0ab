"""The store actor: the log's single writer on a Ray cluster, with group commit.

Every append in the system goes through this one actor. Appends that arrive while a commit is
being written wait and then go to disk together, in one transaction and one flush (each still
decided on its own, see :meth:`events.EventStore.append_many`), so many concurrent writers cost
few disk flushes. The actor takes no automatic task retries (``max_task_retries=0``): a client
whose call failed retries it itself with the same event ids, which the store recognises and does
not store twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import ray

from events import AppendResult, CouncilError, EventStore, ExpectedVersion, NewEvent, RecordedEvent, open_store
from events.registry import Event

AppendCall = tuple[str, Sequence[Event | NewEvent], ExpectedVersion]


class GroupCommitter:
    """Collects appends from concurrent callers and writes each gathered group in one transaction.

    The invariant: a caller's future is resolved only after the transaction holding its append
    has committed (or failed), so a returned result is durable.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.head = store.head()
        self.flushes = 0
        self.appends = 0
        self._pending: list[tuple[Sequence[AppendCall], asyncio.Future[list[AppendResult | CouncilError]]]] = []
        self._flushing = False
        self._changed: asyncio.Condition | None = None

    async def submit(self, calls: Sequence[AppendCall]) -> list[AppendResult | CouncilError]:
        """Queue ``calls`` for the next group and wait until it is on disk."""
        future: asyncio.Future[list[AppendResult | CouncilError]] = asyncio.get_running_loop().create_future()
        self._pending.append((calls, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                calls = [c for cs, _ in group for c in cs]
                try:
                    results = await asyncio.to_thread(self.store.append_many, calls)
                except BaseException as exc:  # the whole transaction failed: every caller hears it
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.flushes += 1
                self.appends += len(calls)
                i = 0
                for cs, future in group:
                    if not future.done():
                        future.set_result(results[i : i + len(cs)])
                    i += len(cs)
                self.head = max([self.head, *(r.last_position for r in results if isinstance(r, AppendResult))])
                await self._notify()
        finally:
            self._flushing = False

    async def _notify(self) -> None:
        async with self._condition():
            self._condition().notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def wait_for(self, position: int, timeout: float) -> int:
        """Wait until the log's head reaches ``position`` or ``timeout`` passes; return the head."""
        condition = self._condition()
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(lambda: self.head >= position), timeout)
            except TimeoutError:
                pass
        return self.head


@ray.remote(max_restarts=-1, max_task_retries=0)
class StoreActor:
    """The Ray shell around :class:`GroupCommitter`; it reopens the log when restarted."""

    def __init__(self, url: str, max_event_bytes: int) -> None:
        self._committer = GroupCommitter(open_store(url, max_event_bytes=max_event_bytes))

    async def append_many(self, calls: Sequence[AppendCall]) -> list[AppendResult | CouncilError]:
        """Append each ``(stream, events, expected_version)``; results (or refusals) in order."""
        return await self._committer.submit(calls)

    async def read_all(self, from_position: int = 1, limit: int | None = 1000,
                       types: Sequence[str] | None = None) -> list[RecordedEvent]:
        """Events from ``from_position``, as :meth:`events.EventStore.read_all`."""
        return await asyncio.to_thread(self._committer.store.read_all, from_position, limit, types)

    async def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        """Events of ``stream``, as :meth:`events.EventStore.read_stream`."""
        return await asyncio.to_thread(self._committer.store.read_stream, stream, from_version, limit)

    async def head(self) -> int:
        """The log's last position."""
        return self._committer.head

    async def wait_for(self, position: int, timeout: float = 1.0) -> int:
        """Long poll: return as soon as the head reaches ``position``, or after ``timeout`` seconds."""
        return await self._committer.wait_for(position, timeout)

    async def stats(self) -> dict[str, int]:
        """Appends and disk transactions since this incarnation started (group commit at work)."""
        return {"appends": self._committer.appends, "flushes": self._committer.flushes, "head": self._committer.head}

    async def pid(self) -> int:
        """This incarnation's process id (tests kill it to show recovery)."""
        return os.getpid()

    async def url(self) -> str:
        """The URL of the log this actor writes."""
        return self._committer.store.url
