"""Projection catch-up throughput: our projector against the naive row-at-a-time writer, same fold.

What it measures
    Events per second folded from a SQLite event log into a DuckDB file, from position 1 to the
    head, by

    * **ours**: ``Projector(store, path).catch_up()`` — reads raw rows in batches, decodes the
      payloads the fold reads, folds them in memory, then writes each batch's changed rows as
      Arrow tables (one DELETE + one INSERT per table) with the checkpoint, in one transaction;
    * **the peer, naive**: the same read, decode (:class:`projections.payloads.PayloadReader`) and
      fold (:class:`projections.Fold`), the same batches, the same rows written (each changed row
      once per batch) and one transaction per batch with the checkpoint; but the rows go in the
      way a projector is usually first written, row at a time:
      ``executemany("INSERT OR REPLACE INTO t VALUES (?, ...)", rows)``. (Writing each changed
      row right after its event, the more naive form, ran at about 150 events/s here: too slow
      to be worth a run.)

How, and why it is fair
    * One log for both: a SQLite store in a temporary directory filled with realistic task
      lifecycles — tasks submitted and queued, assigned and started, most completing, some failing
      or losing their lease and being retried, a few dead-lettered and some of those requeued —
      across hundreds of agents (registered, heartbeating, now and then unresponsive and restarted)
      and requests, the lifecycles interleaved the way a dispatcher's appends would be. Filling it
      is not timed (and runs with SQLite's ``synchronous=OFF``: the fill's durability is not what
      is measured).
    * Same process, same disk, same DuckDB settings; each system writes a fresh DuckDB file. Only
      catch-up is timed, from an open projector (file created, tables empty) to the checkpoint at
      the head.
    * The peer is slow, so it is bounded: it stops once ``--peer-seconds`` have passed (or the log
      ends), also in the middle of a batch's writes; then that batch's time is estimated from the
      share of its rows written (each row is one identical statement), and the output says so and
      by how much it extrapolated. Its tables are checked against ours at the last batch it stored.

Afterwards ours must hold exactly what the generator produced — tasks by status, requests by
status and counts, tasks in flight per agent, dead letters, the queue depths — and equal a fresh
``rebuild()``; any difference makes the script exit with status 1.

Usage::

    python bench/projection_catchup.py [--events N] [--agents A] [--requests R] [--batch B]
                                       [--peer-seconds S] [--repeat K] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from itertools import pairwise
from pathlib import Path
from random import Random
from typing import NamedTuple

import duckdb
import msgspec

from events import Event, EventStore, open_store
from events.catalogue import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AgentUnresponsive,
    RequestSubmitted,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
)
from events.sqlite import SqliteRecorder
from projections import Fold, Projector, persist
from projections.fold import FIELDS
from projections.payloads import PayloadReader
from projections.projector import DEFAULT_BATCH
from projections.query import configure
from projections.schema import STATE_TABLE, TABLES, create_statements

TARGET = 200_000
"""Events per second ours should fold on a 2-core machine."""


# -- the workload --------------------------------------------------------------------------------------

ROLES = ("coder", "tester", "reviewer", "architect", "documenter", "builder")
CAPABILITIES = ("code.generate", "test.run", "code.review", "design.plan", "docs.write", "build.run")
IN_FLIGHT = 2_000
"""Tasks alive at once: how far apart one task's events are spread in the log."""


class Task:
    """The generator's own record of one task (independent of the projection code it checks)."""

    __slots__ = ("agent_id", "attempt", "flaky", "index", "phase", "request_id", "task_id", "used")

    def __init__(self, task_id: str, request_id: str, flaky: bool) -> None:
        self.task_id, self.request_id, self.flaky = task_id, request_id, flaky
        self.phase, self.agent_id, self.attempt, self.used, self.index = "queued", "", 0, 0, -1


@dataclass
class Expected:
    """What the projection must show once it has folded the whole log."""

    task_statuses: Counter[str]
    requests: dict[str, tuple[int, int, int, int, str]]
    in_flight: dict[str, int]


