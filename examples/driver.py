"""A driver script: start (or join) a council, submit a request of dependent tasks, wait, ask SQL.

Run it on this machine (Ray starts in-process, the log goes to .council/events.db):

    python examples/driver.py --tasks 20

or on a cluster started with `ray start --head`:

    ray job submit --working-dir . -- python examples/driver.py --address auto --tasks 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout or a job's working dir

from cluster.driver import Council
from cluster.settings import Settings
from events.catalogue import TaskSpec, TaskStatus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=None, help="Ray address (auto, host:port, ray://host:port)")
    parser.add_argument("--store", default=None, help="event store URL (default .council/events.db)")
    parser.add_argument("--tasks", type=int, default=20, help="how many tasks to run")
    args = parser.parse_args()
    settings = Settings.from_env(store=args.store, address=args.address)
    started = time.monotonic()
    council = Council.start(settings)
    tasks = [TaskSpec(capability="sleep", inputs={"seconds": 0.05}, priority=i % 4, title=f"step {i}")
             for i in range(args.tasks)]
    tasks.append(TaskSpec(capability="echo", inputs={"summary": True}, title="summary"))
    request_id, ids = council.request("example request", tasks)
    outcome = council.wait(ids, timeout=600)
    done = sum(status is TaskStatus.COMPLETED for status in outcome.values())
    print(f"request {request_id}: {done} of {len(ids)} tasks completed "
          f"in {time.monotonic() - started:.1f} s")
    result = council.sql(f"SELECT status, count(*) AS tasks FROM tasks WHERE request_id = '{request_id}' GROUP BY ALL")
    for row in result.rows:
        print(f"  {row[0]:<14} {row[1]}")
    queues = council.sql("SELECT priority, depth FROM queue ORDER BY priority").rows
    print("queues now: " + ", ".join(f"P{p} {depth}" for p, depth in queues))
    council.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
