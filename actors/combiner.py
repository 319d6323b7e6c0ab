"""Combining calls made at the same time by many threads into one: the leader/follower pattern.

Used twice: by a :class:`actors.store_client.StoreClient`, whose threads' appends become one
call to the store actor, and by the store actor, whose concurrent callers' appends become one
transaction (group commit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Combiner:
    """Sends the items many threads submit at once as one list, and hands each thread its own results.

    The first thread to find no send in progress becomes the leader: it sends everything pending
    and keeps sending until nothing is left; the others wait for their own results. ``send``
    takes a list of items and returns one result per item, in order. The invariant callers rely
    on: a thread's :meth:`submit` returns only after the send that held its items has returned
    (or raised), and sends never overlap — at most one is in progress at any moment.
    """

    def __init__(self, send: Callable[[list[Any]], list[Any]],
                 after: Callable[[list[Any]], None] | None = None) -> None:
        """``after`` (optional) is called by the leader with each send's results, before anyone is answered."""
        self._send, self._after = send, after
        self._lock = threading.Lock()
        self._pending: list[tuple[list[Any], Future[list[Any]]]] = []
        self._sending = False

    def submit(self, items: list[Any]) -> list[Any]:
        """Send ``items`` with whatever else is pending; return their results (or raise the send's error)."""
        future: Future[list[Any]] = Future()
        with self._lock:
            self._pending.append((items, future))
            lead, self._sending = not self._sending, True
        if lead:
            self._drain()
        return future.result()

    def _drain(self) -> None:
        while True:
            with self._lock:
                group, self._pending = self._pending, []
                if not group:
                    self._sending = False
                    return
            try:
                results = self._send([item for items, _ in group for item in items])
                if self._after is not None:
                    self._after(results)
            except BaseException as exc:  # noqa: BLE001 - the whole send failed: every waiter hears why
                for _, future in group:
                    future.set_exception(exc)
                continue
            i = 0
            for items, future in group:
                future.set_result(results[i : i + len(items)])
                i += len(items)
