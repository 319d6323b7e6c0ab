"""Task overhead: no-op tasks through the whole path, against bare Ray actor calls in the same run.

What it measures
    * **ours, throughput**: N no-op tasks submitted at once (group commits of 100) go
      submit → dispatcher → agent → completed → visible in the ``tasks`` read model; tasks/s is N
      over the time from the first submission until the last task shows as completed there.
    * **ours, latency**: tasks submitted one at a time at a steady rate (default 50/s); each
      one's latency is from just before its submission until the driver sees it completed in the
      ``tasks`` table, asked through the projector with a long poll that answers as soon as it
      has folded something new. p50 and p99.
    * **the parts**: one durable append through the store actor (a task makes four in sequence),
      and the SQL watcher's query through the projector, each timed one at a time.
    * **peer**: the same number of calls to a bare Ray actor method that does nothing — all at once
      for throughput, one at a time for latency.

Everything runs on one local Ray started by this script (SQLite log and DuckDB read models in a
temporary directory). Checks afterwards: every task completed exactly once and the log verifies.

Usage::

    python bench/task_overhead.py [--tasks 2000] [--latency-tasks 300] [--rate 50] [--agents 2] [--slots 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from figures import percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from cluster.driver import Council
from cluster.settings import Settings
from cluster.system import shutdown
from cluster.team import AgentSpec
from events import open_store, streams
from events.catalogue import AgentHeartbeat, TaskSpec


@ray.remote(num_cpus=0)
class Bare:
    """The peer: an actor whose method does nothing."""

    def noop(self) -> None:
        return None


class Visibility:
    """Records when each task is first seen completed in the ``tasks`` read model, in one of two ways.

    ``feed``: following the ``tasks`` change feed (``ProjectorActor.changes``), a long poll
    answered as soon as the projector has folded something new, with the changed rows.
    ``sql``: a long-polled SQL query (``ProjectorActor.query(..., newer_than=...)``) run through
    DuckDB each time the projector has folded something new.
    """

    def __init__(self, council: Council, how: str) -> None:
        self.council, self.how, self.seen = council, how, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow if how == "feed" else self._poll, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        after = 0
        while not self._stop.is_set():
            result = ray.get(self.council.projector.changes.remote("tasks", after, timeout=0.5))
            now = time.perf_counter()
            status = result.columns.index("status")
            for row in result.rows:
                if row[status] == "completed":
                    self.seen.setdefault(row[0], now)
            after = result.position or after

    def _poll(self) -> None:
        folded, completed_after = 0, 0
        while not self._stop.is_set():
            result = ray.get(self.council.projector.query.remote(
                f"SELECT task_id, position FROM tasks WHERE status = 'completed' AND position > {int(completed_after)}",
                newer_than=folded, timeout=0.5))
            now = time.perf_counter()
            folded = result.position or folded
            for task_id, position in result.rows:
                self.seen.setdefault(task_id, now)
                completed_after = max(completed_after, position)

    def wait(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(t not in self.seen for t in ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(t not in self.seen for t in ids)} tasks not visible after {timeout} s")
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def latency_run(council: Council, how: str, tasks: int, rate: float) -> list[float]:
    """``tasks`` no-op tasks one at a time at ``rate``/s; each one's ms from submission to seen completed."""
    seen = Visibility(council, how)
    latencies = []
    for _ in range(tasks):
        t0 = time.perf_counter()
        task_id = council.submit("noop")
        seen.wait([task_id], 60)
        latencies.append((seen.seen[task_id] - t0) * 1000)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))
    seen.stop()
    return latencies



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--latency-tasks", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="tasks/s in the latency phase")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=32)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="task-overhead-"))
    settings = Settings(store=f"sqlite:///{tmp / 'events.db'}", projections=str(tmp / "projections.duckdb"),
                        home=str(tmp / "council"), metrics_port=0)
    council = Council.start(settings, team=[AgentSpec(agent_id=f"bench-{i}", capabilities=("noop",), slots=args.slots)
                                            for i in range(args.agents)], dispatch={"heartbeat_timeout": 30})
    seen = Visibility(council, "feed")
    warm = [council.submit("noop") for _ in range(20)]
    seen.wait(warm, 120)

    # -- throughput: everything at once ---------------------------------------------------------
    started = time.perf_counter()
    ids: list[str] = []
    for chunk in range(0, args.tasks, 100):
        _, chunk_ids = council.request("throughput",
                                        [TaskSpec(capability="noop") for _ in range(min(100, args.tasks - chunk))])
        ids += chunk_ids
    seen.wait(ids, 600)
    ours_rate = args.tasks / (max(seen.seen[t] for t in ids) - started)
    seen.stop()

    # -- latency: one at a time, at a steady rate; seen through the change feed, then through SQL -----
    latencies = latency_run(council, "feed", args.latency_tasks, args.rate)
    sql_latencies = latency_run(council, "sql", args.latency_tasks, args.rate)

    # -- the peer: bare actor calls ---------------------------------------------------------------
    bare = Bare.remote()
    ray.get(bare.noop.remote())
    t0 = time.perf_counter()
    ray.get([bare.noop.remote() for _ in range(args.tasks)])
    bare_rate = args.tasks / (time.perf_counter() - t0)
    bare_latencies = []
    for _ in range(args.latency_tasks):
        t1 = time.perf_counter()
        ray.get(bare.noop.remote())
        bare_latencies.append((time.perf_counter() - t1) * 1000)

    # -- the parts of a task's path, one at a time: a durable append through the store actor (a task is
    # four in sequence), and the SQL watcher's query through the projector (one for each of them) ------
    append_latencies, query_latencies = [], []
    for _ in range(args.latency_tasks):
        t1 = time.perf_counter()
        council.store.append(streams.agent("bench-parts"), [AgentHeartbeat(agent_id="bench-parts")])
        append_latencies.append((time.perf_counter() - t1) * 1000)
    head = council.store.head()
    for _ in range(args.latency_tasks):
        t1 = time.perf_counter()
        ray.get(council.projector.query.remote(
            f"SELECT task_id, position FROM tasks WHERE status = 'completed' AND position > {head}"))
        query_latencies.append((time.perf_counter() - t1) * 1000)

    # -- checks ---------------------------------------------------------------------------------
    shutdown()
    with open_store(settings.store) as store:
        completed = Counter(e.payload.task_id for e in store.read_all(types=["task.completed"]))
        ok = store.verify().ok
    total = args.tasks + 2 * args.latency_tasks + len(warm)
    problems = []
    if len(completed) != total or set(completed.values()) != {1}:
        problems.append(f"{len(completed)} tasks completed, {sum(v > 1 for v in completed.values())} more than once; "
                        f"expected {total} exactly once")
    if not ok:
        problems.append("the log does not verify")

    print(f"machine: {os.cpu_count()} cores; ray {ray.__version__}; {args.agents} agents x {args.slots} slots; "
          f"SQLite log + DuckDB read models in {tmp}")
    print(f"{'':24}{'tasks/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'ours, change feed':24}{ours_rate:>10,.0f}{percentile(latencies, 50):>10.1f}"
          f"{percentile(latencies, 99):>10.1f}")
    print(f"{'ours, SQL long poll':24}{'':>10}{percentile(sql_latencies, 50):>10.1f}"
          f"{percentile(sql_latencies, 99):>10.1f}")
    print(f"{'bare Ray actor calls':24}{bare_rate:>10,.0f}{percentile(bare_latencies, 50):>10.2f}"
          f"{percentile(bare_latencies, 99):>10.2f}")
    print(f"parts, p50 (p99): a durable append through the store actor {percentile(append_latencies, 50):.2f} ms "
          f"({percentile(append_latencies, 99):.2f}); the SQL watcher's query through the projector "
          f"{percentile(query_latencies, 50):.2f} ms ({percentile(query_latencies, 99):.2f})")
    print(f"ratio (ours / bare): throughput {ours_rate / bare_rate:.3f}; "
          f"p50 latency {percentile(latencies, 50) / percentile(bare_latencies, 50):.1f}x")
    met = ours_rate >= 500 and percentile(latencies, 50) <= 20
    print(f"targets (>= 500 tasks/s, p50 <= 20 ms): {'MET' if met else 'NOT MET'}")
    ray.shutdown()
    if problems:
        print("CHECK FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"checks: ok ({total} tasks completed exactly once; the log verifies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
