"""A request's own copy of the repository it works on: ``requests/<request_id>/`` in the workspace.

Agents never touch the repository they were pointed at. Each request gets a git clone of it (a
repository at its top level) or, for a directory that is not one, a copy of its files committed as
a snapshot. Changes in the source's working tree that are not committed yet (tracked edits and
new files git does not ignore) are carried into the clone and committed on top, so the pipeline
checks what the developer sees. Every later path an agent names is relative to this tree and
confined to it (:class:`actors.tools.workspace.Workspace`).

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


def prepare(workspace: Workspace, request_id: str, source: str | Path, base: str | None = None) -> Checkout:
    """Make ``request_id``'s tree from ``source``; idempotent: a tree already made is described, not made again."""
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
    target.parent.mkdir(parents=True, exist_ok=True)
    if _is_repository_root(workspace, origin):
        files, default_base = _clone(workspace, origin, relative)
    else:
        files, default_base = _snapshot(workspace, origin, relative), None
    git = Git(workspace, relative)
    commit = git.head()
    chosen = default_base
    if base is not None:
        found = commands.run(workspace, ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], relative, 30)
        if found.returncode != 0:
            # the clone knows the source's branches as origin/<name>
            found = commands.run(workspace, ["git", "rev-parse", "--verify", "--quiet", f"origin/{base}^{{commit}}"],
                                 relative, 30)
        if found.returncode != 0:
            shutil.rmtree(target)
            raise WorkspaceError(f"the base {base!r} is not a revision of {origin}; give a branch, tag or commit id")
        chosen = found.stdout.strip()
    marker.write_text(f"{commit}\n{chosen or ''}\n{chr(0).join(files)}")
    return Checkout(relative, str(origin), commit, chosen, files)


def _is_repository_root(workspace: Workspace, origin: Path) -> bool:
    done = commands.run(workspace, ["git", "-C", str(origin), "rev-parse", "--show-toplevel"], ".", 30)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve() == origin


def _clone(workspace: Workspace, origin: Path, relative: str) -> tuple[list[str], str | None]:
    """Clone ``origin`` and carry its uncommitted changes; return (files carried, the default base)."""
    done = commands.run(workspace, ["git", "clone", "--quiet", "--no-hardlinks", "--", str(origin), relative], ".", 300)
    if done.returncode != 0:
        raise WorkspaceError(f"git clone of {origin} failed: {done.stderr.strip()[-300:]}")
    source = Workspace(origin)
    git = Git(workspace, relative)
    head = git.head()
    diff = commands.run(source, ["git", "diff", "--binary", "HEAD", "--"], ".", 60, tail=1 << 30)
    untracked = commands.run(source, ["git", "ls-files", "--others", "--exclude-standard", "-z"], ".", 60, tail=1 << 30)
    if diff.stdout.strip():
        git.apply(diff.stdout)
    for name in (n for n in untracked.stdout.split("\0") if n):
        _copy_file(origin / name, workspace.path(f"{relative}/{name}"), origin)
    if git.run("status", "--porcelain").stdout.strip():
        _, carried = git.commit(f"Working tree of {origin.name}: changes not yet committed", SNAPSHOT)
        return sorted(carried), head  # what the commit holds, not what was asked for
    parent = commands.run(workspace, ["git", "rev-parse", "--verify", "--quiet", "HEAD^"], relative, 30)
    return [], parent.stdout.strip() if parent.returncode == 0 else None


def _snapshot(workspace: Workspace, origin: Path, relative: str) -> list[str]:
    """Copy the files of a plain directory and commit them; return what was copied."""
    target = workspace.path(relative)
    target.mkdir(parents=True)
    copied = 0
    for folder, dirs, files in os.walk(origin):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder) / name
            copied += _copy_file(path, target / path.relative_to(origin).as_posix(), origin)
    git = Git(workspace, relative)
    git.run("init", "-q", "-b", "main")
    if not copied or not git.run("status", "--porcelain").stdout.strip():
        shutil.rmtree(target)
        raise WorkspaceError(f"{origin} has no files to run the pipeline on")
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
