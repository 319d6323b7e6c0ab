"""A writer the concurrency and crash tests run in other processes (and in threads).

    python store_writer.py batches URL WRITER BATCHES SEED   # append BATCHES batches, then exit
    python store_writer.py forever URL BATCH_SIZE            # append batches until killed
    python store_writer.py groups URL BATCH_SIZE             # append groups of 4 batches until killed
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from events import EventStore, NewEvent, open_store
from events.catalogue import TaskSubmitted


def batch(stream: str, tag: dict[str, int], size: int) -> list[NewEvent]:
    """``size`` events for ``stream``, each carrying ``tag`` plus its index and the batch size."""
    return [
        NewEvent(payload=TaskSubmitted(task_id=f"{stream}.{i}", capability="test.run",
                                       inputs={**tag, "i": i, "n": size}))
        for i in range(size)
    ]


def write_batches(store: EventStore, writer: int, batches: int, seed: int) -> int:
    """Append ``batches`` batches of 1-20 events, each to its own stream; return the events written."""
    rng = random.Random(seed)
    total = 0
    for b in range(batches):
        size = rng.randint(1, 20)
        store.append(f"w{writer}-b{b}", batch(f"w{writer}-b{b}", {"w": writer, "b": b}, size), expected_version=0)
        total += size
    return total


def write_groups_forever(store: EventStore, size: int) -> None:
    """Append groups of four batches of ``size`` events (one transaction each) until killed."""
    g, run = 0, random.getrandbits(32)
    while True:
        group = run * 1_000_000 + g
        results = store.append_many([(f"group{group}-{k}", batch(f"group{group}-{k}", {"g": group, "k": k}, size), 0)
                                     for k in range(4)])
        assert all(not isinstance(r, Exception) for r in results), results
        if g == 0:
            print("started", flush=True)
        g += 1


def write_forever(store: EventStore, size: int) -> None:
    """Append batches of ``size`` events until the process is killed; say 'started' after the first."""
    b = 0
    while True:
        store.append(f"crash-b{b}-{random.getrandbits(32)}", batch("crash", {"b": b}, size))
        if b == 0:
            print("started", flush=True)
        b += 1


def kill_writer_repeatedly(url: str, mode: str, size: int, rounds: int = 5) -> None:
    """Start a writer that appends until killed, and SIGKILL it at a random moment, ``rounds`` times."""
    rng = random.Random(7)
    for round_ in range(rounds):
        proc = subprocess.Popen([sys.executable, __file__, mode, url, str(size)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the writer exited by itself"


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    with open_store(url) as s:
        if mode == "batches":
            print(write_batches(s, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])), flush=True)
        elif mode == "groups":
            write_groups_forever(s, int(sys.argv[3]))
        else:
            write_forever(s, int(sys.argv[3]))
