"""Recovery on a long log: each snapshotting actor's process restarted from its snapshot, against a full replay.

A log of ``--events`` events (default 1,000,000) is written in batches straight to a SQLite file:
agents registering, then tasks running their whole lifecycle (submitted, queued, assigned,
started, completed), the last few left in flight. The dispatcher's process folds it once and
snapshots its state a few thousand events before the end (as ``every_events`` would), then the
rest of the log is written. Each measurement runs in a fresh Python process — a restart — and
reports the seconds from a fresh process object to a state caught up with the head, and then,
recovering once more under ``tracemalloc`` (which slows it, so it is not timed), the peak memory the
recovery itself allocated — the open store's own memory (its ledger) is the same both ways and left
out. The same run does it again on a log a tenth as long, to show whether recovery grows with the log.

Usage::

    python bench/recovery.py --long-log [--events 1000000]
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors import names
from actors.dispatch import Dispatch
from actors.dispatch.process import status_in
from actors.snapshots import Snapshots
from events import NO_STREAM, Intent, open_store
from events.blobs import BlobStore
from events.catalogue import (
    AgentRegistered,
    TaskAssigned,
    TaskCompleted,
    TaskQueued,
    TaskStarted,
    TaskSubmitted,
)

PER_TASK = 5
"""Events of one finished task."""
TAIL = 5000
"""Events written after the snapshot (the most ``every_events`` would leave behind, halved)."""
AGENTS = 8
IN_FLIGHT = 100


def _task(i: int, finish: bool) -> Intent:
    t, agent = f"t{i:08d}", f"a{i % AGENTS}"
    events: list[object] = [TaskSubmitted(task_id=t, capability="code.generate", inputs={"n": i}),
                            TaskQueued(task_id=t, priority=2),
                            TaskAssigned(task_id=t, agent_id=agent, lease_id=f"l{i}", lease_expires_at=2e9, attempt=1)]
    if finish:
        events += [TaskStarted(task_id=t, agent_id=agent, attempt=1),
                   TaskCompleted(task_id=t, agent_id=agent, attempt=1)]
    return Intent(f"task-{t}", events, NO_STREAM)  # type: ignore[arg-type]


def write_log(url: str, blobs: Path, events: int) -> tuple[int, float]:
    """Write a log of about ``events`` events with a dispatcher snapshot ``TAIL`` events before its end; return
    (its head, the seconds writing took)."""
    started = time.perf_counter()
    store = open_store(url)
    store.append_many([Intent(f"agent-a{a}", [AgentRegistered(agent_id=f"a{a}", role="coder",
                                                                capabilities=["code.generate"], slots=64)], NO_STREAM)
                       for a in range(AGENTS)])
    tasks = (events - AGENTS) // PER_TASK
    before = tasks - min(TAIL, events // 4) // PER_TASK
    batch = 2000

    def write(first: int, last: int) -> None:
        for start in range(first, last, batch):
            store.append_many([_task(i, finish=i < tasks - IN_FLIGHT) for i in range(start, min(last, start + batch))])

    write(0, before)
    dispatch = Dispatch()
    dispatch.advance(store)
    assert Snapshots(names.DISPATCHER, BlobStore(blobs)).take(dispatch, store) is not None
    write(before, tasks)
    head = store.head()
    store.close()
    return head, time.perf_counter() - started


def measure(url: str, blobs: str, snapshots: bool) -> dict[str, float | int | str]:
    """Recover the dispatcher's process in this (fresh) process; what it took."""
    store = open_store(url, create=False)
    started = time.perf_counter()
    dispatch = Dispatch(lookup=status_in(store))
    recovery = Snapshots(names.DISPATCHER, BlobStore(blobs) if snapshots else None).recover(dispatch, store)
    seconds = time.perf_counter() - started
    state = dispatch.encode_state()
    del dispatch
    tracemalloc.start()
    again = Dispatch(lookup=status_in(store))
    Snapshots(names.DISPATCHER, BlobStore(blobs) if snapshots else None).recover(again, store)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dispatch = again
    return {"seconds": seconds, "peak_mb": peak / 2**20, "folded": recovery.folded, "state_kb": len(state) / 1024,
            "from": recovery.snapshot_position, "fallback": recovery.fallback, "position": dispatch.position,
            "in_state": len(dispatch.state.tasks), "digest": hashlib.sha256(state).hexdigest()}


def _in_a_fresh_process(url: str, blobs: Path, snapshots: bool) -> dict[str, float | int | str]:
    out = subprocess.run([sys.executable, __file__, "--measure", url, str(blobs), "1" if snapshots else "0"],
                         check=True, capture_output=True, text=True)
    result: dict[str, float | int | str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(events: int) -> int:
    """Both log lengths, both ways; print the table. Returns 0, or 1 if a recovery from a snapshot differed from
    the replay or fell back."""
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for length in (events // 10, events):
            url, blobs = f"sqlite:///{tmp}/log-{length}.db", Path(tmp) / f"blobs-{length}"
            head, wrote = write_log(url, blobs, length)
            print(f"wrote {head:,} events in {wrote:.1f} s ({head / wrote:,.0f} events/s)", flush=True)
            full = _in_a_fresh_process(url, blobs, snapshots=False)
            snap = _in_a_fresh_process(url, blobs, snapshots=True)
            if snap["digest"] != full["digest"] or snap["fallback"] or not snap["from"]:
                print(f"!! recovery from the snapshot is not the replay: {snap} vs {full}")
                failed = 1
            rows.append((head, full, snap))
    print("\n| log events | full replay s | from snapshot s | ratio | full replay peak MB | from snapshot peak MB "
          "| events folded after the snapshot | state KB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for head, full, snap in rows:
        ratio = float(full["seconds"]) / max(float(snap["seconds"]), 1e-9)
        print(f"| {head:,} | {float(full['seconds']):.2f} | {float(snap['seconds']):.3f} | {ratio:,.0f}x "
              f"| {float(full['peak_mb']):.1f} | {float(snap['peak_mb']):.1f} | {snap['folded']:,} "
              f"| {float(snap['state_kb']):,.0f} |")
    print(f"\nboth ways end in the same state (digest of the encoded state) at every length: {not failed}; "
          f"tasks in the dispatcher's state at the end: {rows[-1][2]['in_state']} (finished ones forgotten)")
    return failed


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--measure":
    print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4] == "1")))
