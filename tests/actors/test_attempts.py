"""An attempt's life while its commands run, no Ray: a running command is progress, an attempt given up has its
command killed at once, one attempt at a time works in a tree, and a failure keeps where it was raised."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from actors.agent import where
from actors.skills import Abandoned, failure_kind, reporting
from actors.tools import commands
from actors.tools.sandbox import Sandbox
from actors.tools.tree_lock import TreeBusy, holding
from actors.tools.workspace import Workspace
from governance.confinement import SandboxTable

BOX = Sandbox(SandboxTable().terms(network=False, wall_time_s=60.0))
SLEEPER = "import os, sys, time; print(os.getpid(), flush=True); os.system('sleep 30 &'); time.sleep(30)"


def test_a_running_command_reports_progress_while_it_lives(tmp_path: Path) -> None:
    beats: list[float] = []
    reporting(lambda: beats.append(time.monotonic()))
    try:
        done = commands.run(Workspace(tmp_path), [sys.executable, "-c", "import time; time.sleep(1.5)"], ".", 30,
                            box=BOX)
    finally:
        reporting(None)
    assert done.returncode == 0
    assert len(beats) >= 10 and beats[-1] - beats[0] >= 1.0  # all along, not only at the start or the end


def test_an_abandoned_attempt_has_its_command_and_everything_it_started_killed_at_once(tmp_path: Path) -> None:
    given_up = threading.Event()
    reporting(lambda: None, given_up)
    threading.Timer(0.5, given_up.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(Abandoned, match="the attempt was given up"):
            commands.run(Workspace(tmp_path), [sys.executable, "-c", SLEEPER], ".", 60, box=BOX)
    finally:
        reporting(None)
    assert time.monotonic() - started < 5  # not the command's 30 s, nor its 60 s timeout
    survivors = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith("sleep\0" + "30")]
    assert survivors == [], "a process the command started outlived it"


def test_a_command_killed_from_outside_is_cut_short_not_failed(tmp_path: Path) -> None:
    """Its agent's process being stopped kills its children first: that is no outcome of the command's own."""

    def kill_the_box() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == os.getpid()]
            boxes = [p for p in children if "bwrap" in _cmdline(p)]
            if boxes:
                os.kill(int(boxes[0]), signal.SIGKILL)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_the_box).start()
    with pytest.raises(commands.Interrupted, match="was killed by signal 9 from outside") as raised:
        commands.run(Workspace(tmp_path), [sys.executable, "-c", "import time; time.sleep(30)"], ".", 60, box=BOX)
    assert failure_kind(raised.value) == "infrastructure"
    # A command that crashes by itself failed: that is its outcome, recorded as such.
    done = commands.run(Workspace(tmp_path), [sys.executable, "-c", "import os; os.abort()"], ".", 60, box=BOX)
    assert done.returncode != 0


def test_one_attempt_at_a_time_works_in_a_tree(tmp_path: Path) -> None:
    tree = tmp_path / "requests" / "r-1"
    tree.mkdir(parents=True)
    inside = threading.Event()
    leave = threading.Event()

    def older() -> None:
        with holding(tree, 5.0):
            inside.set()
            leave.wait(10)

    first = threading.Thread(target=older)
    first.start()
    assert inside.wait(5)
    waited: list[float] = []
    busy = r"another attempt still works in r-1 after 0\.3 s"
    with pytest.raises(TreeBusy, match=busy), holding(tree, 0.3, waiting=lambda: waited.append(time.monotonic())):
        pass
    assert waited  # it said it was alive while it waited
    given_up = threading.Event()
    threading.Timer(0.2, given_up.set).start()
    with pytest.raises(Abandoned), holding(tree, 5.0, given_up=given_up.is_set):
        pass
    threading.Timer(0.2, leave.set).start()
    entered = time.monotonic()
    with holding(tree, 5.0):  # the older attempt lets go: the newer one goes in
        assert time.monotonic() - entered >= 0.1
    first.join(5)
    assert not (tree / ".lock").exists() and (tmp_path / "requests" / "r-1.lock").exists()  # beside, not inside


def test_a_failure_keeps_its_last_frames_without_secrets() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise KeyError("impact")
        deep(n - 1)

    try:
        deep(200)
    except KeyError as exc:
        api_key = "sk-" + "a" * 40
        exc.add_note(f"OPENAI_API_KEY={api_key}")
        text = where(exc)
    assert len(text) <= 4000 and text.rstrip().splitlines()[-2] == "KeyError: 'impact'"
    assert "in deep" in text and "sk-aaaa" not in text


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""
