"""Recovery on a long log: each snapshotting actor's process restarted from its snapshot, against a full replay.

A log of ``--events`` events (default 1,000,000) is written in batches straight to a SQLite file:
agents registering, then tasks running their whole lifecycle (submitted, queued, assigned,
started, completed), the last few left in flight, every tenth task acting under a warrant the
council signed (issued, an action authorised and completed: the council keeps every warrant's
ledger), and among them what the other actors fold: a crash the health monitor recorded and an
alert every batch. Each snapshotting actor's process —
the dispatcher, the council (its authority and the ledger's Merkle tree), the error detector, the
Prometheus exporter's counters and the health monitor — folds it once and snapshots its state a
few thousand events before the end (as ``every_events`` would), then the rest of the log is
written. Each measurement runs in a fresh Python process — a restart — and reports the seconds
from a fresh process object to a state caught up with the head, and then, recovering once more
under ``tracemalloc`` (which slows it, so it is not timed), the peak memory the recovery itself
allocated — the open store's own memory (its ledger) is the same both ways and left out. Both
ways must end in the same state (the digest of the encoded state). The same run does it again on
a log a tenth as long, to show whether recovery grows with the log.

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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors import names
from actors.council_actor import CouncilProcess
from actors.dispatch import Dispatch
from actors.dispatch.process import status_in
from actors.follow import Process
from actors.snapshots import Recovery, Snapshots, Snapshotting
from events import ANY, NO_STREAM, EventStore, Intent, open_store, streams
from events.blobs import BlobStore
from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActorRestarted,
    AgentRegistered,
    AlertRaised,
    Budget,
    TaskAssigned,
    TaskCompleted,
    TaskQueued,
    TaskStarted,
    TaskSubmitted,
)
from governance import warrant
from governance.keys import COUNCIL_KEY, Keyring, SigningKey
from monitoring.errors import DetectorSettings, ErrorDetector
from monitoring.health import HealthMonitor, HealthSettings
from monitoring.metrics import LogMetrics

PER_TASK = 5.3
"""Events of one finished task, on average (every tenth has three of its warrant's)."""
WARRANT_EVERY = 10
TAIL = 5000
"""Events written after the snapshot (the most ``every_events`` would leave behind, halved)."""
AGENTS = 8
IN_FLIGHT = 100
BATCH = 2000
"""Tasks per commit; each batch also holds a crash the health monitor recorded and an alert."""

Make = Callable[[EventStore, Path], Process]
ACTORS: dict[str, Make] = {
    names.DISPATCHER: lambda store, _: Dispatch(lookup=status_in(store)),
    names.COUNCIL: lambda _, keys: CouncilProcess(Keyring(keys).signer(COUNCIL_KEY), 10.0),
    names.DETECTOR: lambda _, __: ErrorDetector(DetectorSettings()),
    names.EXPORTER: lambda _, __: LogMetrics(),
    names.HEALTH: lambda _, __: HealthMonitor([names.STORE, names.DISPATCHER], HealthSettings()),
}
"""Each snapshotting actor's process, fresh, as its Ray shell makes it (the council's key from ``keys``)."""


def _task(i: int, finish: bool, key: SigningKey) -> list[Intent]:
    t, agent = f"t{i:08d}", f"a{i % AGENTS}"
    events: list[object] = [TaskSubmitted(task_id=t, capability="code.generate", inputs={"n": i}),
                            TaskQueued(task_id=t, priority=2),
                            TaskAssigned(task_id=t, agent_id=agent, lease_id=f"l{i}", lease_expires_at=2e9, attempt=1)]
    if finish:
        events += [TaskStarted(task_id=t, agent_id=agent, attempt=1),
                   TaskCompleted(task_id=t, agent_id=agent, attempt=1)]
    out = [Intent(f"task-{t}", events, NO_STREAM)]  # type: ignore[arg-type]
    if i % WARRANT_EVERY == 0:
        wid = f"w-{t}"
        issued = warrant.issue(key, warrant.Warrant(
            warrant_id=wid, holder=agent, role="coder", actions=("file.write",), resources=("src/**",),
            not_before=1.7e9, expires_at=2e9, policy_hash="p" * 64, issuer=key.public.fingerprint,
            request_id=f"r{i % 50}", task_id=t))
        acted: list[object] = [issued, ActionAuthorized(
            warrant_id=wid, agent_id=agent, action="file.write", target="src/a.py", key="k", digest="d" * 64,
            policy_hash="p" * 64, rule="coders-write", cost=Budget(actions=1))]
        if finish:
            acted.append(ActionCompleted(warrant_id=wid, key="k", ok=True, cost=Budget(wall_time_s=0.01)))
        out.append(Intent(f"warrant-{wid}", acted, NO_STREAM))  # type: ignore[arg-type]
    return out


def _others(batch: int) -> list[Intent]:
    """What the other actors fold, once a batch: a crash of the store that Ray restarted, and an alert."""
    return [Intent(streams.actor(names.STORE), [ActorRestarted(actor=names.STORE, pid=batch + 2, by="ray")], ANY),
            Intent(streams.ALERTS, [AlertRaised(key=f"b{batch}", source="bench", summary="a batch")], ANY)]


def write_log(url: str, blobs: Path, keys: Path, events: int) -> tuple[int, float]:
    """Write a log of about ``events`` events with a snapshot of every actor ``TAIL`` events before its end; return
    (its head, the seconds writing took)."""
    started = time.perf_counter()
    Keyring(keys).new(COUNCIL_KEY)
    key = Keyring(keys).signer(COUNCIL_KEY)
    store = open_store(url)
    store.append_many([Intent(f"agent-a{a}", [AgentRegistered(agent_id=f"a{a}", role="coder",
                                                                capabilities=["code.generate"], slots=64)], NO_STREAM)
                       for a in range(AGENTS)])
    tasks = int((events - AGENTS) / PER_TASK)
    before = tasks - int(min(TAIL, events // 4) / PER_TASK)

    def write(first: int, last: int) -> None:
        for start in range(first, last, BATCH):
            batch = [intent for i in range(start, min(last, start + BATCH))
                     for intent in _task(i, finish=i < tasks - IN_FLIGHT, key=key)]
            store.append_many([*_others(start // BATCH), *batch])

    write(0, before)
    for name, make in ACTORS.items():
        process = make(store, keys)
        process.advance(store)
        assert isinstance(process, Snapshotting)
        assert Snapshots(name, BlobStore(blobs)).take(process, store) is not None
    write(before, tasks)
    head = store.head()
    store.close()
    return head, time.perf_counter() - started


def measure(name: str, url: str, blobs: str, keys: str, snapshots: bool) -> dict[str, float | int | str]:
    """Recover actor ``name``'s process in this (fresh) process; what it took."""
    store = open_store(url, create=False)
    make = ACTORS[name]

    def recover() -> tuple[Process, Recovery]:
        process = make(store, Path(keys))
        assert isinstance(process, Snapshotting)
        return process, Snapshots(name, BlobStore(Path(blobs)) if snapshots else None).recover(process, store)

    started = time.perf_counter()
    process, recovery = recover()
    seconds = time.perf_counter() - started
    assert isinstance(process, Snapshotting)
    state = process.encode_state()
    del process
    tracemalloc.start()
    recover()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": seconds, "peak_mb": peak / 2**20, "folded": recovery.folded, "state_kb": len(state) / 1024,
            "from": recovery.snapshot_position, "fallback": recovery.fallback,
            "digest": hashlib.sha256(state).hexdigest()}


def _in_a_fresh_process(name: str, url: str, blobs: Path, keys: Path, snapshots: bool) -> dict[str, float | int | str]:
    out = subprocess.run([sys.executable, __file__, "--measure", name, url, str(blobs), str(keys),
                          "1" if snapshots else "0"], check=True, capture_output=True, text=True)
    result: dict[str, float | int | str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(events: int) -> int:
    """Both log lengths, every actor, both ways; print the table. Returns 0, or 1 if a recovery from a snapshot
    differed from the replay or fell back."""
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for length in (events // 10, events):
            url, blobs, keys = (f"sqlite:///{tmp}/log-{length}.db", Path(tmp) / f"blobs-{length}",
                                Path(tmp) / f"keys-{length}")
            head, wrote = write_log(url, blobs, keys, length)
            print(f"wrote {head:,} events in {wrote:.1f} s ({head / wrote:,.0f} events/s)", flush=True)
            for name in ACTORS:
                full = _in_a_fresh_process(name, url, blobs, keys, snapshots=False)
                snap = _in_a_fresh_process(name, url, blobs, keys, snapshots=True)
                if snap["digest"] != full["digest"] or snap["fallback"] or not snap["from"]:
                    print(f"!! {name}: recovery from the snapshot is not the replay: {snap} vs {full}")
                    failed = 1
                rows.append((head, name, full, snap))
                print(f"  {name}: {float(full['seconds']):.2f} s replayed, {float(snap['seconds']):.3f} s from its "
                      "snapshot", flush=True)
    print("\n| log events | actor | full replay s | from snapshot s | ratio | full replay peak MB "
          "| from snapshot peak MB | events folded after the snapshot | state KB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for head, name, full, snap in rows:
        ratio = float(full["seconds"]) / max(float(snap["seconds"]), 1e-9)
        print(f"| {head:,} | {name} | {float(full['seconds']):.2f} | {float(snap['seconds']):.3f} | {ratio:,.0f}x "
              f"| {float(full['peak_mb']):.1f} | {float(snap['peak_mb']):.1f} | {snap['folded']:,} "
              f"| {float(snap['state_kb']):,.0f} |")
    print(f"\nboth ways end in the same state (digest of the encoded state) for every actor at every length: "
          f"{not failed}")
    return failed


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "--measure":
    print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "1")))
