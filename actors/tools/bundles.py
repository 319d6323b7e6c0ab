"""A request's tree carried between nodes as git bundles: fetched whole or in part, pushed back only as a fast-forward.

Two kinds of repository take part. The *canonical* tree is the one :func:`actors.tools.checkout.prepare`
made (``requests/<id>`` in the council's workspace); the depot (:mod:`actors.depot`) owns it. A
*copy* is an agent's own clone of it in a node-local workspace. What travels between them is a
:class:`Carried`: the branch checked out, the commit it is at, and a git bundle of the commits
the other side lacks (empty when it lacks none). Bundles are bytes, so nothing but the council's
own calls carries them — no git daemon, no shell, no network port.

The invariants, where they bite:

- :func:`receive` moves the canonical tree only forward: the pushed head must descend from the
  head the attempt fetched (``expected``), and the canonical tree must still be at ``expected``.
  Otherwise the attempt worked on a stale tree and :class:`StaleTree` refuses it; its commits are
  not taken. A push whose head is already in the canonical branch is a no-op (a retried push).
- :func:`take` makes a copy be what the depot has: the branch at the depot's head, the working
  tree clean. A copy is complete only once its marker (``.git/council-copy``) is written; a copy
  without one (a fetch cut short by a crash) is made again from nothing.
- Every bundle is at most ``limit`` bytes, checked before it is written or read by git, and lives
  inside the repository's own ``.git`` for as long as git needs it; git runs in the sandbox with
  argument lists only.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from actors.tools import commands
from actors.tools.git import BRANCH, SAFE, Git, GitError, Identity
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError
from events.catalogue import FailureKind

Trees = Literal["shared", "fetch"]
"""Where agents find requests' trees: on a disk every node shares (the council's workspace), or fetched as bundles
from the council's depot into a workspace on the agent's own node, and pushed back (:mod:`actors.depot`)."""
MAX_BUNDLE_BYTES = 256 << 20
"""The largest bundle carried either way (256 MiB): a request's history, not a data set."""
INCOMING = "refs/council/incoming"
"""Where a received bundle's branch is fetched to before it is checked (never a branch a skill sees)."""
MARKER = "council-copy"
"""The file in a copy's ``.git`` that says the copy was made whole."""
DEPOT = Identity("agent-council", "council@agent-council.invalid", "")
"""Who moves a branch when a tree is received or taken (the reflog's entry): the council, under no warrant."""
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class BundleError(WorkspaceError):
    """A bundle is damaged, does not hold what it claims, or cannot be made; the message has git's words."""


class BundleTooLarge(BundleError):
    """A bundle is over the size limit: the tree's history is too big to carry between nodes."""

    kind: FailureKind = "permanent"


class StaleTree(WorkspaceError):
    """A push does not fast-forward the request's tree: the attempt worked on a tree that has moved on since it was
    fetched; its commits were not taken, and it is tried again on the new tree, as a fresh run."""

    kind: FailureKind = "lost"


@dataclass(frozen=True)
class Carried:
    """What travels between a canonical tree and a copy: the branch, its head, and the commits the receiver lacks."""

    branch: str
    head: str
    bundle: bytes = b""
    """A git bundle of ``branch`` up to ``head``, less what the receiver said it has; empty: it lacks nothing."""


def tip(git: Git) -> tuple[str, str]:
    """The branch ``git``'s repository has checked out and the commit it is at; :class:`BundleError` if HEAD is
    detached (a request's tree is always on a branch)."""
    branch = git.current_branch()
    if branch == "HEAD" or not BRANCH.match(branch):
        raise BundleError(f"the tree at {git.workspace.path(git.repo)} has no branch checked out; a request's tree "
                          "is carried between nodes by its branch")
    return branch, git.head()


def pack(git: Git, have: str | None = None, limit: int = MAX_BUNDLE_BYTES) -> Carried:
    """The checked-out branch of ``git``'s repository, less what a receiver that has commit ``have`` already holds.

    ``have`` may be anything the receiver reports; one this repository does not know (or None) gets the whole
    branch. :class:`BundleTooLarge` if the bundle would be over ``limit`` bytes.
    """
    branch, head = tip(git)
    known = have if have is not None and _COMMIT.match(have) and _is_commit(git, have) else None
    if known is not None and (known == head or _is_ancestor(git, head, known)):
        return Carried(branch, head)  # the receiver holds head already
    spec = [f"refs/heads/{branch}", *([f"^{known}"] if known else [])]
    with _bundle_file(git) as path:
        git.run("bundle", "create", "-q", str(path), *spec)
        size = path.stat().st_size
        if size > limit:
            raise BundleTooLarge(f"the bundle of {branch} is {size} bytes, over the limit of {limit}; a tree this "
                                 'large cannot be carried between nodes — use trees = "shared" (a shared disk)')
        return Carried(branch, head, path.read_bytes())


