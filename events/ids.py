"""Event ids: time-ordered UUIDs (RFC 9562 version 7), made in bulk.

Ids made together share their millisecond and count up within it (the 12-bit ``rand_a`` field
holds a counter), so a batch's ids land next to each other at the right edge of the store's id
index instead of scattering across it, as random ids would. Every run of up to 4096 ids shares 62
random bits (``rand_b``), which keeps ids from different writers, or from the same writer in the
same millisecond, apart.
"""

from __future__ import annotations

import os
import time
from uuid import UUID

_RUN = 4096
_COUNTERS = [(0x7000 | i).to_bytes(2, "big") for i in range(_RUN)]  # version 7 + counter


def event_id_bytes(count: int) -> list[bytes]:
    """``count`` new version-7 UUIDs as 16-byte strings, increasing within each run of 4096."""
    prefix = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    tails = []
    for _ in range(0, count, _RUN):
        noise = os.urandom(8)
        tails.append(bytes((0x80 | (noise[0] & 0x3F),)) + noise[1:])  # RFC 9562 variant bits
    if count <= _RUN:
        tail = tails[0] if tails else b""
        return [prefix + c + tail for c in _COUNTERS[:count]]
    return [prefix + _COUNTERS[i % _RUN] + tails[i // _RUN] for i in range(count)]


def new_event_id() -> UUID:
    """One new version-7 UUID."""
    return UUID(bytes=event_id_bytes(1)[0])
