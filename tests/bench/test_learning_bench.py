"""bench/learning.py still runs, learns, and checks its logs (a tiny workload; figures are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_learning_benchmark_runs_both_passes_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "learning.py"), "--requests", "8"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "pass 2 starts from a fresh log holding pass 1's 8 lessons and 8 strategies" in out.stdout
    assert "model-swap:code.write:openai:gpt-sloppy#1 → openai:gpt-steady" in out.stdout
    assert "lease:ci.build#1 → 0.5" in out.stdout and "checks: ok" in out.stdout
