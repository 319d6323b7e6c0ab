"""The command cgroups: a sweep removes those a dead process left behind, never one a live agent just made.

Needs a pids controller this process may write (root, as in CI); skipped where there is none.
"""

from __future__ import annotations

import subprocess

import pytest

from actors.tools import limits
from actors.tools.limits import PARENT, ProcessCap

pytestmark = pytest.mark.skipif(ProcessCap.hierarchy() is None, reason="no writable pids cgroup controller here")


def test_a_sweep_removes_what_dead_processes_left_and_spares_a_live_agents_empty_cgroup() -> None:
    mine = ProcessCap.make(16)
    assert mine is not None
    root = ProcessCap.hierarchy()
    assert root is not None
    ended = subprocess.Popen(["true"])  # a process that has ended: its pid names a dead maker
    ended.wait()
    left = root / PARENT / f"cmd-{ended.pid}-0123456789abcdef"
    left.mkdir()
    try:
        assert limits.sweep() >= 1
        assert not left.exists()  # its maker is dead
        assert mine.path.is_dir()  # empty, but its maker (this process) is alive: another agent's sweep spares it
        done = subprocess.run(mine.enter(["true"]), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    finally:
        mine.close()
        if left.exists():
            left.rmdir()
    assert not mine.path.exists()
