"""The pipeline's steps run again after a crash: what an earlier attempt completed is not redone, its results come
back from what it recorded, and a step that stopped halfway finishes the rest — real git, pytest, ruff and builds."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest
from governance_support import BOX, Council, make_council

from actors.pipeline import steps
from actors.pipeline.results import BuildResult, Release
from actors.tools.ci import CiTools
from actors.tools.commands import Interrupted
from actors.tools.gated import CannotReplay
from actors.tools.git import Git, Identity
from actors.tools.workspace import Workspace, WorkspaceError
from events import streams
from events.catalogue import Artefact, TaskCompleted

APP = "import os\n\n\ndef add(a, b):\n    return a + b\n"
TEST = "from src.app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "app"
version = "1.0"

[tool.hatch.build.targets.wheel]
packages = ["src"]
"""


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    ws = tmp_path / "workspace"
    for path, text in {"src/__init__.py": "", "src/app.py": APP, "tests/test_app.py": TEST, "pyproject.toml": PYPROJECT,
                       ".gitignore": "dist/\n__pycache__/\n"}.items():
        (ws / path).parent.mkdir(parents=True, exist_ok=True)
        (ws / path).write_text(text)
    git = Git(Workspace(ws), box=BOX)
    git.run("init", "-q", "-b", "main")
    git.commit("initial", Identity("seed", "seed@example.invalid", ""))
    return council


def tools(council: Council, warrant_id: str, task: str, agent: str = "a1") -> CiTools:
    """A fresh attempt's tools: nothing carried over in memory from an earlier attempt."""
    return CiTools(council.gatekeeper(agent), warrant_id, task, Workspace(council.home / "workspace"),
                   Workspace(council.home / "environments"), history=council.store.read_stream)


def kinds(council: Council, warrant_id: str, kind: str) -> list:
    return [e for e in council.events(f"warrant-{warrant_id}") if type(e).__name__ == kind]


def test_a_review_that_stopped_after_applying_its_fixes_commits_them_on_the_next_attempt(council: Council) -> None:
    grant = council.warrant("a1", "coder", task="t-review")
    first = tools(council, grant.warrant_id, "t-review")
    with first.named("lint"):
        diff = first.lint_fixes(".")
    with first.named("lint-patch"):
        first.patch(diff, ".", strip=0)
    # the agent dies here: the fix is applied, not committed
    done = steps.review({"threshold": "high"}, tools(council, grant.warrant_id, "t-review"))
    assert done.fix_commit and done.blocking == []
    log = subprocess.run(["git", "log", "-1", "--format=%an%n%B", "--stat"], cwd=council.home / "workspace",
                         capture_output=True, text=True, check=True).stdout
    assert log.startswith("a1") and "ruff's safe automatic fixes" in log and "src/app.py" in log
    assert "import os" not in (council.home / "workspace" / "src" / "app.py").read_text()
    assert len(kinds(council, grant.warrant_id, "FileChanged")) == 1  # the patch was applied once
    again = steps.review({"threshold": "high"}, tools(council, grant.warrant_id, "t-review"))
    assert again == done  # a third attempt finds the same commit, and the same review, in the log
    assert len(kinds(council, grant.warrant_id, "GitCommitted")) == 1


def test_a_finished_test_run_is_not_run_again_and_its_counts_come_from_the_log(council: Council) -> None:
    grant = council.warrant("a1", "coder", task="t-test")
    first = tools(council, grant.warrant_id, "t-test").run_tests(".", ["tests"], coverage=True)
    again = tools(council, grant.warrant_id, "t-test").run_tests(".", ["tests"], coverage=True)
    assert first["passed"] == again["passed"] == 1 and again["already_done"] is True
    assert again["coverage_total"] == first["coverage_total"] is not None
    assert len(kinds(council, grant.warrant_id, "TestsReported")) == 1


def test_a_finished_build_is_not_built_again(council: Council) -> None:
    grant = council.warrant("a1", "builder", task="t-build")
    first = tools(council, grant.warrant_id, "t-build").build(".", "dist")
    built = {p.name: p.stat().st_mtime_ns for p in (council.home / "workspace" / "dist").iterdir()}
    again = tools(council, grant.warrant_id, "t-build").build(".", "dist")
    assert again == first and first.reproducible and first.artefacts  # rebuilt from build.reported, not built
    assert {p.name: p.stat().st_mtime_ns for p in (council.home / "workspace" / "dist").iterdir()} == built
    assert len(kinds(council, grant.warrant_id, "BuildReported")) == 1