@dataclass
class Workload:
    """Appends to make, in order, and what they add up to."""

    appends: list[tuple[str, list[Event]]] = field(default_factory=list)
    events: int = 0
    tasks: int = 0
    types: Counter[str] = field(default_factory=Counter)
    expected: Expected = field(default_factory=lambda: Expected(Counter(), {}, {}))

    def emit(self, stream: str, batch: list[Event]) -> None:
        self.appends.append((stream, batch))
        self.events += len(batch)
        self.types.update(e.type_name for e in batch)

    def fill(self, store: EventStore) -> None:
        """Append everything, in order, one append per (stream, batch)."""
        recorder = store._recorder  # private: only to skip fsync while filling, which is not timed
        if isinstance(recorder, SqliteRecorder):
            recorder._writer.execute("PRAGMA synchronous=OFF")
        append = store.append
        for stream, batch in self.appends:
            append(stream, batch)
        self.appends = []  # a few hundred thousand live objects would tax every later garbage collection


def generate(events: int, agents: int, requests: int, seed: int) -> Workload:
    """Task lifecycles interleaved like a dispatcher's appends, until about ``events`` events."""
    rng = Random(seed)
    work = Workload()
    agent_ids = [f"a{i:04d}" for i in range(agents)]
    epochs = dict.fromkeys(agent_ids, 1)
    holding: dict[str, set[Task]] = {a: set() for a in agent_ids}
    for i, a in enumerate(agent_ids):
        work.emit(f"agent-{a}", [AgentRegistered(agent_id=a, role=ROLES[i % len(ROLES)],
                                                 capabilities=[CAPABILITIES[i % len(CAPABILITIES)], "code.generate"],
                                                 version="0.1.0", slots=4)])
    request_ids = [f"r{i:05d}" for i in range(requests)]
    for r in request_ids:
        work.emit(f"request-{r}", [RequestSubmitted(request_id=r, title=f"request {r}", priority=rng.randrange(4),
                                                    submitted_by="driver")])
    every: list[Task] = []
    active: list[Task] = []
    dead: list[Task] = []
    done_in: dict[str, list[str]] = {r: [] for r in request_ids}
    clock = 1.8e9

    def activate(t: Task) -> None:
        t.index = len(active)
        active.append(t)

    def deactivate(t: Task) -> None:
        last = active.pop()
        if last is not t:
            active[t.index] = last
            last.index = t.index
        t.index = -1

    def lose_lease(t: Task) -> None:
        work.emit(f"task-{t.task_id}", [TaskLeaseExpired(task_id=t.task_id, agent_id=t.agent_id,
                                                         lease_id=f"{t.task_id}/{t.attempt}", attempt=t.attempt)])
        holding[t.agent_id].discard(t)
        t.phase = "failed"

    while work.events < events:
        clock += 0.05
        if len(active) < IN_FLIGHT:
            r = rng.choice(request_ids)
            t = Task(f"t{len(every):07d}", r, flaky=rng.random() < 0.1)
            every.append(t)
            activate(t)
            priority = rng.randrange(4)
            depends = [rng.choice(done_in[r])] if done_in[r] and rng.random() < 0.1 else []
            work.emit(f"task-{t.task_id}", [
                TaskSubmitted(task_id=t.task_id, capability=rng.choice(CAPABILITIES), priority=priority, request_id=r,
                              inputs={"prompt": "Write a function that parses an ISO-8601 duration.",
                                      "files": ["a.py"]},
                              depends_on=depends, max_attempts=3, title=f"task {t.task_id}"),
                TaskQueued(task_id=t.task_id, priority=priority),
            ])
        else:
            t = active[rng.randrange(len(active))]
            stream = f"task-{t.task_id}"
            if t.phase == "queued":
                t.agent_id, t.attempt, t.used = rng.choice(agent_ids), t.attempt + 1, t.used + 1
                holding[t.agent_id].add(t)
                assigned = TaskAssigned(task_id=t.task_id, agent_id=t.agent_id, lease_id=f"{t.task_id}/{t.attempt}",
                                        lease_expires_at=clock + 300, attempt=t.attempt)
                if rng.random() < 0.3:
                    work.emit(stream, [assigned])
                    t.phase = "assigned"
                else:
                    started = TaskStarted(task_id=t.task_id, agent_id=t.agent_id, attempt=t.attempt)
                    work.emit(stream, [assigned, started])
                    t.phase = "running"
            elif t.phase == "assigned":
                work.emit(stream, [TaskStarted(task_id=t.task_id, agent_id=t.agent_id, attempt=t.attempt)])
                t.phase = "running"
            elif t.phase == "running":
                if rng.random() < (0.5 if t.flaky else 0.04):
                    if rng.random() < 0.85:
                        work.emit(stream, [TaskFailed(task_id=t.task_id, agent_id=t.agent_id, attempt=t.attempt,
                                                      error="tests failed: 3 of 41", kind="transient")])
                        holding[t.agent_id].discard(t)
                        t.phase = "failed"
                    else:
                        lose_lease(t)
                else:
                    work.emit(stream, [TaskCompleted(task_id=t.task_id, agent_id=t.agent_id, attempt=t.attempt,
                                                     result={"files": ["a.py"], "ok": True}, duration_s=12.5)])
                    holding[t.agent_id].discard(t)
                    t.phase = "completed"
                    done_in[t.request_id].append(t.task_id)
                    deactivate(t)
            elif t.phase == "failed":
                if t.used < 3:
                    work.emit(stream, [TaskRetried(task_id=t.task_id, attempt=t.attempt + 1, not_before=clock + 5)])
                    t.phase = "queued"
                else:
                    work.emit(stream, [TaskDeadLettered(task_id=t.task_id, attempts=t.used, last_error="gave up",
                                                        kind="transient")])
                    t.phase = "dead_lettered"
                    deactivate(t)
                    dead.append(t)
        if dead and rng.random() < 1 / 300:  # a person requeues a dead letter
            t = dead.pop(rng.randrange(len(dead)))
            work.emit(f"task-{t.task_id}", [TaskRequeued(task_id=t.task_id, reason="fixed the flaky test")])
            t.phase, t.used = "queued", 0
            activate(t)
        if rng.random() < 1 / 20_000:  # an agent dies: its leases expire, the health monitor restarts it
            a = rng.choice(agent_ids)
            work.emit(f"agent-{a}", [AgentUnresponsive(agent_id=a, reason="no heartbeat for 30 s")])
            for t in list(holding[a]):
                lose_lease(t)
            epochs[a] += 1
            work.emit(f"agent-{a}", [AgentRestarted(agent_id=a, epoch=epochs[a], reason="health monitor")])
        if rng.random() < 1 / 40:  # heartbeats trickle in
            a = rng.choice(agent_ids)
            work.emit(f"agent-{a}", [AgentHeartbeat(agent_id=a, epoch=epochs[a], in_flight=len(holding[a]))])

    work.tasks = len(every)
    statuses = Counter(t.phase for t in every)
    per_request: dict[str, list[int]] = {}
    for t in every:
        counts = per_request.setdefault(t.request_id, [0, 0, 0, 0])
        counts[0] += 1
        counts[1 if t.phase == "completed" else 2 if t.phase == "dead_lettered" else 3] += 1
    requests_expected = {r: (0, 0, 0, 0, "open") for r in request_ids}
    for r, (n, done, dead_n, going) in per_request.items():
        status = "completed" if done == n else "failed" if dead_n and not going else "open"
        requests_expected[r] = (n, done, dead_n, going, status)
    in_flight = {a: len(ts) for a, ts in holding.items() if ts}
    work.expected = Expected(statuses, requests_expected, in_flight)
    return work


