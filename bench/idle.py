"""What an idle council writes to its log: events and bytes per day, against heartbeats as events.

A council is started as `council up` starts it (the default team, the council, dispatcher,
projector, exporter, health monitor and error detector) on a scratch log, left to settle, and
then watched for ``--seconds`` with nothing submitted: every event appended in that window and
the growth of the log's files are counted and scaled to a day.

The peer, in the same run, is what the same agents wrote when their heartbeats were events
(every 2 s each, as before heartbeats became calls to the dispatcher): the bytes one such event
takes in a SQLite log are measured by appending ``--peer-events`` of them to a scratch log in this
process, and scaled to the agents' heartbeat rate.

Usage::

    python bench/idle.py [--seconds 300] [--peer-events 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from figures import log_checked

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from cluster.driver import Council
from cluster.settings import Settings
from cluster.system import shutdown
from events import open_store, streams
from events.catalogue import AgentHeartbeat

DAY = 86_400.0
HEARTBEAT_EVERY = 2.0
"""Seconds between an agent's heartbeats (``AgentActor``'s default)."""


def log_bytes(db: Path) -> int:
    """The SQLite log's size on disk: the database and its write-ahead log."""
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def settle(url: str, quiet: float, limit: float = 300.0) -> int:
    """Wait until the log has not moved for ``quiet`` seconds; return its head."""
    with open_store(url, create=False) as log:
        head, still_since, deadline = log.head(), time.monotonic(), time.monotonic() + limit
        while time.monotonic() - still_since < quiet:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the log did not settle within {limit:.0f} s")
            time.sleep(0.5)
            if (now := log.head()) != head:
                head, still_since = now, time.monotonic()
        return head


def heartbeat_bytes(tmp: Path, count: int) -> float:
    """Bytes one ``agent.heartbeat`` event adds to a SQLite log, over ``count`` appends (one per commit)."""
    db = tmp / "peer.db"
    with open_store(f"sqlite:///{db}") as log:  # closing folds the write-ahead log into the file
        log.append(streams.agent("warm-up"), [AgentHeartbeat(agent_id="warm-up")])
    before = log_bytes(db)
    with open_store(f"sqlite:///{db}") as log:
        for i in range(count):
            log.append(streams.agent(f"worker-{i % 8}"), [AgentHeartbeat(agent_id=f"worker-{i % 8}", epoch=1,
                                                                         in_flight=i % 3)])
    return (log_bytes(db) - before) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to watch the idle council")
    parser.add_argument("--peer-events", type=int, default=20_000, help="heartbeat events the peer appends")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="idle-"))
    db = tmp / "events.db"
    settings = Settings(store=f"sqlite:///{db}", projections=str(tmp / "p.duckdb"), home=str(tmp / "council"),
                        metrics_port=0)
    council = Council.start(settings)
    with open_store(settings.store, create=False) as log:
        agents = len({e.payload.agent_id for e in log.read_all(types=["agent.registered"])})
    settled = settle(settings.store, quiet=10.0)
    size_before, started = log_bytes(db), time.monotonic()
    time.sleep(args.seconds)
    watched = time.monotonic() - started
    with open_store(settings.store, create=False) as log:
        written = log.read_all(settled + 1, None)
        verified = log.verify().ok
    grown = log_bytes(db) - size_before
    heard = ray.get(ray.get_actor("dispatcher", namespace="council").seen.remote())
    shutdown()
    council.close()

    per_event = heartbeat_bytes(tmp, args.peer_events)
    peer_events = agents * DAY / HEARTBEAT_EVERY
    events_day, bytes_day = len(written) * DAY / watched, grown * DAY / watched
    print(f"an idle council of {agents} agents watched for {watched:.0f} s on a scratch SQLite log; "
          f"{os.cpu_count()} cores, ray {ray.__version__}")
    print(f"  events appended: {len(written)} ({', '.join(sorted({e.type for e in written})) or 'none'}); "
          f"log grew {grown:,} bytes")
    print(f"  per day at that rate: {events_day:,.0f} events, {bytes_day / 1e6:,.2f} MB")
    print(f"  heartbeats heard by the dispatcher (calls, not events): {len(heard)} agents, "
          f"last {max(heard.values(), default=float('nan')):.1f} s ago at most")
    print(f"peer: the same agents' heartbeats as events (one each {HEARTBEAT_EVERY:g} s, {per_event:.0f} bytes each, "
          f"measured over {args.peer_events:,} appends)")
    print(f"  per day: {peer_events:,.0f} events, {peer_events * per_event / 1e6:,.1f} MB")
    print(f"ratio idle / peer (events a day): {events_day / peer_events:.4f}")
    return log_checked(verified)


if __name__ == "__main__":
    sys.exit(main())
