"""A request's own copy of the repository it works on: ``requests/<request_id>/`` in the workspace.

Agents never touch the repository they were pointed at. Each request gets a git clone of it (a
repository at its top level) or, for a directory that is not one, a copy of its files committed as
a snapshot. Changes in the source's working tree that are not committed yet (tracked edits and
new files git does not ignore) are carried into the clone and committed on top, so the pipeline
checks what the developer sees. Every later path an agent names is relative to this tree and
confined to it (:class:`actors.tools.workspace.Workspace`). Git runs in the sandbox with the new
tree as its only writable place and the source readable: a checkout writes nothing anywhere else.

The base a pipeline compares against is, in order: the revision asked for; the source's HEAD when
working-tree changes were carried; HEAD's parent; none (a snapshot, or a first commit: every file
is new).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from actors.tools import commands
from actors.tools.git import Git, Identity
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError

REQUEST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SKIPPED = {".git", "__pycache__", ".venv", "venv", ".tox", ".nox", "dist", "build", ".pytest_cache", ".ruff_cache",
           ".mypy_cache", ".council", ".deployments", "node_modules"}
"""Directories a snapshot of a plain directory leaves out: history, caches, outputs, environments."""
SNAPSHOT = Identity("agent-council", "council@agent-council.invalid", "")
"""Who commits a snapshot or carried changes: the council itself, under no warrant (no agent acted)."""


@dataclass(frozen=True)
class Checkout:
    """Where a request's tree is, what it was made from, and what to compare it with."""

    path: str
    """The tree, relative to the workspace root (``requests/<request_id>``)."""
    source: str
    commit: str
    base: str | None
    carried: list[str]
    """Files taken from the source's working tree (uncommitted changes, or the whole snapshot)."""


def tree_of(request_id: str) -> str:
    """The path of a request's tree relative to the workspace root."""
    if not REQUEST.match(request_id or ""):
        raise WorkspaceError(f"{request_id!r} is not a request id")
    return f"requests/{request_id}"


def prepare(workspace: Workspace, request_id: str, source: str | Path, base: str | None = None, *,
            box: Sandbox, empty_ok: bool = False) -> Checkout:
    """Make ``request_id``'s tree from ``source``, running git in ``box``; idempotent: a tree already made is
    described, not made again. A plain directory with no files is refused, unless ``empty_ok`` (a request that
    starts from nothing): then the tree starts with an empty commit."""
    if base is not None and (not base or base.startswith("-")):
        raise WorkspaceError(f"{base!r} is not a revision; give a branch, tag or commit id")
    origin = Path(source).expanduser().resolve()
    if not origin.is_dir():
        raise WorkspaceError(f"{source} is not a directory; give the path of the repository to run the pipeline on")
    relative = tree_of(request_id)
    target = workspace.path(relative)
    marker = target / ".git" / "council-checkout"
    if marker.exists():
        commit, _, rest = marker.read_text().partition("\n")
        recorded_base, _, carried = rest.partition("\n")
        return Checkout(relative, str(origin), commit, recorded_base or None, [c for c in carried.split("\0") if c])
    if target.exists():
        shutil.rmtree(target)  # a tree left half-made by a crash: made again from the start
    target.mkdir(parents=True)
    tree, box = Workspace(target), box.reading(origin, *_linked_git_data(origin)).for_git()
    try:
        if _is_repository_root(tree, origin, box):
            files, default_base = _clone(tree, origin, box)
        else:
            files, default_base = _snapshot(tree, origin, box, empty_ok), None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    git = Git(tree, ".", box)
    commit = git.head()
    chosen = default_base
    if base is not None:
        found = commands.run(tree, ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], ".", 30, box=box)
        if found.returncode != 0:
            # the clone knows the source's branches as origin/<name>
            found = commands.run(tree, ["git", "rev-parse", "--verify", "--quiet", f"origin/{base}^{{commit}}"],
                                 ".", 30, box=box)
        if found.returncode != 0:
            shutil.rmtree(target)
            raise WorkspaceError(f"the base {base!r} is not a revision of {origin}; give a branch, tag or commit id")
        chosen = found.stdout.strip()
    marker.write_text(f"{commit}\n{chosen or ''}\n{chr(0).join(files)}")
    return Checkout(relative, str(origin), commit, chosen, files)