def receive(git: Git, carried: Carried, expected: str, limit: int = MAX_BUNDLE_BYTES) -> str:
    """Take ``carried`` into the canonical tree of ``git`` as a fast-forward from ``expected`` (the head the pushing
    attempt fetched); return the tree's head after it.

    A head the branch holds already is a no-op (a retried push). :class:`StaleTree` if the tree is no longer at
    ``expected`` or the head does not descend from it; :class:`BundleError` for a damaged bundle or one that does
    not hold what it claims. Nothing of a refused push is left in the branch or the working tree.
    """
    _check(carried, limit)
    if not _COMMIT.match(expected or ""):
        raise BundleError(f"{expected!r} is not a commit id; give the head the attempt fetched")
    branch, current = tip(git)
    if carried.branch == branch and _is_commit(git, carried.head) and _is_ancestor(git, carried.head, current):
        return current  # these commits are in the tree already
    if current != expected:
        raise StaleTree(f"the request's tree moved on to {current[:12]} after this attempt fetched {expected[:12]}; "
                        "its commits were not taken, and it is tried again on the new tree")
    if carried.bundle:
        _unbundle(git, carried)
    elif not _is_commit(git, carried.head):
        raise BundleError(f"the tree lacks {carried.head[:12]} and no bundle came with it; push the commits it lacks")
    if not _is_ancestor(git, expected, carried.head):
        raise StaleTree(f"{carried.head[:12]} does not descend from {expected[:12]}, the head the attempt fetched; "
                        "only a fast-forward is taken, and the attempt is tried again on the tree as it is")
    if carried.branch == branch:
        git.run("merge", "-q", "--ff-only", carried.head, identity=DEPOT)
    else:
        found = git.run("branch", "--list", carried.branch).stdout.strip()
        if found and not _is_ancestor(git, f"refs/heads/{carried.branch}", carried.head):
            raise StaleTree(f"the branch {carried.branch} of the request's tree has commits {carried.head[:12]} "
                            "does not descend from; the attempt is tried again on the tree as it is")
        git.run("checkout", "-q", "-B", carried.branch, carried.head, identity=DEPOT)
    return git.head()


def take(tree: Path, box: Sandbox, carried: Carried, limit: int = MAX_BUNDLE_BYTES) -> Git:
    """Make the copy at ``tree`` what ``carried`` says (made from nothing if it is not a whole copy yet): its branch
    at its head, the working tree clean; return its git. Commits of the copy the depot never took are left behind."""
    _check(carried, limit)
    if not (tree / ".git" / MARKER).is_file():
        shutil.rmtree(tree, ignore_errors=True)  # absent, or a fetch cut short: made again from the start
        tree.mkdir(parents=True)
        Git(Workspace(tree), ".", box).run("init", "-q")
    git = Git(Workspace(tree), ".", box)
    if carried.bundle:
        _unbundle(git, carried)
    elif not _is_commit(git, carried.head):
        raise BundleError(f"the copy at {tree} lacks {carried.head[:12]} and no bundle came with it; fetch it whole")
    git.run("checkout", "-q", "-f", "-B", carried.branch, carried.head, identity=DEPOT)
    git.run("clean", "-q", "-f", "-d")
    (tree / ".git" / MARKER).write_text(carried.head + "\n")
    return git


def copied(tree: Path) -> bool:
    """Whether ``tree`` is a whole copy (see :func:`take`)."""
    return (tree / ".git" / MARKER).is_file()


def holds(git: Git, commit: str) -> bool:
    """Whether ``commit`` is on the branch ``git``'s repository has checked out."""
    return bool(_COMMIT.match(commit or "")) and _is_commit(git, commit) and _is_ancestor(git, commit, "HEAD")


def _check(carried: Carried, limit: int) -> None:
    if len(carried.bundle) > limit:
        raise BundleTooLarge(f"the bundle of {carried.branch!r} is {len(carried.bundle)} bytes, over the limit of "
                             f"{limit}; it is refused")
    if not BRANCH.match(carried.branch or "") or not _COMMIT.match(carried.head or ""):
        raise BundleError(f"{carried.branch!r} at {carried.head!r} is not a branch and a commit id")


def _unbundle(git: Git, carried: Carried) -> None:
    """Fetch ``carried``'s bundle to :data:`INCOMING` and check it holds ``carried.head``."""
    with _bundle_file(git) as path:
        path.write_bytes(carried.bundle)
        try:
            git.run("bundle", "verify", "-q", str(path))
            git.run("fetch", "-q", "--no-tags", "--no-write-fetch-head", str(path),
                    f"+refs/heads/{carried.branch}:{INCOMING}")
        except GitError as exc:
            raise BundleError(f"the bundle of {carried.branch} cannot be taken (damaged, or it needs commits this tree "
                              f"lacks): {exc}") from None
    got = git.run("rev-parse", INCOMING).stdout.strip()
    if got != carried.head:
        raise BundleError(f"the bundle's {carried.branch} is at {got[:12]}, not at {carried.head[:12]} as it claims")


@contextmanager
def _bundle_file(git: Git) -> Iterator[Path]:
    """A fresh file for one bundle inside the repository's ``.git``, removed when the block ends."""
    folder = git.workspace.path(git.repo) / ".git" / "council-bundles"
    folder.mkdir(exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.bundle"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _is_commit(git: Git, revision: str) -> bool:
    done = commands.run(git.workspace, ["git", *SAFE, "cat-file", "-e", f"{revision}^{{commit}}"], git.repo, 30,
                        box=git.box)
    return done.returncode == 0


def _is_ancestor(git: Git, ancestor: str, descendant: str) -> bool:
    done = commands.run(git.workspace, ["git", *SAFE, "merge-base", "--is-ancestor", ancestor, descendant],
                        git.repo, 30, box=git.box)
    return done.returncode == 0
