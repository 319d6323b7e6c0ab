"""The time of one model call: its overall deadline, the silence a stream may keep, and its progress reports.

Two limits bound a call. ``timeout`` is the whole call's; ``stall_after`` is the longest silence allowed
between two pieces of a streamed reply. The SDKs only know per-read timeouts, so:

* a reply that is not streamed is read with a read timeout of ``timeout`` (it arrives in one piece, after the
  model is done, so one read is about the whole call);
* a streamed reply is read with a read timeout of ``stall_after`` (the SDK raises when nothing arrives for that
  long: the stall), and :meth:`CallClock.tick` checks the overall deadline at every piece. A call can therefore
  overrun ``timeout`` by at most one silence shorter than ``stall_after``; it cannot run on unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import httpx2

from actors.llm.errors import BadRequest, ModelCallError
from actors.llm.types import Progress


class CallClock:
    """Started when a call is sent; ticks once per streamed piece, reports it, and enforces the deadline."""

    def __init__(self, timeout: float, progress: Progress | None, overdue: Callable[[], ModelCallError]) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.pieces = 0
        self._progress = progress
        self._overdue = overdue

    def tick(self) -> None:
        """One piece arrived: report it, then raise the overdue error if the call is past its deadline."""
        self.pieces += 1
        if self._progress is not None:
            self._progress()
        if time.monotonic() > self.deadline:
            raise self._overdue()

    def elapsed(self) -> float:
        """Seconds since the call was sent."""
        return time.monotonic() - self.started


def check_limits(timeout: float, stall_after: float) -> None:
    """Refuse limits that would make every call fail or never end: both must be positive and finite."""
    for name, value in (("timeout", timeout), ("stall_after", stall_after)):
        if not 0 < value < float("inf"):
            raise BadRequest(f"a provider's {name} must be a positive number of seconds, got {value!r}")


CONNECT_TIMEOUT = 10.0
"""The longest wait for a connection to open (never more than the call's timeout): a host that drops packets
is unreachable, not slow."""


def transport_timeouts(timeout: float, stall_after: float, streaming: bool) -> dict[str, float]:
    """The keyword arguments of an ``httpx.Timeout`` (or ``httpx2.Timeout``) for one call, as the module says.

    Reads wait ``stall_after`` in a stream (never beyond the deadline) and ``timeout`` otherwise; connecting
    waits at most :data:`CONNECT_TIMEOUT`; writing and waiting for a pooled connection share the timeout.
    """
    read = min(stall_after, timeout) if streaming else timeout
    return {"timeout": timeout, "connect": min(CONNECT_TIMEOUT, timeout), "read": read}


def is_read_timeout(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a transport's read timeout (silence, not refusal)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.ReadTimeout | httpx2.ReadTimeout):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
