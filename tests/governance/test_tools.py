"""The repository tools behind the gate: git commits with the warrant as a trailer, patches, test runs — real git,
real pytest, every effect recorded."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from governance_support import BOX, Council, make_council

from actors.tools import commands
from actors.tools.gated import ActionRefused
from actors.tools.git import Git, GitError, Identity
from actors.tools.testing import parse_junit
from actors.tools.workspace import Workspace, WorkspaceError


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    git = Git(Workspace(tmp_path / "workspace"), box=BOX)
    git.run("init", "-q", "-b", "main")
    (tmp_path / "workspace" / "src").mkdir()
    (tmp_path / "workspace" / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    git.commit("initial", Identity("seed", "seed@example.invalid", "none"))
    return council


def test_a_commit_is_by_the_agent_and_names_its_warrant(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    tools = council.tools("a1", grant.warrant_id, "t-commit")
    tools.write_file("src/more.py", "X = 1\n")
    done = tools.commit("add more", Identity("agent a1", "a1@council.invalid", grant.warrant_id), branch="feature/more")
    log = subprocess.run(["git", "log", "-1", "--format=%an <%ae>%n%B"], cwd=council.home / "workspace",
                         capture_output=True, text=True, check=True).stdout
    assert log.startswith("agent a1 <a1@council.invalid>") and f"Council-Warrant: {grant.warrant_id}" in log
    assert Git(Workspace(council.home / "workspace"), box=BOX).current_branch() == "feature/more"
    committed = [e for e in council.events(f"warrant-{grant.warrant_id}") if type(e).__name__ == "GitCommitted"]
    assert [c.commit for c in committed] == [done["commit"]] and committed[0].files == ["src/more.py"]


def test_a_patch_is_applied_whole_and_recorded_with_digests_before_and_after(council: Council) -> None:
    ws = council.home / "workspace"
    (ws / "src" / "app.py").write_text("def add(a, b):\n    return b + a\n")
    diff = Git(Workspace(ws), box=BOX).diff()
    subprocess.run(["git", "checkout", "-q", "--", "src/app.py"], cwd=ws, check=True)
    before = hashlib.sha256((ws / "src" / "app.py").read_bytes()).hexdigest()
    grant = council.warrant("a1", "coder")
    assert council.tools("a1", grant.warrant_id, "t-patch").patch(diff)["files"] == ["src/app.py"]
    assert "return b + a" in (ws / "src" / "app.py").read_text()
    [changed] = [e for e in council.events(f"warrant-{grant.warrant_id}") if type(e).__name__ == "FileChanged"]
    after = hashlib.sha256((ws / "src" / "app.py").read_bytes()).hexdigest()
    assert changed.before == before and changed.after == after


def test_a_patch_touching_a_forbidden_path_is_denied_and_nothing_changes(council: Council) -> None:
    ws = council.home / "workspace"
    (ws / "src" / "app.py").write_text("changed\n")
    (ws / "README").write_text("new\n")
    subprocess.run(["git", "add", "-N", "README"], cwd=ws, check=True)
    diff = Git(Workspace(ws), box=BOX).diff()
    subprocess.run(["git", "checkout", "-q", "--", "src/app.py"], cwd=ws, check=True)
    (ws / "README").unlink()
    subprocess.run(["git", "reset", "-q"], cwd=ws, check=True)
    grant = council.warrant("a1", "coder")
    with pytest.raises(ActionRefused, match="README"):
        council.tools("a1", grant.warrant_id, "t-bad-patch").patch(diff)
    assert (ws / "src" / "app.py").read_text().startswith("def add") and not (ws / "README").exists()
    with pytest.raises(GitError):
        council.tools("a1", grant.warrant_id, "t-garbage").patch("this is not a diff\n")


def test_a_test_run_is_reported_from_its_junit_xml(council: Council) -> None:
    ws = council.home / "workspace"
    (ws / "tests").mkdir()
    (ws / "tests" / "test_app.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parents[1] / 'src'))\n"
        "from app import add\n\ndef test_adds():\n    assert add(1, 2) == 3\n\n"
        "def test_wrong():\n    assert add(1, 1) == 3\n")
    grant = council.warrant("a1", "coder")
    result = council.tools("a1", grant.warrant_id, "t-tests").run_tests(args=["tests"])
    assert (result["passed"], result["failed"], result["ok"]) == (1, 1, False)
    [report] = [e for e in council.events(f"warrant-{grant.warrant_id}") if type(e).__name__ == "TestsReported"]
    assert report.failures == ["tests.test_app::test_wrong"] and report.report_digest
    assert not list(ws.glob(".council-junit-*.xml"))


def test_junit_that_is_not_xml_is_refused() -> None:
    with pytest.raises(WorkspaceError, match="not JUnit XML"):
        parse_junit(b"<testsuite")


def test_commands_are_argument_lists_with_a_timeout_and_a_digest_of_all_output(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    done = commands.run(ws, ["python3", "-c", "print('x' * 10000)"], tail=100, box=BOX)
    digest = hashlib.sha256(("x" * 10000 + "\n").encode() + b"\0").hexdigest()
    assert len(done.stdout) == 100 and done.output_digest == digest
    with pytest.raises(WorkspaceError, match=r"ran longer than 0\.5 s \(wall time\)"):
        commands.run(ws, ["python3", "-c", "import time; time.sleep(5)"], timeout=0.5, box=BOX)
    with pytest.raises(WorkspaceError, match="non-empty list"):
        commands.run(ws, "rm -rf /", box=BOX)  # type: ignore[arg-type]
    with pytest.raises(GitError, match="branch name"):
        Git(ws, box=BOX).branch("--force")


def test_deploys_switch_current_atomically_and_a_failed_health_check_rolls_back(council: Council) -> None:
    ws = council.home / "workspace"
    (ws / "dist").mkdir()
    grant = council.warrant("d1", "deployer", task="t-staging")
    tools = council.tools("d1", grant.warrant_id, "t-staging")
    for version in ("v1", "v2"):
        (ws / "dist" / "app.tar").write_text(version)
        first = tools.deploy("dist/app.tar", "staging", health=["python3", "-c", "print('ok')"])
    current = ws / ".deployments" / "staging" / "current"
    assert current.is_symlink() and (current / "app.tar").read_text() == "v2" and first["previous"]
    good = os.readlink(current)
    (ws / "dist" / "app.tar").write_text("v3, broken")
    check = ["python3", "-c", "import sys, pathlib; sys.exit('broken' in pathlib.Path('app.tar').read_text())"]
    with pytest.raises(Exception, match=r"failed its health check in staging .* rolled back to"):
        tools.deploy("dist/app.tar", "staging", health=check)
    assert os.readlink(current) == good and (current / "app.tar").read_text() == "v2"
    outcomes = [e for e in council.events(f"warrant-{grant.warrant_id}") if type(e).__name__ == "ActionCompleted"]
    assert [o.ok for o in outcomes] == [True, True, False] and "rolled back" in outcomes[-1].error
    assert len(list((ws / ".deployments" / "staging" / "releases").iterdir())) == 3  # kept for the record


def test_a_commands_output_is_kept_as_a_digest_with_its_outcome(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    done = council.tools("a1", grant.warrant_id, "t-echo").run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"], ".")
    [completed] = [e for e in council.events(f"warrant-{grant.warrant_id}") if type(e).__name__ == "ActionCompleted"]
    assert completed.output_digest == hashlib.sha256(b"out\n\0err\n").hexdigest() == done["output_digest"]
