"""The depot: the council's request trees and blobs, served to agents that share no disk with it.

With ``trees = "fetch"`` an agent works in a copy of its request's tree on its own node's disk
(:mod:`actors.tools.bundles`): it fetches the tree from the depot before an attempt and pushes its
commits back after it. The depot runs beside the council, on the node of the council's home, and
owns what lives there: the canonical trees (``requests/<id>`` in the workspace, made by
:func:`actors.tools.checkout.prepare`) and the blobs (``<home>/blobs``) that agents' model calls
keep their bodies in (:class:`DepotBlobs`).

:class:`Depot` is the plain part, tested without Ray; :class:`DepotActor` its Ray shell, named and
detached in the ``council`` namespace. The depot keeps nothing in memory that is not on disk but
its tree leases: a depot that is killed is restarted by Ray and serves the same trees. Every call
is safe to repeat (a fetch reads; a push of commits the tree holds is a no-op; a blob is put once;
a lease is taken again by the holder that has it), so Ray retries a call that was cut short by a
restart.

Attempts of one request on different nodes take turns through the depot's lease on the request's
tree (:class:`TreeLeases`, :func:`leasing`), as attempts on one node take turns through the tree's
lock: the second fetches only once the first has pushed, so neither's work is lost to the other.
The leases are the one thing a restarted depot forgets; holders renew theirs (and so take them
again), and should two attempts overlap across a restart, the later push is refused as stale
(:class:`actors.tools.bundles.StaleTree`) and that task is run afresh.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from actors import names
from actors.remote import ask
from actors.store_client import StoreClient
from actors.tools.bundles import MAX_BUNDLE_BYTES, BundleError, Carried, copied, holds, pack, receive, take
from actors.tools.checkout import tree_of
from actors.tools.git import Git, GitError
from actors.tools.sandbox import Sandbox
from actors.tools.tree_lock import holding, waiting_for
from actors.tools.workspace import Workspace, WorkspaceError
from events import CouncilError
from events.blobs import Blobs, BlobStore, checked, name_of
from events.catalogue import FailureKind
from governance.confinement import SandboxTable
from governance.ledgers import PolicyLedger

CALLS_AT_ONCE = 8
"""How many calls the depot serves side by side."""
PUSH_WAIT = 60.0
"""Seconds a push waits for an attempt working in the canonical tree on the depot's own node to let go of it."""
LEASE_TTL = 30.0
"""Seconds a request's tree lease lasts unless renewed (its holder renews it every third of that): how long a tree
stays taken by an attempt whose node was lost."""


class UnknownRequest(WorkspaceError):
    """The depot has no tree for a request: it was never prepared on the council's node (or was removed)."""

    kind: FailureKind = "permanent"


class LostWork(WorkspaceError):
    """Commits an earlier attempt of this run of a task made never reached the request's tree (its push was refused,
    or its node was lost before it pushed); replaying the run would report them done without them, so the next
    attempt is a fresh run."""

    kind: FailureKind = "lost"


class DepotUnavailable(CouncilError):
    """No depot answers: the council runs with shared trees, or the depot is gone for good."""

    kind: FailureKind = "infrastructure"


class Depot:
    """The canonical trees under ``workspace``: fetched as bundles, pushed to only as fast-forwards.

    ``box`` gives the sandbox the depot's git runs in (the policy in force may change between calls).
    """

    def __init__(self, workspace: str | Path, box: Callable[[], Sandbox], limit: int = MAX_BUNDLE_BYTES) -> None:
        self.workspace, self.box, self.limit = Workspace(workspace), box, limit

    def fetch(self, request_id: str, have: str | None = None) -> Carried:
        """Request ``request_id``'s branch and head, with the commits a copy at ``have`` lacks (all, if None)."""
        return pack(self._git(request_id), have, self.limit)

    def push(self, request_id: str, carried: Carried, expected: str) -> str:
        """Take an attempt's commits into request ``request_id``'s tree as a fast-forward from ``expected`` (the
        head it fetched); return the tree's head. See :func:`actors.tools.bundles.receive` for what is refused."""
        git = self._git(request_id)
        # Shared-tree agents on this node work in the same tree under its lock: a push never lands mid-attempt.
        with holding(git.workspace.root, PUSH_WAIT):
            return receive(git, carried, expected, self.limit)

    def _git(self, request_id: str) -> Git:
        tree = self.workspace.path(tree_of(request_id))  # an id is checked, and its path confined, before use
        if not (tree / ".git" / "council-checkout").is_file():
            raise UnknownRequest(f"the council has no tree for request {request_id}; it is made when the request is "
                                 "submitted (`council run` or `council review`)")
        return Git(Workspace(tree), ".", self.box())