# -- the two systems -------------------------------------------------------------------------------


def run_ours(store: EventStore, path: Path, batch: int, profiler: cProfile.Profile | None = None) -> tuple[int, float]:
    """Catch a fresh projector up to the head; return (events, seconds)."""
    projector = Projector(store, path, batch_size=batch)
    gc.collect()
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    events = projector.catch_up()
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
    projector.close()
    return events, seconds


class PeerRun(NamedTuple):
    """How far the peer got: events wholly stored, and the estimate for the batch it was cut off in."""

    stored: int
    """Events whose batches it committed (its tables are checked at this position)."""
    events: float
    """``stored`` plus the events of the cut-off batch, if any."""
    seconds: float
    """Time for ``stored``, plus the cut-off batch's estimate: its fold, and its writes so far / fraction written."""
    fraction: float
    """Of the cut-off batch's rows, the share written before the budget ran out (1.0: none was cut off)."""


def run_naive(store: EventStore, path: Path, batch: int, budget: float) -> PeerRun:
    """The peer: same read, decode, fold and transactions; the changed rows written one at a time.

    It stops once ``budget`` seconds have passed, also in the middle of a batch's writes (that
    batch is rolled back, and its time estimated from the share of its rows written; every row
    costs the same one statement, so the share is a fair measure).
    """
    con = configure(duckdb.connect(str(path)))
    for statement in create_statements():
        con.execute(statement)
    fold = Fold()
    reads, apply, decode = fold.reads, fold.apply_payload, PayloadReader(store.registry, FIELDS).decode
    astuple = msgspec.structs.astuple
    inserts = {name: _insert_or_replace(table.name, [c.sql for c in table.columns]) for name, table in TABLES.items()}
    head = store.head()
    position = 0
    gc.collect()
    start = time.perf_counter()
    while position < head:
        batch_started = time.perf_counter()
        until = min(head, position + batch)
        con.begin()
        last = None
        for row in store.scan_rows(position + 1, until):
            if row[4] in reads:
                apply(row[0], row[4], row[6], decode(row[4], row[5], row[8]))
            last = row
        assert last is not None
        changed = fold.take_changed()
        writes = [(inserts[name], [astuple(r) for r in rows]) for name, rows in
                  (("tasks", changed.tasks), ("requests", changed.requests), ("agents", changed.agents)) if rows]
        total, written = sum(len(params) for _, params in writes), 0
        writing = time.perf_counter()
        for sql, params in writes:
            for i in range(0, len(params), 256):
                con.executemany(sql, params[i:i + 256])
                written += len(params[i:i + 256])
                now = time.perf_counter()
                if now - start >= budget and written < total:  # out of time inside this batch: estimate it
                    con.rollback()
                    con.close()
                    estimate = (writing - batch_started) + (now - writing) * total / written
                    return PeerRun(position, until, batch_started - start + estimate, written / total)
        con.execute(f"UPDATE {STATE_TABLE} SET position = ?, last_hash = ?", [last[0], last[9]])
        con.commit()
        position = last[0]
        if time.perf_counter() - start >= budget:
            break
    seconds = time.perf_counter() - start
    con.close()
    return PeerRun(position, position, seconds, 1.0)


