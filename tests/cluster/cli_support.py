"""Running the `council` command line as a user would: a fresh process, no COUNCIL_* or RAY_ADDRESS from the
test's shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def council(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``council ARGS`` in ``cwd``; its exit code and output."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("COUNCIL_", "RAY_ADDRESS"))}
    environ.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=environ)