class TreeLeases:
    """Which attempt holds each request's tree, across nodes: one holder at a time, by the depot's clock.

    A lease not renewed within its ``ttl`` is free again, so a holder on a lost node lets go by
    its silence. Taking is also renewing: the holder that has a lease takes it again.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}  # request id -> (holder, when it lapses)
        self._lock = threading.Lock()

    def take(self, request_id: str, holder: str, ttl: float) -> bool:
        """Give ``holder`` request ``request_id``'s tree for ``ttl`` seconds from now, unless another holds it."""
        with self._lock:
            now = self._clock()
            current = self._held.get(request_id)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            self._held = {r: h for r, h in self._held.items() if h[1] > now}  # lapsed leases are forgotten
            self._held[request_id] = (holder, now + ttl)
            return True

    def give_back(self, request_id: str, holder: str) -> None:
        """Let go of request ``request_id``'s tree if ``holder`` holds it (anyone else's lease is left alone)."""
        with self._lock:
            current = self._held.get(request_id)
            if current is not None and current[0] == holder:
                del self._held[request_id]

    def holder(self, request_id: str) -> str | None:
        """Who holds request ``request_id``'s tree now (None: it is free)."""
        with self._lock:
            current = self._held.get(request_id)
            return current[0] if current is not None and current[1] > self._clock() else None


@ray.remote(max_restarts=-1, max_task_retries=-1)
class DepotActor:
    """The depot on Ray: :class:`Depot` for trees, the home's :class:`BlobStore` for blobs.

    Start it with ``max_concurrency`` above 1 (:data:`CALLS_AT_ONCE`): an agent's blob need not wait behind another's
    fetch of a large tree. Pushes to one tree are serialised by the tree's lock; bundles have files of their own.
    """

    def __init__(self, workspace: str, blobs: str, limit: int = MAX_BUNDLE_BYTES) -> None:
        self.client = StoreClient()
        self.policy = PolicyLedger()
        self._reading = threading.Lock()  # the policy ledger is folded by one call at a time
        self.blobs = BlobStore(blobs)
        self.leases = TreeLeases()
        hidden = (str(Path(workspace).resolve()), str(Path(blobs).resolve().parent))  # the workspace, the home
        self.depot = Depot(workspace, lambda: Sandbox(self._table().terms(network=False, wall_time_s=300.0),
                                                      hidden=hidden), limit)

    def _table(self) -> SandboxTable:
        """How the policy in force confines commands (its defaults before one is in force)."""
        with self._reading:
            policy = self.policy.catch_up(self.client).current()
        return policy.sandbox if policy is not None else SandboxTable()

    def fetch(self, request_id: str, have: str | None = None) -> Carried:
        return self.depot.fetch(request_id, have)

    def push(self, request_id: str, carried: Carried, expected: str) -> str:
        return self.depot.push(request_id, carried, expected)

    def take_tree(self, request_id: str, holder: str, ttl: float) -> bool:
        return self.leases.take(request_id, holder, ttl)

    def give_back_tree(self, request_id: str, holder: str) -> None:
        self.leases.give_back(request_id, holder)

    def tree_holder(self, request_id: str) -> str | None:
        return self.leases.holder(request_id)

    def put(self, data: bytes) -> str:
        return self.blobs.put(data)

    def get(self, digest: str) -> bytes:
        return self.blobs.get(digest)

    def has(self, digest: str) -> bool:
        return self.blobs.has(digest)

    def pid(self) -> int:
        return os.getpid()


def depot() -> Any:
    """The running depot's handle; :class:`DepotUnavailable` if none runs."""
    try:
        return ray.get_actor(names.DEPOT, namespace=names.NAMESPACE)
    except ValueError:
        raise DepotUnavailable('no depot runs on this Ray cluster; agents with trees = "fetch" need the council '
                               "started with the same setting (`council up` with COUNCIL_TREES=fetch)") from None


def running() -> bool:
    """Whether a depot runs on this Ray cluster (its agents fetch requests' trees rather than share a disk)."""
    try:
        depot()
    except DepotUnavailable:
        return False
    return True


