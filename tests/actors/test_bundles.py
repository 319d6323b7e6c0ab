"""A request's tree carried between nodes as git bundles (real git, in the real sandbox): a copy fetched whole and
then in part, commits pushed back only as fast-forwards, and every bad input refused with the canonical tree left
as it was — a stale push, a diverging one, a damaged or oversize bundle, an unknown request, a path that escapes."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from governance_support import BOX

from actors.depot import Depot, Fetched, LostWork, UnknownRequest
from actors.tools.bundles import (
    MARKER,
    BundleError,
    BundleTooLarge,
    Carried,
    StaleTree,
    copied,
    holds,
    pack,
    take,
)
from actors.tools.checkout import prepare
from actors.tools.git import Git, Identity
from actors.tools.workspace import Workspace, WorkspaceError

AGENT = Identity.agent("coder-1", "w-1")
_GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.update(_GIT_ENV, HOME=str(cwd))
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def council(tmp_path: Path) -> tuple[Depot, Path]:
    """A depot over a workspace holding request r1's tree (two commits on main); the canonical tree's path."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "app.py").write_text("A = 1\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "first")
    (src / "app.py").write_text("A = 2\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "second")
    workspace = tmp_path / "council" / "workspace"
    workspace.mkdir(parents=True)
    prepare(Workspace(workspace), "r1", src, box=BOX)
    return Depot(workspace, lambda: BOX), workspace / "requests" / "r1"


def copy_of(depot: Depot, tmp_path: Path, name: str) -> tuple[Git, str]:
    """A copy of r1 on another 'node' (its own directory), fetched whole; its git and the head it was fetched at."""
    tree = tmp_path / name / "requests" / "r1"
    carried = depot.fetch("r1")
    return take(tree, BOX, carried), carried.head


def commit(copy: Git, name: str, text: str) -> str:
    copy.workspace.write(name, text.encode())
    sha, _ = copy.commit(f"add {name}", AGENT)
    return sha


def head(tree: Path) -> str:
    return git(tree, "rev-parse", "HEAD").strip()


def test_a_copy_is_fetched_whole_committed_in_and_pushed_back_as_a_fast_forward(council: tuple[Depot, Path],
                                                                                   tmp_path: Path) -> None:
    depot, canonical = council
    copy, fetched = copy_of(depot, tmp_path, "node-b")
    assert head(copy.workspace.root) == fetched == head(canonical) and copied(copy.workspace.root)
    assert (copy.workspace.root / "app.py").read_text() == "A = 2\n"
    assert git(copy.workspace.root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    new = commit(copy, "feature.py", "F = 1\n")
    carried = pack(copy, fetched)
    assert carried.head == new and carried.branch == "main" and carried.bundle
    assert depot.push("r1", carried, fetched) == new
    assert head(canonical) == new and (canonical / "feature.py").read_text() == "F = 1\n"  # working tree too
    assert git(canonical, "status", "--porcelain").strip() == ""
    assert "Council-Warrant: w-1" in git(canonical, "log", "-1", "--format=%B")
    # the same push again (a retry after the depot was restarted mid-call) changes nothing
    assert depot.push("r1", carried, fetched) == new and head(canonical) == new


def test_a_copy_is_brought_up_to_date_with_only_what_it_lacks(council: tuple[Depot, Path], tmp_path: Path) -> None:
    depot, _ = council
    first, at = copy_of(depot, tmp_path, "node-b")
    second, _ = copy_of(depot, tmp_path, "node-c")
    commit(second, "b.py", "B = 1\n")
    pushed = depot.push("r1", pack(second, at), at)
    whole, part = depot.fetch("r1"), depot.fetch("r1", at)
    assert part.head == pushed and 0 < len(part.bundle) < len(whole.bundle)
    (first.workspace.root / "leftover.txt").write_text("from an attempt that failed\n")
    take(first.workspace.root, BOX, part)
    assert head(first.workspace.root) == pushed and (first.workspace.root / "b.py").is_file()
    assert not (first.workspace.root / "leftover.txt").exists()  # the copy is what the depot has, nothing more
    assert depot.fetch("r1", pushed).bundle == b""  # up to date: nothing travels
    assert depot.fetch("r1", "0" * 40).bundle  # a head the depot never saw: the whole branch


def test_a_push_from_a_stale_tree_is_refused_and_leaves_the_tree_as_it_was(council: tuple[Depot, Path],
                                                                             tmp_path: Path) -> None:
    depot, canonical = council
    first, at = copy_of(depot, tmp_path, "node-b")
    second, _ = copy_of(depot, tmp_path, "node-c")
    winner = commit(first, "a.py", "A = 3\n")
    commit(second, "b.py", "B = 1\n")
    depot.push("r1", pack(first, at), at)
    with pytest.raises(StaleTree, match=r"moved on to .* tried again") as refused:
        depot.push("r1", pack(second, at), at)
    assert refused.value.kind == "lost"  # tried again, on the new tree, as a fresh run
    assert head(canonical) == winner and not (canonical / "b.py").exists()
    # the loser, brought up to date, pushes its next commit fine
    take(second.workspace.root, BOX, depot.fetch("r1", head(second.workspace.root)))
    assert head(second.workspace.root) == winner
    later = commit(second, "b.py", "B = 2\n")
    assert depot.push("r1", pack(second, winner), winner) == later


def test_a_push_that_rewrites_history_is_refused(council: tuple[Depot, Path], tmp_path: Path) -> None:
    depot, canonical = council
    copy, at = copy_of(depot, tmp_path, "node-b")
    before = head(canonical)
    copy.run("reset", "-q", "--hard", "HEAD~1")
    commit(copy, "other.py", "O = 1\n")
    with pytest.raises(StaleTree, match="does not descend from"):
        depot.push("r1", pack(copy, at), at)
    assert head(canonical) == before and not (canonical / "other.py").exists()


def test_a_damaged_bundle_or_one_that_lies_about_its_head_is_refused(council: tuple[Depot, Path],
                                                                       tmp_path: Path) -> None:
    depot, canonical = council
    copy, at = copy_of(depot, tmp_path, "node-b")
    new = commit(copy, "feature.py", "F = 1\n")
    carried = pack(copy, at)
    before = head(canonical)
    damaged = bytearray(carried.bundle)
    damaged[len(damaged) // 2:] = bytes(len(damaged) - len(damaged) // 2)
    for bad in (Carried("main", new, bytes(damaged)), Carried("main", new, carried.bundle[:40]),
                Carried("main", new, b"not a bundle at all\n")):
        with pytest.raises(BundleError, match="cannot be taken"):
            depot.push("r1", bad, at)
    with pytest.raises(BundleError, match="not at"):
        depot.push("r1", Carried("main", "1" * 40, carried.bundle), at)
    with pytest.raises(BundleError, match="not a branch and a commit id"):
        depot.push("r1", Carried("-main", new, carried.bundle), at)
    with pytest.raises(BundleError, match="not a commit id"):
        depot.push("r1", carried, "HEAD~1")
    assert head(canonical) == before and not (canonical / "feature.py").exists()
    assert not list((canonical / ".git" / "council-bundles").iterdir())  # no bundle left behind
    assert depot.push("r1", carried, at) == new  # the good one still goes in


def test_a_bundle_over_the_limit_is_refused_either_way(council: tuple[Depot, Path], tmp_path: Path) -> None:
    depot, canonical = council
    small = Depot(depot.workspace.root, lambda: BOX, limit=64)
    with pytest.raises(BundleTooLarge, match="over the limit of 64") as refused:
        small.fetch("r1")
    assert refused.value.kind == "permanent"
    copy, at = copy_of(depot, tmp_path, "node-b")
    commit(copy, "feature.py", "F = 1\n")
    with pytest.raises(BundleTooLarge):
        small.push("r1", pack(copy, at), at)
    with pytest.raises(BundleTooLarge):
        pack(copy, at, limit=64)
    assert not (canonical / "feature.py").exists()


def test_unknown_requests_bad_ids_and_paths_that_escape_are_refused(council: tuple[Depot, Path],
                                                                      tmp_path: Path) -> None:
    depot, canonical = council
    with pytest.raises(UnknownRequest, match="no tree for request r2"):
        depot.fetch("r2")
    (canonical.parent / "r3").mkdir()  # a directory, but no tree made by a checkout
    with pytest.raises(UnknownRequest):
        depot.fetch("r3")
    for bad in ("../r1", "r1/../../x", "", "/etc", "-r1", "a" * 80):
        with pytest.raises(WorkspaceError):
            depot.fetch(bad)
    outside = tmp_path / "outside"
    (outside / ".git").mkdir(parents=True)
    (outside / ".git" / "council-checkout").write_text("x\n")
    (canonical.parent / "escape").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        depot.fetch("escape")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        depot.push("escape", Carried("main", "1" * 40), "1" * 40)


def test_a_copy_cut_short_is_made_again_and_unpushed_commits_are_left_behind(council: tuple[Depot, Path],
                                                                                 tmp_path: Path) -> None:
    depot, canonical = council
    tree = tmp_path / "node-b" / "requests" / "r1"
    tree.mkdir(parents=True)
    (tree / "half-written").write_text("a fetch that was killed\n")
    git(tree, "init", "-q")  # a repository, but no marker: never made whole
    carried = depot.fetch("r1")
    copy = take(tree, BOX, carried)
    assert (tree / ".git" / MARKER).is_file() and not (tree / "half-written").exists()
    assert head(tree) == head(canonical)
    refused = commit(copy, "lost.py", "L = 1\n")
    take(tree, BOX, depot.fetch("r1", refused))  # the depot never took it: the copy goes back to the depot's head
    assert head(tree) == head(canonical) and not holds(copy, refused) and holds(copy, carried.head)
    with pytest.raises(BundleError, match="lacks"):
        take(tmp_path / "node-c" / "requests" / "r1", BOX, Carried("main", refused))


def test_an_attempt_whose_earlier_commits_never_reached_the_tree_is_not_pushed(council: tuple[Depot, Path],
                                                                               tmp_path: Path) -> None:
    depot, canonical = council
    copy, at = copy_of(depot, tmp_path, "node-b")
    refused = commit(copy, "lost.py", "L = 1\n")  # an earlier attempt's commit, whose push was refused
    take(copy.workspace.root, BOX, depot.fetch("r1", refused))
    fetched = Fetched("r1", copy, "main", at)
    with pytest.raises(LostWork, match="the task is run afresh") as lost:
        fetched.push([refused])
    assert lost.value.kind == "lost" and head(canonical) == at
    assert fetched.push([at]) == at  # nothing new and nothing lost: no push at all


def test_pushes_racing_from_one_head_land_one_at_a_time_and_only_one_is_taken(council: tuple[Depot, Path],
                                                                              tmp_path: Path) -> None:
    depot, canonical = council
    copies = [copy_of(depot, tmp_path, f"node-{n}") for n in range(4)]
    at = copies[0][1]
    carried = []
    for n, (copy, _) in enumerate(copies):
        commit(copy, f"racer-{n}.py", f"R = {n}\n")
        carried.append(pack(copy, at))

    def push(one: Carried) -> str:
        try:
            return depot.push("r1", one, at)
        except StaleTree:
            return "stale"

    with ThreadPoolExecutor(4) as pool:  # the depot serves calls side by side: its tree's lock orders the pushes
        outcomes = list(pool.map(push, carried))
    taken = [o for o in outcomes if o != "stale"]
    assert len(taken) == 1 and head(canonical) == taken[0], outcomes
    assert len([p for p in canonical.iterdir() if p.name.startswith("racer-")]) == 1
    assert git(canonical, "status", "--porcelain").strip() == ""
