"""Durable append throughput: our SQLite event store against the ``eventsourcing`` SQLite recorder.

What it measures
    Events per second appended durably, at batch sizes 1, 10, 100 and 1000 (configurable), by

    * **ours**: ``open_store("sqlite:///...").append(stream, [TaskSubmitted, ...], expected_version=0)``,
      which validates each payload against its schema, encodes it, gives it an id, hashes it into
      the ledger chain, and stores the batch and its id index in one ``BEGIN IMMEDIATE``
      transaction;
    * **the reference, from objects**: the same prebuilt ``TaskSubmitted`` objects turned into
      ``StoredEvent``s with the same msgspec encoder and stored with
      ``eventsourcing.sqlite.SQLiteApplicationRecorder.insert_events`` (one call, one transaction,
      per batch; it assigns global notification ids like our positions). This is the same work:
      typed events in, durable rows out, minus our validation, hashing and id index;
    * **the reference, from bytes**: the recorder alone, given ``StoredEvent``s built before the
      clock starts. A stricter peer: it does none of the encoding that ours does inside the clock.

How, and why it is fair
    * Same process, same machine, same disk: each (system, batch size, repeat) gets a fresh
      database file in its own temporary directory.
    * Same durability: WAL and ``synchronous=FULL`` for all; the reference leaves SQLite's default
      synchronous, so the script sets FULL on its pooled connection too, and the header reports the
      values read back from the live connections.
    * Same work: every batch goes to a new stream (versions 1..batch) in every system; the payload
      bytes are identical (checked afterwards by summing stored bytes).
    * Only the append loop is timed: opening, creating tables, building the payload objects,
      closing and verification are not.
    * Order bias: every batch size runs ``--repeat`` times (default 3), each system going first in
      turn; the table shows the median. A short warm-up of every system runs first.

Afterwards every run is checked: ours must pass ``store.verify().ok`` and every database must hold
exactly the expected number of events, streams, versions and payload bytes. Any failure makes the
script exit with status 1.

Usage::

    python bench/store_append.py [--events N] [--batch-sizes 1,10,100,1000] [--repeat R] [--profile] [--postgres]

``--postgres`` also runs ``bench/store_postgres.py`` (16 concurrent writers and a tailing reader on a
PostgreSQL server it starts: ours, direct and through the store actor's group commit, against
``eventsourcing``'s PostgreSQL recorder and a lock-free transaction-id horizon).

``--events N`` (default 20,000) is the event count for batch sizes >= 100; batch sizes 10..99
append N/4 and batch sizes below 10 append N/10 (fsync-bound), each rounded down to a whole
number of batches. ``--profile`` adds a cProfile of one extra run of ours at batch size 100.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Literal

import msgspec
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from events import EventStore, open_store
from events.catalogue import TaskSubmitted
from events.sqlite import SqliteRecorder

System = Literal["ours", "eventsourcing", "eventsourcing-bytes"]
SYSTEMS: tuple[System, ...] = ("ours", "eventsourcing", "eventsourcing-bytes")
TOPIC = f"{TaskSubmitted.__module__}:{TaskSubmitted.__qualname__}"
TARGET_BATCH = 100
_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
# The same deterministic encoder our registry uses, so the reference stores byte-identical payloads.
_ENCODE = msgspec.json.Encoder(order="deterministic").encode


# -- the workload ------------------------------------------------------------------------------


def make_payload(stream_no: int, version: int) -> TaskSubmitted:
    """A realistic task submission (364 bytes of JSON at these ids), unique per stream and version."""
    return TaskSubmitted(
        task_id=f"task-{stream_no:07d}-{version:04d}",
        capability="code.generate",
        priority=1,
        request_id=f"req-{stream_no:07d}",
        inputs={
            "prompt": "Write a function that parses an ISO-8601 duration and returns the total seconds.",
            "language": "python",
            "files": ["src/durations.py", "tests/test_durations.py"],
            "max_tokens": 2048,
        },
        depends_on=[],
        max_attempts=3,
        title="Parse ISO-8601 durations",
    )


def stream_name(stream_no: int) -> str:
    return f"task-{stream_no:07d}"


@dataclass(frozen=True)
class Workload:
    batch: int
    events: int

    @property
    def streams(self) -> int:
        return self.events // self.batch

    def payloads(self, stream_no: int) -> list[TaskSubmitted]:
        return [make_payload(stream_no, v) for v in range(1, self.batch + 1)]

    def payload_bytes(self) -> int:
        """Total payload bytes both systems must end up storing (computed outside any timer)."""
        return sum(len(_ENCODE(p)) for s in range(self.streams) for p in self.payloads(s))


def events_for(batch: int, events: int) -> int:
    """Events to append at ``batch``: ``events`` for batch >= 100, fewer for the fsync-bound small batches."""
    n = events if batch >= 100 else events // 4 if batch >= 10 else events // 10
    return max(batch, n - n % batch)


# -- the two systems ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    journal_mode: str
    synchronous: str

    def __str__(self) -> str:
        return f"journal_mode={self.journal_mode}, synchronous={self.synchronous}"


def read_settings(conn: sqlite3.Connection) -> Settings:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    return Settings(str(mode).upper(), _SYNCHRONOUS.get(int(sync), str(sync)))


def our_connection(store: EventStore) -> sqlite3.Connection:
    recorder = store._recorder  # private: a benchmark may read the live connection's settings
    assert isinstance(recorder, SqliteRecorder)
    return recorder._writer


def reference_connection(datastore: SQLiteDatastore) -> sqlite3.Connection:
    # Single-threaded use keeps exactly one connection in the pool, reused for every transaction.
    with datastore.get_connection(commit=True) as conn:
        return conn._sqlite_conn


@dataclass(frozen=True)
class RunResult:
    system: System
    batch: int
    events: int
    seconds: float
    settings: Settings
    problems: tuple[str, ...]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def run_ours(path: Path, work: Workload, expected_bytes: int, profiler: cProfile.Profile | None = None) -> RunResult:
    store = open_store(f"sqlite:///{path}")
    prebuilt = [work.payloads(s) for s in range(work.streams)]
    append = store.append
    gc.collect()
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    for s in range(work.streams):
        append(stream_name(s), prebuilt[s], expected_version=0)
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
    settings = read_settings(our_connection(store))
    problems: list[str] = []
    report = store.verify()
    if not report.ok:
        problems.append(f"ours: verify() failed at {report.failed_position}: {report.problem}")
    if report.head != work.events:
        problems.append(f"ours: head is {report.head}, expected {work.events}")
    rows = list(store.scan_rows())
    store.close()
    problems += check_counts("ours", work, expected_bytes, len(rows), len({r[1] for r in rows}),
                             max((r[2] for r in rows), default=None), float(sum(len(r[8]) for r in rows)))
    return RunResult("ours", work.batch, work.events, seconds, settings, tuple(problems))


def run_reference(path: Path, work: Workload, expected_bytes: int, system: System = "eventsourcing") -> RunResult:
    datastore = SQLiteDatastore(str(path))
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    conn = reference_connection(datastore)
    if read_settings(conn).synchronous != "FULL":
        conn.execute("PRAGMA synchronous=FULL")
    ids = [uuid.uuid4() for _ in range(work.streams)]

    def stored(s: int, payloads: list[TaskSubmitted]) -> list[StoredEvent]:
        return [
            StoredEvent(originator_id=ids[s], originator_version=v, topic=TOPIC, state=_ENCODE(p))
            for v, p in enumerate(payloads, start=1)
        ]

    objects = [work.payloads(s) for s in range(work.streams)]
    insert = recorder.insert_events
    if system == "eventsourcing-bytes":  # the recorder alone: stored events built before the clock starts
        prebuilt = [stored(s, objects[s]) for s in range(work.streams)]
        gc.collect()
        start = time.perf_counter()
        for batch in prebuilt:
            insert(batch)
    else:  # the same work as ours: from the same typed event objects to durable rows
        gc.collect()
        start = time.perf_counter()
        for s in range(work.streams):
            insert(stored(s, objects[s]))
    seconds = time.perf_counter() - start
    settings = read_settings(reference_connection(datastore))
    problems: list[str] = []
    if datastore.pool.num_in_pool != 1:
        problems.append(f"eventsourcing: {datastore.pool.num_in_pool} pooled connections, expected 1 "
                        "(the synchronous setting may not cover all of them)")
    head = recorder.max_notification_id()
    if head != work.events:
        problems.append(f"eventsourcing: max notification id is {head}, expected {work.events}")
    datastore.close()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT originator_id), MAX(originator_version), TOTAL(LENGTH(state)) "
            "FROM stored_events"
        ).fetchone()
    db.close()
    problems += check_counts(system, work, expected_bytes, *row)
    return RunResult(system, work.batch, work.events, seconds, settings, tuple(problems))


def check_counts(system: str, work: Workload, expected_bytes: int, rows: int, streams: int,
                 max_version: int | None, payload_bytes: float) -> list[str]:
    problems = []
    if rows != work.events:
        problems.append(f"{system}: {rows} rows stored, expected {work.events}")
    if streams != work.streams:
        problems.append(f"{system}: {streams} streams, expected {work.streams}")
    if max_version != work.batch:
        problems.append(f"{system}: highest stream version {max_version}, expected {work.batch}")
    if int(payload_bytes) != expected_bytes:
        problems.append(f"{system}: {int(payload_bytes)} payload bytes stored, expected {expected_bytes}")
    return problems


Runner = Callable[[Path, Workload, int], RunResult]
RUNNERS: dict[System, Runner] = {
    "ours": run_ours,
    "eventsourcing": run_reference,
    "eventsourcing-bytes": lambda path, work, expected: run_reference(path, work, expected, "eventsourcing-bytes"),
}


# -- the driver --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000,
                        help="events per run at batch sizes >= 100 (N/4 at 10..99, N/10 below 10); default 20000")
    parser.add_argument("--batch-sizes", default="1,10,100,1000", help="comma-separated; default 1,10,100,1000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per (system, batch size); median reported")
    parser.add_argument("--postgres", action="store_true",
                        help="also run bench/store_postgres.py: 16 concurrent writers and a tailing reader on "
                             "PostgreSQL, ours against eventsourcing's PostgreSQL recorder")
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile one extra run of ours at batch size {TARGET_BATCH}")
    args = parser.parse_args(argv)
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.error("--batch-sizes must be comma-separated integers, like 1,10,100,1000")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be positive integers")
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[tuple[System, int], list[RunResult]] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="store-append-") as tmp:
        root = Path(tmp)
        counter = iter(range(1_000_000))

        def fresh(system: str, batch: int) -> Path:
            folder = root / f"{next(counter):04d}-{system}-b{batch}"
            folder.mkdir()
            return folder / "events.db"

        warm = Workload(10, 200)
        for system in SYSTEMS:  # warm-up: imports, statement caches, allocator; not reported
            RUNNERS[system](fresh(system, 10), warm, warm.payload_bytes())

        for repeat in range(args.repeat):
            for index, batch in enumerate(args.batch_sizes):
                work = Workload(batch, events_for(batch, args.events))
                expected_bytes = work.payload_bytes()
                shift = (repeat + index) % len(SYSTEMS)
                order = SYSTEMS[shift:] + SYSTEMS[:shift]  # each system goes first in turn
                for system in order:
                    result = RUNNERS[system](fresh(system, batch), work, expected_bytes)
                    results.setdefault((system, batch), []).append(result)
                    problems.extend(result.problems)

        print_table(args, results, root)

        if args.profile:
            work = Workload(TARGET_BATCH, events_for(TARGET_BATCH, args.events))
            profiler = cProfile.Profile()
            run_ours(fresh("ours-profile", TARGET_BATCH), work, work.payload_bytes(), profiler)
            print(f"\ncProfile of ours, batch {TARGET_BATCH}, {work.events:,} events (top 20 by own time):")
            pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(20)

    if args.postgres:
        import store_postgres  # beside this script

        print("\nPostgreSQL, concurrent writers (bench/store_postgres.py):")
        if store_postgres.main([]) != 0:
            problems.append("PostgreSQL: see above")
    if problems:
        print("\nVERIFICATION FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("verification: ok (every run of ours passed store.verify(); event, stream, version and payload-byte "
          "counts matched in both systems)")
    return 0


def print_table(args: argparse.Namespace, results: dict[tuple[System, int], list[RunResult]], root: Path) -> None:
    def settings_of(system: System) -> str:
        seen = {str(r.settings) for (s, _), runs in results.items() if s == system for r in runs}
        return " / ".join(sorted(seen))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
          f"temp dir {root.parent}")
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"eventsourcing {dist_version('eventsourcing')}, msgspec {msgspec.__version__}")
    print(f"ours:          {settings_of('ours')}; validates, encodes, hashes (SHA-256 chain); BEGIN IMMEDIATE")
    print(f"eventsourcing: {settings_of('eventsourcing')}; SQLiteApplicationRecorder.insert_events; BEGIN")
    print(f"median of {args.repeat} run(s), each system first in turn; identical payload bytes; "
          "one new stream per batch")
    print("from objects: both start from the same prebuilt TaskSubmitted objects (the reference encodes them "
          "with the same msgspec encoder into StoredEvents inside the clock)")
    print("from bytes:   the reference recorder alone, given StoredEvents encoded before the clock starts")
    print()
    print(f"{'batch':>6}  {'events':>7}  {'ours ev/s':>10}  {'ref, from objects':>17}  {'ratio':>5}  "
          f"{'ref, from bytes':>15}  {'ratio':>5}")
    ratios: dict[int, tuple[float, float]] = {}
    for batch in args.batch_sizes:
        ours, objects, raw = (statistics.median(r.rate for r in results[(system, batch)]) for system in SYSTEMS)
        ratios[batch] = (ours / objects, ours / raw)
        events = results[("ours", batch)][0].events
        print(f"{batch:>6}  {events:>7,}  {ours:>10,.0f}  {objects:>17,.0f}  {ratios[batch][0]:>5.2f}  "
              f"{raw:>15,.0f}  {ratios[batch][1]:>5.2f}")
    print()
    if TARGET_BATCH in ratios:
        same, raw = ratios[TARGET_BATCH]
        print(f"target 'at batch size {TARGET_BATCH}, ours >= reference doing the same work': "
              f"{'MET' if same >= 1.0 else 'NOT MET'} (ratio {same:.2f}; against the bare recorder {raw:.2f})")
    else:
        print(f"target at batch size {TARGET_BATCH}: not measured (batch {TARGET_BATCH} not run)")


if __name__ == "__main__":
    sys.exit(main())