def call(method: str, *args: Any) -> Any:
    """Call the depot's ``method``; the depot's own error (a :class:`CouncilError`) is raised as itself."""
    try:
        return ask(getattr(depot(), method), *args)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, CouncilError):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise DepotUnavailable(f"the depot did not answer ({type(exc).__name__}); the attempt is tried again") from None


class DepotBlobs(Blobs):
    """Blobs kept by the depot, in the council's home: for an agent on a node that does not have the home."""

    def put(self, data: bytes) -> str:
        digest: str = call("put", data)
        return digest

    def get(self, digest: str) -> bytes:
        data: bytes = call("get", name_of(digest))
        return checked(digest, data, "the depot")  # the bytes crossed the network: believed only if they hash right

    def has(self, digest: str) -> bool:
        return bool(call("has", name_of(digest)))


@dataclass(frozen=True)
class Fetched:
    """A request's tree copied to this node for one attempt: the copy's git, and where the depot's tree stood."""

    request_id: str
    git: Git
    branch: str
    head: str

    def push(self, committed: Iterable[str] = ()) -> str:
        """Send the commits made in the copy since it was fetched back to the depot; return the tree's head there.

        ``committed`` are the commits the attempt's run recorded (this attempt's and earlier ones'): each must be
        in the copy, or :class:`LostWork` says the run has to be done afresh. :class:`actors.tools.bundles.StaleTree`
        if the depot's tree moved on meanwhile: nothing was taken, and the attempt is tried again.
        """
        lost = [c for c in committed if not holds(self.git, c)]
        if lost:
            raise LostWork(f"the commits {', '.join(c[:12] for c in lost)} this task made in an earlier attempt never "
                           f"reached request {self.request_id}'s tree (a push was refused, or a node was lost); "
                           "the task is run afresh")
        carried = pack(self.git, self.head)
        if (carried.branch, carried.head) == (self.branch, self.head):
            return self.head  # the attempt committed nothing
        head: str = call("push", self.request_id, carried, self.head)
        return head


@contextmanager
def leasing(request_id: str, wait: float, *, waiting: Callable[[], None] = lambda: None,
            given_up: Callable[[], bool] = lambda: False, ttl: float = LEASE_TTL) -> Iterator[str]:
    """Hold request ``request_id``'s tree lease at the depot for the block (its holder's name is given to it).

    Waits as :func:`actors.tools.tree_lock.holding` does for an attempt on another node to let go
    (:class:`actors.tools.tree_lock.TreeBusy` after ``wait`` seconds; ``waiting`` and ``given_up`` as there).
    A thread renews the lease every third of ``ttl`` while the block runs; a renewal the depot does not
    answer is tried again at the next one. The lease is given back when the block ends, however it ends.
    """
    holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
    waiting_for(lambda: bool(call("take_tree", request_id, holder, ttl)), f"request {request_id}'s tree", wait,
                waiting=waiting, given_up=given_up, every=0.25)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            with suppress(CouncilError):  # the depot restarting: the next renewal takes the lease again
                call("take_tree", request_id, holder, ttl)

    renewing = threading.Thread(target=renew, name=f"lease-{request_id}", daemon=True)
    renewing.start()
    try:
        yield holder
    finally:
        stop.set()
        renewing.join()
        with suppress(CouncilError):  # a depot that does not answer forgets the lease itself, in ttl seconds
            call("give_back_tree", request_id, holder)


def fetch(request_id: str, tree: Path, box: Sandbox) -> Fetched | None:
    """Make ``tree`` (in this node's workspace) a copy of request ``request_id``'s tree as the depot has it now,
    fetching only what the copy lacks; None if the depot has no tree for the request."""
    have = None
    if copied(tree):
        with suppress(GitError):
            have = Git(Workspace(tree), ".", box).head()
    try:
        carried: Carried = call("fetch", request_id, have)
    except UnknownRequest:
        return None
    try:
        git = take(tree, box, carried)
    except (BundleError, GitError):
        if have is None:
            raise
        # The copy cannot take what it said it lacked (it is damaged, or lost objects): made again, whole.
        shutil.rmtree(tree)
        carried = call("fetch", request_id, None)
        git = take(tree, box, carried)
    return Fetched(request_id, git, carried.branch, carried.head)