def _linked_git_data(origin: Path) -> list[Path]:
    """Where a linked worktree's git data lives, outside it (``git worktree add``: ``.git`` is a file naming its
    git directory, which names the repository's common one), so git in the sandbox can read it; none otherwise."""
    dotgit = origin / ".git"
    if dotgit.is_symlink() or not dotgit.is_file():
        return []
    text = dotgit.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return []
    gitdir = (origin / text.removeprefix("gitdir:").strip()).resolve()
    if not gitdir.is_dir():
        return []
    found = [gitdir]
    common = gitdir / "commondir"
    if common.is_file():
        shared = (gitdir / common.read_text(errors="replace").strip()).resolve()
        if shared.is_dir():
            found.append(shared)
    return found


def _is_repository_root(tree: Workspace, origin: Path, box: Sandbox) -> bool:
    done = commands.run(tree, ["git", "-C", str(origin), "rev-parse", "--show-toplevel"], ".", 30, box=box)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve() == origin


def _clone(tree: Workspace, origin: Path, box: Sandbox) -> tuple[list[str], str | None]:
    """Clone ``origin`` into the (empty) tree and carry its uncommitted changes; return (files carried, the default
    base)."""
    done = commands.run(tree, ["git", "clone", "--quiet", "--no-hardlinks", "--", str(origin), "."], ".", 300, box=box)
    if done.returncode != 0:
        raise WorkspaceError(f"git clone of {origin} failed: {done.stderr.strip()[-300:]}")
    git = Git(tree, ".", box)
    head = git.head()
    # --no-optional-locks: the source is read-only here; git must not try to refresh its index.
    source = ["git", "--no-optional-locks", "-C", str(origin)]
    diff = commands.run(tree, [*source, "diff", "--binary", "HEAD", "--"], ".", 60, tail=1 << 30, box=box)
    untracked = commands.run(tree, [*source, "ls-files", "--others", "--exclude-standard", "-z"], ".", 60,
                             tail=1 << 30, box=box)
    if diff.stdout.strip():
        git.apply(diff.stdout)
    for name in (n for n in untracked.stdout.split("\0") if n):
        _copy_file(origin / name, tree.path(name), origin)
    if git.run("status", "--porcelain").stdout.strip():
        _, carried = git.commit(f"Working tree of {origin.name}: changes not yet committed", SNAPSHOT)
        return sorted(carried), head  # what the commit holds, not what was asked for
    parent = commands.run(tree, ["git", "rev-parse", "--verify", "--quiet", "HEAD^"], ".", 30, box=box)
    return [], parent.stdout.strip() if parent.returncode == 0 else None


def _snapshot(tree: Workspace, origin: Path, box: Sandbox, empty_ok: bool = False) -> list[str]:
    """Copy the files of a plain directory into the (empty) tree and commit them; return what was copied (an empty
    commit, when there is nothing and ``empty_ok``)."""
    target = tree.root
    copied = 0
    for folder, dirs, files in os.walk(origin):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.endswith(".egg-info"))
        for name in sorted(f for f in files if f != ".git"):  # a worktree's link to git data it cannot reach
            path = Path(folder) / name
            copied += _copy_file(path, target / path.relative_to(origin).as_posix(), origin)
    git = Git(tree, ".", box)
    git.run("init", "-q", "-b", "main")
    if not copied or not git.run("status", "--porcelain").stdout.strip():
        if not empty_ok:
            raise WorkspaceError(f"{origin} has no files to run the pipeline on")
        git.run("commit", "-q", "--allow-empty", "--no-verify", "-m", f"The empty start of {origin.name}",
                identity=SNAPSHOT)
        return []
    _, committed = git.commit(f"Snapshot of {origin.name}", SNAPSHOT)
    return sorted(committed)  # the directory's own .gitignore applies: ignored files are not in the snapshot


def _copy_file(path: Path, destination: Path, origin: Path) -> bool:
    """Copy one regular file; a symbolic link that leads out of ``origin`` is left behind."""
    if path.is_symlink() and origin not in path.resolve().parents:
        return False
    if not path.is_file():
        return False
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, destination)
    return True