def test_a_finished_deploy_is_not_released_again_and_its_step_returns_the_same_release(council: Council) -> None:
    content = b"the release"
    (council.home / "workspace" / "dist").mkdir()
    (council.home / "workspace" / "dist" / "app.tar").write_bytes(content)
    artefact = Artefact(name="app.tar", path="dist/app.tar", sha256=hashlib.sha256(content).hexdigest(),
                        size=len(content))
    built = BuildResult(artefacts=[artefact], reproducible=True, commit=None, source_date_epoch=0)
    council.store.append(streams.task("t-build"), [TaskCompleted(task_id="t-build", agent_id="b1", attempt=1,
                                                                 result=msgspec.to_builtins(built))])
    grant = council.warrant("d1", "deployer", task="t-staging")
    inputs = {"build": "t-build", "environment": "staging"}
    first = steps.deploy(inputs, tools(council, grant.warrant_id, "t-staging", "d1"))
    current = council.home / "environments" / "staging" / "current"
    assert first == Release(environment="staging", release=first.release, artefact="app.tar",
                            sha256=artefact.sha256, path=str(current))
    again = steps.deploy(inputs, tools(council, grant.warrant_id, "t-staging", "d1"))
    assert again == first, "the replayed release is the one deployed, rebuilt from release.deployed"
    assert len(kinds(council, grant.warrant_id, "ReleaseDeployed")) == 1
    assert len(list((council.home / "environments" / "staging" / "releases").iterdir())) == 1


def test_an_action_that_failed_in_an_earlier_attempt_is_not_run_again_and_the_step_stops(council: Council) -> None:
    grant = council.warrant("a1", "coder", task="t-fail")
    with pytest.raises(WorkspaceError):
        tools(council, grant.warrant_id, "t-fail").run_tests("tests/missing", ["."])
    (council.home / "workspace" / "tests" / "missing").mkdir()  # it could run now; its key is spent all the same
    with pytest.raises(CannotReplay, match=r"^command.run .* \(t-fail#1\) failed in an earlier attempt of this task"):
        tools(council, grant.warrant_id, "t-fail").run_tests("tests/missing", ["."])
    assert len(kinds(council, grant.warrant_id, "ActionAuthorized")) == 1
    assert kinds(council, grant.warrant_id, "TestsReported") == []


def test_a_command_cut_short_from_outside_records_no_outcome_and_runs_again(council: Council) -> None:
    grant = council.warrant("a1", "coder", task="t-cut")
    waiter = [sys.executable, "-c", "import os, time\nwhile not os.path.exists('go'): time.sleep(0.05)"]

    def kill_the_box() -> None:  # as when the agent's process is stopped: its children go first
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except (OSError, IndexError):
                    continue
                if int(stat[1]) == os.getpid() and b"bwrap" in cmdline:
                    os.kill(int(pid), signal.SIGKILL)
                    return
            time.sleep(0.05)

    threading.Thread(target=kill_the_box).start()
    with pytest.raises(Interrupted):
        tools(council, grant.warrant_id, "t-cut").run(waiter)
    assert kinds(council, grant.warrant_id, "ActionCompleted") == []  # cut short: no outcome, so no failure
    (council.home / "workspace" / "go").write_text("")
    done = tools(council, grant.warrant_id, "t-cut").run(waiter)  # the next attempt runs it again
    assert done["returncode"] == 0 and [c.ok for c in kinds(council, grant.warrant_id, "ActionCompleted")] == [True]


def test_a_build_that_failed_in_an_earlier_attempt_is_not_built_again(council: Council) -> None:
    grant = council.warrant("a1", "builder", task="t-build")
    with pytest.raises(WorkspaceError):
        tools(council, grant.warrant_id, "t-build").build("missing", "dist")
    with pytest.raises(CannotReplay, match=r"^build .* \(t-build#1\) failed in an earlier attempt"):
        tools(council, grant.warrant_id, "t-build").build("missing", "dist")
    assert kinds(council, grant.warrant_id, "BuildReported") == []


def test_an_action_whose_report_was_never_appended_cannot_be_replayed(council: Council) -> None:
    grant = council.warrant("a1", "coder", task="t-lost")
    first = tools(council, grant.warrant_id, "t-lost")
    first._flush = lambda: None  # type: ignore[method-assign]  # the agent dies after action.completed, before its report
    assert first.run_tests(".", ["tests"])["passed"] == 1
    assert kinds(council, grant.warrant_id, "TestsReported") == []
    with pytest.raises(CannotReplay, match=r"\(t-lost#1\) left no record to rebuild its result from"):
        tools(council, grant.warrant_id, "t-lost").run_tests(".", ["tests"])


def test_a_command_that_only_reads_is_run_again_for_its_result_even_after_it_failed(council: Council) -> None:
    grant = council.warrant("a1", "coder", task="t-read")
    argv = ["git", "status", "--porcelain"]
    with pytest.raises(WorkspaceError):
        tools(council, grant.warrant_id, "t-read").run(argv, "tests/missing", reads_only=True)
    (council.home / "workspace" / "tests" / "missing").mkdir()
    again = tools(council, grant.warrant_id, "t-read").run(argv, "tests/missing", reads_only=True)
    assert again["already_done"] is True and again["returncode"] == 0 and "stdout" in again