def _insert_or_replace(table: str, types: list[str]) -> str:
    # Times travel as integer microseconds, as in ours; DuckDB turns them into TIMESTAMPTZ.
    values = ", ".join("make_timestamp(?::BIGINT)::TIMESTAMPTZ" if t == "TIMESTAMPTZ" else "?" for t in types)
    return f"INSERT OR REPLACE INTO {table} VALUES ({values})"


def where_time_goes(store: EventStore, path: Path, batch: int) -> dict[str, float]:
    """Ours, stage by stage, batch by batch, each stage timed alone on one thread.

    (The projector itself stores one batch on a second thread while it folds the next.)
    """
    head = store.head()
    stages = ("read raw rows from the store (events/)", "decode the payload fields the fold reads", "fold",
              "copy changed rows into Arrow", "store them in DuckDB (delete + insert + commit)")
    seconds = dict.fromkeys(stages, 0.0)
    payloads, fold = PayloadReader(store.registry, FIELDS), Fold()
    con = configure(duckdb.connect(str(path)))
    for statement in create_statements():
        con.execute(statement)
    gc.collect()
    for first in range(1, head + 1, batch):
        marks = [time.perf_counter()]
        rows = list(store.scan_rows(first, min(head, first + batch - 1)))
        marks.append(time.perf_counter())
        events = [(r[0], r[4], r[6], payloads.decode(r[4], r[5], r[8])) for r in rows if r[4] in fold.reads]
        marks.append(time.perf_counter())
        for event in events:
            fold.apply_payload(*event)
        changed = fold.take_changed()
        marks.append(time.perf_counter())
        tables = [(t, persist.to_arrow(t, r)) for t, r in zip(TABLES.values(), changed, strict=True)]
        marks.append(time.perf_counter())
        con.begin()
        for table, arrow in tables:
            persist.upsert(con, table, arrow)
        con.execute(f"UPDATE {STATE_TABLE} SET position = ?", [rows[-1][0]])
        con.commit()
        marks.append(time.perf_counter())
        for stage, (begun, ended) in zip(stages, pairwise(marks), strict=True):
            seconds[stage] += ended - begun
        del rows, events, changed, tables
    con.close()
    return seconds


