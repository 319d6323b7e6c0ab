"""Concurrent appends to PostgreSQL: our store against the ``eventsourcing`` PostgreSQL recorder.

What it measures
    16 writer processes (``--writers``) each append ``--commits`` batches of ``--batch`` events,
    every batch to a new stream, while one tailing reader in this process follows the log from
    position 1. Reported: commits per second and events per second over the wall time from the
    moment all writers start together to the moment the last one finishes, by

    * **ours**: ``open_store("postgresql://...").append(stream, [TaskSubmitted, ...], expected_version=0)``
      (validates, encodes, ids, SHA-256 chain, table lock, one transaction), read back by
      ``store.subscribe()`` (LISTEN/NOTIFY);
    * **the reference**: ``eventsourcing.postgres.PostgresApplicationRecorder.insert_events`` with
      ``StoredEvent``s encoded from the same objects by the same msgspec encoder (its table lock,
      one transaction per batch), read back by ``select_notifications`` in a loop.

How, and why it is fair
    One server this script starts (``tests/support/postgres_server.py``: a fresh ``initdb``,
    ``fsync`` and ``synchronous_commit`` on), a fresh database per run, the same writers, the same
    payload bytes, each system first in turn over ``--repeat`` runs (median reported). Opening
    connections and creating tables happen before the start barrier.

Checked after every run, or the script exits 1: the reader saw exactly positions (notification
ids) 1..N, in order — **zero skipped**, none repeated; the log holds N events; ours verifies.

Usage::

    python bench/store_postgres.py [--writers 16] [--commits 200] [--batch 1,10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests" / "support")]  # events, and the throwaway server

import msgspec  # noqa: E402
from postgres_server import PostgresServer  # noqa: E402

from events import open_store  # noqa: E402
from events.catalogue import TaskSubmitted  # noqa: E402

SYSTEMS = ("ours", "eventsourcing")
TOPIC = f"{TaskSubmitted.__module__}:{TaskSubmitted.__qualname__}"
_ENCODE = msgspec.json.Encoder(order="deterministic").encode


def payloads(writer: int, commit: int, batch: int) -> list[TaskSubmitted]:
    return [TaskSubmitted(task_id=f"task-{writer:02d}-{commit:05d}-{v:03d}", capability="code.generate", priority=1,
                          request_id=f"req-{writer:02d}", inputs={"prompt": "Parse ISO-8601 durations.", "v": v},
                          title="Parse ISO-8601 durations") for v in range(batch)]


def writer(system: str, url: str, w: int, commits: int, batch: int, barrier: Any, done: Any) -> None:
    """One writer process: open, wait for the others, append ``commits`` batches, report."""
    objects = [payloads(w, c, batch) for c in range(commits)]
    if system == "ours":
        store = open_store(url)
        barrier.wait()
        for c, events in enumerate(objects):
            store.append(f"w{w:02d}-{c:05d}", events, expected_version=0)
        store.close()
    else:
        from eventsourcing.persistence import StoredEvent

        recorder, datastore = reference(url)
        barrier.wait()
        for events in objects:
            oid = uuid.uuid4()
            recorder.insert_events([StoredEvent(originator_id=oid, originator_version=v, topic=TOPIC,
                                                state=_ENCODE(p)) for v, p in enumerate(events, 1)])
        datastore.close()
    done.put(w)


def reference(url: str) -> tuple[Any, Any]:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    datastore = PostgresDatastore(str(info["dbname"]), str(info["host"]), str(info["port"]), str(info["user"]), "")
    return PostgresApplicationRecorder(datastore), datastore


@dataclass(frozen=True)
class Run:
    system: str
    batch: int
    commits: int
    events: int
    seconds: float
    problems: tuple[str, ...]


def tail(system: str, url: str, total: int, seen: list[int], stop: threading.Event) -> None:
    """Follow the log from position 1 until ``total`` events were seen (or ``stop``), recording positions."""
    if system == "ours":
        with open_store(url) as store, store.subscribe(batch_size=1000) as sub:
            while len(seen) < total and not stop.is_set():
                seen.extend(e.position for e in sub.poll(timeout=0.2))
        return
    recorder, datastore = reference(url)
    last = 0
    while len(seen) < total and not stop.is_set():
        got = recorder.select_notifications(last + 1, 1000)
        seen.extend(n.id for n in got)
        if got:
            last = got[-1].id
        else:
            time.sleep(0.005)
    datastore.close()


def run(system: str, url: str, writers: int, commits: int, batch: int) -> Run:
    if system == "ours":
        open_store(url).close()  # tables created before the clock
    else:
        recorder, datastore = reference(url)
        recorder.create_table()
        datastore.close()
    ctx = mp.get_context("spawn")
    barrier, done = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(system, url, w, commits, batch, barrier, done)) for w in range(writers)]
    for p in procs:
        p.start()
    total = writers * commits * batch
    seen: list[int] = []
    stop = threading.Event()
    reader = threading.Thread(target=tail, args=(system, url, total, seen, stop))
    reader.start()
    barrier.wait(timeout=300)
    start = time.perf_counter()
    for _ in procs:
        done.get(timeout=600)
    seconds = time.perf_counter() - start
    for p in procs:
        p.join(timeout=60)
    reader.join(timeout=60)
    stop.set()
    problems = []
    if seen != list(range(1, total + 1)):
        skipped = len(set(range(1, total + 1)) - set(seen))
        problems.append(f"{system}, batch {batch}: the reader saw {len(seen)} of {total} ({skipped} skipped), "
                        "or out of order")
    if system == "ours":
        with open_store(url) as store:
            report = store.verify()
            if not report.ok or report.head != total:
                problems.append(f"ours, batch {batch}: verify {report}")
    else:
        recorder, datastore = reference(url)
        if recorder.max_notification_id() != total:
            problems.append(f"eventsourcing, batch {batch}: max id {recorder.max_notification_id()} != {total}")
        datastore.close()
    return Run(system, batch, writers * commits, total, seconds, tuple(problems))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--commits", type=int, default=200, help="commits per writer per run; default 200")
    parser.add_argument("--batch", default="1,10", help="events per commit, comma-separated; default 1,10")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",")]
    results: dict[tuple[str, int], list[Run]] = {}
    with PostgresServer.start() as server:
        version = ""
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = row[0] if row else "?"
        for system in SYSTEMS:  # warm-up, not reported
            run(system, server.new_database("warm"), 2, 20, 1)
        for repeat in range(args.repeat):
            for i, batch in enumerate(batches):
                order = SYSTEMS if (repeat + i) % 2 == 0 else SYSTEMS[::-1]
                for system in order:
                    results.setdefault((system, batch), []).append(
                        run(system, server.new_database(system[:4]), args.writers, args.commits, batch))
    import os
    import platform
    from importlib.metadata import version as dist

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; PostgreSQL {version} (fresh initdb, fsync on, "
          f"synchronous_commit on, loopback TCP); psycopg {dist('psycopg')}, eventsourcing {dist('eventsourcing')}")
    print(f"{args.writers} writer processes x {args.commits} commits, one tailing reader; median of {args.repeat}")
    print(f"{'batch':>5}  {'ours commits/s':>14}  {'ours events/s':>13}  {'ref commits/s':>13}  "
          f"{'ref events/s':>12}  {'ratio':>5}")
    problems = [p for runs in results.values() for r in runs for p in r.problems]
    for batch in batches:
        ours = statistics.median(r.commits / r.seconds for r in results[("ours", batch)])
        ref = statistics.median(r.commits / r.seconds for r in results[("eventsourcing", batch)])
        print(f"{batch:>5}  {ours:>14,.0f}  {ours * batch:>13,.0f}  {ref:>13,.0f}  {ref * batch:>12,.0f}  "
              f"{ours / ref:>5.2f}")
    if problems:
        print("\nVERIFICATION FAILED:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("verification: ok (each tailing reader saw positions 1..N in order, zero skipped; ours verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
