"""Recovery: how long a crashed agent's task takes to run again, and a hung agent to be restarted.

* **crash**: an agent running a task is SIGKILLed; measured from the kill until the task has
  started again (its next ``task.started`` in the log). The peer, in the same trials, is Ray's
  own restart: from the kill until the restarted actor answers a call.
* **hang**: a task that blocks without reporting progress (the ``hang`` skill); measured from its
  ``task.started`` until the health monitor has killed the agent and the agent has started again
  in a new process (its ``agent.restarted``). The hang deadline (``hang_after``) is part of it.

Everything runs on one local Ray started by this script, with the health monitor on.

Usage::

    python bench/recovery.py [--kills 10] [--hangs 10] [--hang-after 2]
    python bench/recovery.py --long-log [--events 1000000]   # snapshots against a full replay (bench/long_recovery.py)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from figures import log_checked, percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from cluster.driver import Council
from cluster.settings import Settings
from cluster.system import shutdown
from cluster.team import AgentSpec
from events import open_store


def wait(predicate, timeout: float = 120.0, step: float = 0.02):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("recovery did not happen in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--hangs", type=int, default=10)
    parser.add_argument("--hang-after", type=float, default=2.0)
    parser.add_argument("--long-log", action="store_true",
                        help="instead: restart the snapshotting actors' processes on a long log, "
                             "with and without snapshots")
    parser.add_argument("--events", type=int, default=1_000_000, help="the long log's length (with --long-log)")
    args = parser.parse_args()
    if args.long_log:
        import long_recovery

        return long_recovery.run(args.events)

    tmp = Path(tempfile.mkdtemp(prefix="recovery-"))
    settings = Settings(store=f"sqlite:///{tmp / 'events.db'}", projections=str(tmp / "p.duckdb"),
                        home=str(tmp / "council"), metrics_port=0)
    health = {"ping_every": 0.1, "ping_timeout": 5.0, "hang_after": args.hang_after, "restart_budget": 1000,
              "backoff_base": 0.0, "backoff_max": 0.0}
    council = Council.start(settings, team=[AgentSpec(agent_id="r1", capabilities=("sleep", "hang"), slots=1)],
                            dispatch={"heartbeat_timeout": 30, "backoff_base": 0.01}, health=health)
    agent = ray.get_actor("agent:r1", namespace="council")
    log = open_store(settings.store, create=False)

    def started(task_id: str, after: int) -> float | None:
        events = [e for e in log.read_stream(f"task-{task_id}") if e.type == "task.started" and e.position > after]
        return events[0].recorded_at.timestamp() if events else None

    def restarted(after: int) -> float | None:
        events = log.read_all(after + 1, None, ["agent.restarted"])
        return next((e.recorded_at.timestamp() for e in events), None)

    def answering() -> bool:
        try:
            ray.get(agent.pid.remote(), timeout=0.5)
            return True
        except ray.exceptions.RayError:  # the actor died, is restarting, or did not answer in time
            return False

    crash, ray_restart = [], []
    for _ in range(args.kills):
        task = council.submit("sleep", {"seconds": 1.0}, max_attempts=5)
        wait(lambda t=task: started(t, 0))
        pid = ray.get(agent.pid.remote())
        head = log.head()
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        ray_restart.append(wait(lambda: answering() and time.time()) - killed)
        crash.append(wait(lambda t=task, h=head: started(t, h)) - killed)
        council.wait([task], timeout=120)

    hang = []
    for _ in range(args.hangs):
        task = council.submit("hang", {"seconds": 3600}, max_attempts=1)
        began = wait(lambda t=task: started(t, 0))
        head = log.head()
        hang.append(wait(lambda h=head: restarted(h)) - began)
        council.wait([task], timeout=120)

    shutdown()
    ok = log.verify().ok
    log.close()
    ray.shutdown()
    print(f"{args.kills} crashes and {args.hangs} hangs of one agent; health monitor pinging every 0.1 s, "
          f"hang deadline {args.hang_after:g} s; {os.cpu_count()} cores, ray {ray.__version__}")
    print(f"{'':40}{'p50 s':>8}{'p95 s':>8}")
    print(f"{'crash: kill -> its task running again':40}{percentile(crash, 50):>8.2f}{percentile(crash, 95):>8.2f}")
    print(f"{'  peer: kill -> Ray restarted the actor':40}{percentile(ray_restart, 50):>8.2f}"
          f"{percentile(ray_restart, 95):>8.2f}")
    print(f"{'hang: task started -> agent restarted':40}{percentile(hang, 50):>8.2f}{percentile(hang, 95):>8.2f}")
    crash_met = percentile(crash, 95) <= 3.0
    hang_met = percentile(hang, 95) <= args.hang_after + 3.0
    print(f"ratio crash / Ray restart at p50: {percentile(crash, 50) / percentile(ray_restart, 50):.2f}")
    print(f"targets: crash p95 <= 3 s: {'MET' if crash_met else 'NOT MET'}; hang p95 <= {args.hang_after + 3:g} s: "
          f"{'MET' if hang_met else 'NOT MET'}")
    return log_checked(ok)


if __name__ == "__main__":
    sys.exit(main())
