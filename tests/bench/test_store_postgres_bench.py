"""The PostgreSQL store benches run, compare what they claim to compare and verify what they read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_postgres_store_benchmark_runs_and_verifies() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_postgres.py"), "--writers", "3", "--commits", "10",
         "--batch", "1,5", "--repeat", "1", "--profile", "--ray"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout.split("vs ref\n", 1)[1].split("\n\none writer")[0]
    rows = [line.split("  ") for line in table.splitlines() if "target" not in line and "per transaction" not in line]
    systems = [(r[0].strip(), r[1].strip()) for r in (list(filter(None, row)) for row in rows)]
    assert systems == [(b, s) for b in ("1", "5") for s in ("ours, direct", "ours, group commit",
                                                             "ours, through the store actor",
                                                             "ours, store actor, Ray only",
                                                             "Ray alone (nothing stored)", "eventsourcing",
                                                             "horizon (no chain)")]
    assert table.count("target (2,000 commits/s") == 8
    assert ", ray " in out.stdout.splitlines()[0]  # the store actor's row ran on Ray
    assert table.count("commits per transaction (median)") == 4  # the store actor's combining, at each batch size
    assert table.count("of Ray alone's rate") == 2  # and how near a Ray call each comes to what Ray alone allows
    profiled = out.stdout.split("one writer, batch 1, no contention:\n", 1)[1].splitlines()[:4]
    assert [line.split(":")[0].strip() for line in profiled] == [
        "ours (council_append, 1 round trip)", "ours deciding in Python (2 round trips)", "eventsourcing",
        "council_append alone"]
    assert "zero skipped" in out.stdout


def test_typed_read_benchmark_runs_on_both_stores_and_verifies() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_typed_read.py"), "--events", "3000", "--every", "300",
         "--repeat", "1", "--postgres"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    stores = [line.split()[0] for line in out.stdout.splitlines() if line.startswith(("sqlite ", "postgresql "))]
    assert stores == ["sqlite"] * 4 + ["postgresql"] * 4
    assert "verification: ok" in out.stdout
