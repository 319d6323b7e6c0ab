"""A review judges what a change adds: findings are compared with the base revision's (or a committed baseline) by
tool, rule, file and code, never by line number. Real ruff and bandit, in the sandbox, on a real git repository."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from actors.tools import baseline as baselines
from actors.tools import review as reviews
from actors.tools.git import Git, GitError
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace
from governance.confinement import SandboxTable

BOX = Sandbox(SandboxTable().terms(network=False, wall_time_s=120.0))
LEGACY = 'import subprocess\n\n\ndef listing(path):\n    return subprocess.call("ls " + path, shell=True)\n'


def commit(repo: Path, message: str) -> str:
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", message], check=True, capture_output=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Workspace, str]:
    """A repository whose base has a high bandit finding in legacy.py; the change moves it down and adds one."""
    tree = tmp_path / "requests" / "r-1"
    tree.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    (tree / "legacy.py").write_text(LEGACY)
    (tree / "CHANGELOG.md").write_text("# Changes\n")
    base = commit(tree, "base")
    (tree / "legacy.py").write_text('"""Legacy helpers."""\n# moved down by this change\n\n' + LEGACY)
    (tree / "fresh.py").write_text('import subprocess\n\n\ndef run(cmd):\n    return subprocess.run(cmd, shell=True)\n')
    (tree / "CHANGELOG.md").write_text("# Changes\n\n- fresh.py\n")
    commit(tree, "change")
    return Workspace(tree), base


def test_a_finding_moved_by_the_change_is_known_and_one_it_adds_is_new(repo: tuple[Workspace, str]) -> None:
    tree, base = repo
    head = reviews.review(tree, ".", box=BOX)
    snapshot = Git(tree, ".", BOX).snapshot(base, reviews.BASE_SNAPSHOT)
    try:
        before = reviews.review(tree, reviews.BASE_SNAPSHOT, box=BOX)
    finally:
        subprocess.run(["rm", "-rf", str(snapshot)], check=True)
    shell = [f for f in head.findings if f.tool == "bandit" and f.severity == "high"]
    assert sorted((f.path, f.line) for f in shell) == [("fresh.py", 5), ("legacy.py", 8)]
    assert [(f.path, f.line) for f in before.findings if f.tool == "bandit" and f.severity == "high"] == [
        ("legacy.py", 5)]
    marks = dict(zip((f.path for f in shell), baselines.known((f.fingerprint for f in shell),
                                                             Counter(f.fingerprint for f in before.findings)),
                     strict=True))
    assert marks == {"legacy.py": True, "fresh.py": False}
    assert not (tree.root / ".council-base.index").exists()  # the snapshot's own index is gone
    status = subprocess.run(["git", "-C", str(tree.root), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""  # the repository's index, HEAD and files are as they were


def test_a_second_copy_of_a_known_line_is_new() -> None:
    assert baselines.known(["a", "a", "b"], Counter({"a": 1})) == [True, False, False]


def test_a_committed_baseline_lists_what_was_there_and_a_broken_one_says_how_to_fix_it(
        repo: tuple[Workspace, str], tmp_path: Path) -> None:
    tree, _ = repo
    found = reviews.review(tree, ".", box=BOX)
    path = tmp_path / "review-baseline.json"
    written = baselines.write(path, found.findings, [f.fingerprint for f in found.findings],
                              [f.message for f in found.findings])
    assert written == len(found.findings) > 0
    assert baselines.known([f.fingerprint for f in found.findings], baselines.load(path)) == [True] * written
    assert json.loads(path.read_text())["version"] == 1
    path.write_text('{"version": 1, "findings": [{"tool": "ruff"}]}')
    with pytest.raises(baselines.BaselineError, match="without a fingerprint; write it again with `council review "):
        baselines.load(path)
    path.write_text("not json")
    with pytest.raises(baselines.BaselineError, match="cannot be read"):
        baselines.load(path)


def test_a_snapshot_takes_only_a_commit_id(repo: tuple[Workspace, str]) -> None:
    tree, _ = repo
    with pytest.raises(GitError, match="is not a commit id"):
        Git(tree, ".", BOX).snapshot("--output=/tmp/x", reviews.BASE_SNAPSHOT)