# -- checking what was built -------------------------------------------------------------------------


def check_ours(store: EventStore, path: Path, work: Workload) -> list[str]:
    """Compare our file with what the generator made, and with a fresh rebuild of the same log."""
    problems: list[str] = []
    with Projector(store, path) as projector:
        q = projector.query
        if projector.position != store.head():
            problems.append(f"ours: checkpoint {projector.position}, head {store.head()}")
        statuses = dict(q("SELECT status, count(*) FROM tasks GROUP BY status").rows)
        if statuses != dict(work.expected.task_statuses):
            problems.append(f"ours: tasks by status {sorted(statuses.items())}, expected "
                            f"{sorted(work.expected.task_statuses.items())}")
        requests = {r[0]: r[1:] for r in q("SELECT request_id, tasks, completed, dead_lettered, in_progress, status "
                                           "FROM requests").rows}
        if requests != work.expected.requests:
            wrong = sorted(k for k in set(requests) | set(work.expected.requests)
                           if requests.get(k) != work.expected.requests.get(k))
            problems.append(f"ours: {len(wrong)} request rows differ from the generator's, e.g. {wrong[:3]}")
        in_flight = {r[0]: r[1] for r in q("SELECT agent_id, in_flight FROM agents WHERE in_flight > 0").rows}
        if in_flight != work.expected.in_flight:
            problems.append(f"ours: in-flight tasks per agent differ ({sum(in_flight.values())} held, expected "
                            f"{sum(work.expected.in_flight.values())})")
        depth = sum(r[0] for r in q("SELECT depth FROM queue").rows)
        if depth != work.expected.task_statuses.get("queued", 0):
            problems.append(f"ours: queue depth {depth}, expected {work.expected.task_statuses.get('queued', 0)}")
        dead = q("SELECT count(*) FROM dead_letters").rows[0][0]
        expected_dead = work.expected.task_statuses.get("dead_lettered", 0)
        if dead != expected_dead:
            problems.append(f"ours: {dead} dead letters, expected {expected_dead}")
        ours = snapshot(projector)
    with Projector(store, None) as fresh:
        fresh.rebuild()
        if snapshot(fresh) != ours:
            problems.append("ours: the tables differ from a fresh rebuild of the same log")
    return problems


def snapshot(projector: Projector) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, ordered by key."""
    return {name: projector.query(f"SELECT * FROM {name} ORDER BY {t.key}").rows for name, t in TABLES.items()}


def check_naive(store: EventStore, path: Path, position: int) -> list[str]:
    """The peer's tables must equal ours folded to the same position."""
    with Projector(store, None) as ours:
        ours.catch_up(position)
        want = snapshot(ours)
    con = configure(duckdb.connect(str(path), read_only=True))
    got = {name: con.sql(f"SELECT * FROM {name} ORDER BY {t.key}").to_arrow_table() for name, t in TABLES.items()}
    con.close()
    got_rows = {name: list(zip(*(c.to_pylist() for c in table.columns), strict=True)) for name, table in got.items()}
    return [] if got_rows == want else [f"peer: its tables at position {position} differ from ours at that position"]


