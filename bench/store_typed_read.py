"""Reading a few event types out of a long log: what a type-filtered read costs as the log grows.

What it measures
    A log of ``--events`` events (default 200,000): ``TaskQueued`` events in commits of 100, and
    after every ``--every`` of them (default 1,000) one commit of a rare type, ``TaskCompleted``.
    Timed, each the median of ``--repeat`` runs on the same log:

    * ``read_all(types=[TaskCompleted])`` — every rare event, from position 1;
    * ``read_all(1, limit=10, types=[TaskCompleted])`` — the first page, as a follower's first poll;
    * ``subscribe(types=[TaskCompleted])`` drained to the head — how projections and actors follow
      one type.

    The same figures for an unfiltered ``read_all`` of the whole log give the cost of scanning it.

How, and why it is fair
    The log is built before the clock, on a fresh SQLite file (and, with ``--postgres``, a fresh
    database on a PostgreSQL server this script starts), the same events in both. Every timed read
    is checked: it must return exactly the rare events, in position order.

Usage::

    python bench/store_typed_read.py [--events 200000] [--every 1000] [--repeat 3] [--postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests" / "support")]  # events, and the throwaway server

from events import EventStore, open_store  # noqa: E402
from events.catalogue import TaskCompleted, TaskQueued  # noqa: E402

RARE = TaskCompleted.type_name
COMMIT = 100


def build(store: EventStore, events: int, every: int) -> list[int]:
    """Fill ``store``; return the positions of the rare events."""
    rare: list[int] = []
    written = 0
    while written < events:
        n = min(COMMIT, events - written)
        store.append(f"q-{written}", [TaskQueued(task_id=f"t-{written + i}", priority=1) for i in range(n)],
                     expected_version=0)
        before, written = written, written + n
        if written // every != before // every:
            result = store.append(f"c-{written}", [TaskCompleted(task_id=f"t-{written}", agent_id="a", attempt=1)],
                                  expected_version=0)
            rare.append(result.positions[0])
    return rare


def timed(work: Callable[[], list[int]], want: list[int], repeat: int) -> float:
    """Median seconds of ``work``, which must return ``want``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        got = work()
        times.append(time.perf_counter() - start)
        if got != want:
            raise SystemExit(f"VERIFICATION FAILED: a read returned {len(got)} positions, not the {len(want)} wanted")
    return statistics.median(times)


def drain(store: EventStore) -> list[int]:
    with store.subscribe(types=[RARE], batch_size=500) as sub:
        head, seen = store.head(), []
        while sub.position <= head:
            seen.extend(e.position for e in sub.poll(timeout=0))
        return seen


def measure(name: str, url: str, events: int, every: int, repeat: int) -> list[tuple[str, str, float]]:
    with open_store(url) as store:
        rare = build(store, events, every)
        head = store.head()
        return [
            (name, "read_all(types=[rare]), whole log",
             timed(lambda: [e.position for e in store.read_all(types=[RARE])], rare, repeat)),
            (name, "read_all(1, limit=10, types=[rare])",
             timed(lambda: [e.position for e in store.read_all(1, 10, [RARE])], rare[:10], repeat)),
            (name, "subscribe(types=[rare]) to the head", timed(lambda: drain(store), rare, repeat)),
            (name, "read_all(), whole log (no filter)",
             timed(lambda: [e.position for e in store.read_all()][-1:], [head], repeat)),
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=1_000, help="common events per rare one; default 1,000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server this script starts")
    args = parser.parse_args(argv)
    figures: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        figures += measure("sqlite", f"sqlite:///{Path(tmp) / 'events.db'}", args.events, args.every, args.repeat)
    if args.postgres:
        from postgres_server import PostgresServer

        with PostgresServer.start() as server:
            figures += measure("postgresql", server.new_database("typed"), args.events, args.every, args.repeat)
    rare = args.events // args.every
    print(f"log: {args.events:,} TaskQueued events in commits of {COMMIT}, and {rare:,} TaskCompleted; "
          f"median of {args.repeat}")
    print(f"{'store':<10}  {'read':<38}  {'ms':>9}")
    for store, read, seconds in figures:
        print(f"{store:<10}  {read:<38}  {seconds * 1000:>9.1f}")
    print("verification: ok (every read returned exactly the rare events, in order)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
