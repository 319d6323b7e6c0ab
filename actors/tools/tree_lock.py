"""One attempt at a time in a request's tree: an exclusive lock held while a step works there.

An attempt whose lease was taken back is told so at its agent's next heartbeat and its commands
are killed; until then, a newer attempt of the same step (or the next step) could start in the
same tree. The lock closes that window: the newer attempt waits until the older one has let go
— which the kernel does for it if its process dies — and never works on a half-written tree.

The lock is ``flock`` on ``requests/<id>.lock`` beside the tree (never inside it, where the
commands of the step could reach it). It serialises attempts of one machine; with fetched trees,
attempts on different nodes are serialised by the depot's lease on the request's tree
(:func:`actors.depot.leasing`), which waits the same way (:func:`waiting_for`).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from actors.skills import Abandoned
from actors.tools.workspace import WorkspaceError


class TreeBusy(WorkspaceError):
    """Another attempt still works in the request's tree after the wait: this attempt is tried again later."""


def waiting_for(take: Callable[[], bool], what: str, wait: float, *, waiting: Callable[[], None] = lambda: None,
                given_up: Callable[[], bool] = lambda: False, every: float = 0.05) -> None:
    """Call ``take`` (every ``every`` seconds) until it says it took ``what``, for up to ``wait`` seconds.

    ``waiting`` is called while it waits (the attempt is alive, only queued behind another);
    ``given_up`` is asked too, and if it says this attempt was given up meanwhile, :class:`Abandoned`
    is raised. :class:`TreeBusy` if ``what`` was not let go in time.
    """
    deadline = time.monotonic() + wait
    while not take():
        if given_up():
            raise Abandoned(f"the attempt was given up while it waited for {what}")
        if time.monotonic() >= deadline:
            raise TreeBusy(f"another attempt still works in {what} after {wait:g} s; this one is tried again later")
        waiting()
        time.sleep(every)


@contextmanager
def holding(tree: Path, wait: float, *, waiting: Callable[[], None] = lambda: None,
            given_up: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold ``tree``'s lock for the block, waiting up to ``wait`` seconds for another attempt to let go
    (see :func:`waiting_for` for ``waiting``, ``given_up`` and the errors)."""
    fd = os.open(tree.parent / f"{tree.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        waiting_for(take, tree.name, wait, waiting=waiting, given_up=given_up)
        yield
    finally:
        os.close(fd)  # closing the descriptor lets the lock go
