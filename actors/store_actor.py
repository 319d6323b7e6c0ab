"""The store actor: the log's single writer on a Ray cluster, with group commit.

Every append in the system goes through this one actor. Appends that arrive while a commit is
being written wait and then go to disk together, in one transaction and one flush (each still
decided on its own, see :meth:`events.EventStore.append_many`), so many concurrent writers cost
few disk flushes. The actor takes no automatic task retries (``max_task_retries=0``): a client
whose call failed retries it itself with the same event ids, which the store recognises and does
not store twice.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import ray

from actors.combiner import Combiner
from actors.store_door import Address, Door
from actors.store_wire import AppendCall, calls_from_wire, results_to_wire
from events import AppendResult, CouncilError, EventStore, RecordedEvent, open_store

_log = logging.getLogger(__name__)


class GroupCommitter:
    """Collects appends from concurrent callers (threads) and writes each gathered group in one transaction.

    The invariant: a caller's :meth:`submit` returns only after the transaction holding its
    append has committed (or failed), so a returned result is durable; and :attr:`head` moves,
    and waiters in :meth:`wait_for` wake, only after that commit.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.head = store.head()
        self.flushes = 0
        self.appends = 0
        self._moved = threading.Condition()
        self._combiner = Combiner(store.append_many, after=self._committed)

    def submit(self, calls: Sequence[AppendCall]) -> list[AppendResult | CouncilError]:
        """Append ``calls`` with the next group and return once it is on disk (each result or refusal in order)."""
        return self._combiner.submit(list(calls))

    def submit_wire(self, wire: bytes) -> bytes:
        """:meth:`submit` for calls as :mod:`actors.store_wire` carries them; their results the same way."""
        calls = calls_from_wire(wire, self.store.registry)
        decoded = [c for c in calls if not isinstance(c, CouncilError)]
        results = iter(self.submit(decoded) if decoded else [])
        return results_to_wire([c if isinstance(c, CouncilError) else next(results) for c in calls])

    def _committed(self, results: list[AppendResult | CouncilError]) -> None:
        last = max((r.last_position for r in results if isinstance(r, AppendResult)), default=0)
        with self._moved:
            self.flushes += 1
            self.appends += len(results)
            if last > self.head:
                self.head = last
                self._moved.notify_all()

    def wait_for(self, position: int, timeout: float) -> int:
        """Wait until the log's head reaches ``position`` or ``timeout`` passes; return the head."""
        with self._moved:
            self._moved.wait_for(lambda: self.head >= position, max(0.0, timeout))
            return self.head


@ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"append": 32, "poll": 32})  # type: ignore[call-overload]  # Ray's stub takes no actor options
class StoreActor:
    """The Ray shell around :class:`GroupCommitter`; it reopens the log when restarted.

    A threaded actor: appends (and reads) run in the ``append`` concurrency group, so callers
    arriving together are committed together, and long polls wait in the ``poll`` group, where
    however many watchers there are they cannot take the threads appends need. Writers on its node
    append through its :class:`actors.store_door.Door` instead, to the same group commit.
    """

    def __init__(self, url: str, max_event_bytes: int) -> None:
        self._committer = GroupCommitter(open_store(url, max_event_bytes=max_event_bytes))
        self._door: Door | None = None
        try:
            self._door = Door(self._committer.submit_wire, ray.get_runtime_context().get_node_id())
        except OSError as exc:  # no socket here (a temporary directory too deep for one): every writer uses Ray
            _log.warning("the store actor opens no door (%s); every append is a Ray call", exc)

    @ray.method(concurrency_group="append")
    def append_many(self, wire: bytes) -> bytes:
        """Append each ``(stream, events, expected_version)`` of ``wire``; results (or refusals) in order, both as
        :mod:`actors.store_wire` carries them (a :class:`actors.store_client.StoreClient` makes and reads them)."""
        return self._committer.submit_wire(wire)

    @ray.method(concurrency_group="poll")
    def door(self) -> Address | None:
        """Where this incarnation's door is, and its token: for writers on its node (see :mod:`actors.store_door`).
        None if it has none."""
        return self._door.address if self._door is not None else None

    @ray.method(concurrency_group="append")
    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]:
        """Events from ``from_position``, as :meth:`events.EventStore.read_all`."""
        return self._committer.store.read_all(from_position, limit, types)

    @ray.method(concurrency_group="append")
    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        """Events of ``stream``, as :meth:`events.EventStore.read_stream`."""
        return self._committer.store.read_stream(stream, from_version, limit)

    @ray.method(concurrency_group="poll")
    def head(self) -> int:
        """The log's last position."""
        return self._committer.head

    @ray.method(concurrency_group="poll")
    def wait_for(self, position: int, timeout: float = 1.0) -> int:
        """Long poll: return as soon as the head reaches ``position``, or after ``timeout`` seconds."""
        return self._committer.wait_for(position, timeout)

    @ray.method(concurrency_group="poll")
    def stats(self) -> dict[str, int]:
        """Appends and disk transactions since this incarnation started (group commit at work), and the calls its
        door answered."""
        return {"appends": self._committer.appends, "flushes": self._committer.flushes, "head": self._committer.head,
                "through_door": self._door.answered if self._door is not None else 0}

    @ray.method(concurrency_group="poll")
    def pid(self) -> int:
        """This incarnation's process id (tests kill it to show recovery)."""
        return os.getpid()

    @ray.method(concurrency_group="poll")
    def url(self) -> str:
        """The URL of the log this actor writes."""
        return self._committer.store.url
