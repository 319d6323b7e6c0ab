"""How long everyday `council` commands take against a running council, against Ray's own bare driver.

A council is started with `council up` on a scratch directory (nothing else may run on this
machine's local Ray), then each command is run ``--runs`` times as a user runs it, a new process
each time, and its wall time is taken. The peer, in the same run, is the least any command that
talks to the council can cost: a Python process that joins the same cluster with ``ray.init``
and leaves with ``ray.shutdown``. ``council --version`` (no Ray) shows what the interpreter and the
command line alone cost.

Usage::

    python bench/cli_latency.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import percentile

ROOT = Path(__file__).resolve().parents[1]
BARE = "import ray; ray.init(address='auto', namespace='council'); ray.shutdown()"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one run of ``argv``; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    council = shutil.which("council") or f"{sys.executable} -m cluster.cli"
    cli = council.split()
    tmp = Path(tempfile.mkdtemp(prefix="cli-latency-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("COUNCIL_STORE", "COUNCIL_HOME", "COUNCIL_ADDRESS"):
        env.pop(key, None)
    up = subprocess.run([*cli, "up", "--agents", "2"], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    if up.returncode != 0:
        print(f"council up failed (is another council running on this machine?): {up.stderr.strip()[-500:]}",
              file=sys.stderr)
        return 1
    commands = {
        "council --version (no Ray)": [*cli, "--version"],
        "peer: bare Ray driver (init + shutdown)": [sys.executable, "-c", BARE],
        "council status": [*cli, "status"],
        "council sql 'SELECT count(*) FROM tasks'": [*cli, "sql", "SELECT count(*) AS n FROM tasks"],
        "council submit noop --wait": [*cli, "submit", "noop", "--wait"],
    }
    try:
        samples = {name: [timed(argv, tmp, env) for _ in range(args.runs)] for name, argv in commands.items()}
    finally:
        subprocess.run([*cli, "down", "--stop-ray"], cwd=tmp, env=env, capture_output=True, timeout=300)
    print(f"{args.runs} runs of each command, a new process each; {os.cpu_count()} cores")
    print(f"{'':46}{'p50 s':>8}{'p95 s':>8}")
    for name, values in samples.items():
        print(f"{name:46}{statistics.median(values):>8.2f}{percentile(values, 95):>8.2f}")
    bare = statistics.median(samples["peer: bare Ray driver (init + shutdown)"])
    print(f"ratio council status / bare Ray driver at p50: {statistics.median(samples['council status']) / bare:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