# -- the driver ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events in the log; default 200000")
    parser.add_argument("--agents", type=int, default=300, help="agents; default 300")
    parser.add_argument("--requests", type=int, default=400, help="requests; default 400")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"events per transaction; default {DEFAULT_BATCH}")
    parser.add_argument("--peer-seconds", type=float, default=10.0,
                        help="time budget of the naive peer (it stops after the batch that crosses it); default 10")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours; the median is reported; default 3")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="also cProfile one extra run of ours")
    args = parser.parse_args(argv)
    if min(args.events, args.agents, args.requests, args.batch, args.repeat) < 1 or args.peer_seconds <= 0:
        parser.error("--events, --agents, --requests, --batch, --repeat and --peer-seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="projection-catchup-") as tmp:
        root = Path(tmp)
        work = generate(args.events, args.agents, args.requests, args.seed)
        store = open_store(f"sqlite:///{root / 'events.db'}")
        fill_started = time.perf_counter()
        work.fill(store)
        fill_seconds = time.perf_counter() - fill_started
        head = store.head()
        if head != work.events:
            problems.append(f"fill: head is {head}, the generator made {work.events} events")

        with Projector(store, None, batch_size=args.batch) as warm:  # imports, caches, allocator; not reported
            warm.catch_up(min(head, 2 * args.batch))
        runs = [run_ours(store, root / f"ours-{i}.duckdb", args.batch) for i in range(args.repeat)]
        rates = sorted(events / seconds for events, seconds in runs)
        rate = rates[len(rates) // 2]
        for events, _ in runs:
            if events != head:
                problems.append(f"ours: caught up {events} events, expected {head}")
        problems += check_ours(store, root / "ours-0.duckdb", work)

        peer = run_naive(store, root / "naive.duckdb", args.batch, args.peer_seconds)
        problems += check_naive(store, root / "naive.duckdb", peer.stored)

        print_report(args, work, fill_seconds, rates, rate, peer, head)
        stages = where_time_goes(store, root / "stages.duckdb", args.batch)
        print(f"\nwhere ours spends its time, each stage timed alone (sum {sum(stages.values()):.2f} s; the projector "
              "stores one batch while it folds the next):")
        for stage, spent in stages.items():
            print(f"  {spent:>6.3f} s  {head / spent:>12,.0f} events/s  {stage}")

        if args.profile:
            profiler = cProfile.Profile()
            run_ours(store, root / "ours-profile.duckdb", args.batch, profiler)
            print(f"\ncProfile of ours, {head:,} events, batch {args.batch:,} (top 25 by own time):")
            pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(25)
        store.close()

    if problems:
        print("\nVERIFICATION FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("verification: ok (ours equals the generator's expected tasks, requests, agent loads, queue and dead "
          "letters, and a fresh rebuild; the peer's tables equal ours at the position it reached)")
    return 0


def print_report(args: argparse.Namespace, work: Workload, fill_seconds: float, rates: list[float], rate: float,
                 peer: PeerRun, head: int) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()}, duckdb {duckdb.__version__}, pyarrow {dist_version('pyarrow')}, "
          f"msgspec {msgspec.__version__}")
    mix = ", ".join(f"{name} {count:,}" for name, count in work.types.most_common())
    print(f"log: {head:,} events ({mix}); {work.tasks:,} tasks, {args.agents} agents, {args.requests} requests; "
          f"filled in {fill_seconds:.1f} s (not timed)")
    print(f"batch: {args.batch:,} events per DuckDB transaction, for both")
    print()
    print(f"{'system':<8}  {'events':>9}  {'seconds':>8}  {'events/s':>10}")
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    print(f"{'ours':<8}  {head:>9,}  {head / rate:>8.2f}  {rate:>10,.0f}   (median of {len(rates)}: {runs})")
    peer_rate = peer.events / peer.seconds
    if peer.fraction < 1.0:
        done = (f"EXTRAPOLATED: its {args.peer_seconds:g} s budget ran out {peer.fraction:.0%} of the way through the "
                f"writes of the batch ending at event {peer.events:,.0f} ({peer.stored:,} events stored before it); "
                f"that batch's time is its fold plus its writes so far / {peer.fraction:.2f}. The whole log would "
                f"take about {head / peer_rate:,.0f} s")
    elif peer.stored < head:
        done = (f"stopped by its {args.peer_seconds:g} s budget after {peer.stored:,} of {head:,} events; the whole "
                f"log would take about {head / peer_rate:,.0f} s at this rate")
    else:
        done = "all of the log"
    print(f"{'naive':<8}  {peer.events:>9,.0f}  {peer.seconds:>8.2f}  {peer_rate:>10,.0f}   ({done})")
    print()
    print(f"ratio ours / naive: {rate / peer_rate:.1f}x")
    print(f"target 'ours >= {TARGET:,} events/s': {'MET' if rate >= TARGET else 'NOT MET'} ({rate:,.0f})")


if __name__ == "__main__":
    sys.exit(main())
