"""The health monitor actor: pings every long-lived actor, restarts the crashed and the hung, retires the hopeless.

Each watched actor has at most one ping in flight. Agents answer ``health()`` on a thread of
their own (a separate concurrency group), with their process id, whether they are running a
task, and when that task last made progress; the system actors answer ``pid()``. The judgement is
:class:`monitoring.health.HealthMonitor`'s, run by a :class:`actors.follow.Follower` that also
folds the monitor's own records back from the log (from its newest valid snapshot on:
:mod:`monitoring.health_snapshot`); this shell pings (:meth:`RayHealth.sense`) and
acts once the finding that justifies an action is stored — ``ray.kill`` lets Ray restart a hung
actor in a new process; an actor gone for good is created again from the
:class:`actors.specs.ActorSpec` it was booted with; a retired one is killed for good.

Every action follows from the fold, not from having heard an append succeed: a retirement this
incarnation folds (its own, even one whose append timed out after it landed, or another's) is
followed by the kill in the next round. Retirements already in the log when the monitor starts
are not acted on again (:meth:`RayHealth.started`): the council may have been booted again since,
with that actor running anew.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors import names
from actors.follow import Follower, reader_for
from actors.snapshots import Snapshots, SnapshotSettings
from actors.specs import ActorSpec
from actors.store_client import StoreClient
from events.blobs import BlobStore
from monitoring.health import AGENT_PREFIX, Finding, HealthMonitor, HealthSettings

FINDINGS_KEPT = 1000
"""The latest findings kept for ``findings()`` (the log keeps them all)."""


class RayHealth(HealthMonitor):
    """:class:`HealthMonitor` with the pings and the restarts, which need Ray."""

    def __init__(self, specs: Sequence[ActorSpec], settings: HealthSettings) -> None:
        super().__init__([s.name for s in specs], settings)
        self.specs = {s.name: s for s in specs}
        self.pings: dict[str, tuple[Any, float]] = {}
        self.sent: dict[str, float] = {}
        self.handles: dict[str, Any] = {}
        self.findings: deque[Finding] = deque(maxlen=FINDINGS_KEPT)
        self.killed: set[str] = set()
        """Retired actors killed for good (or retired before this incarnation started)."""

    def started(self) -> None:
        """The log is folded up to this incarnation's start: the retirements in it were acted on before."""
        self.killed |= {name for name, patient in self.book.patients.items() if patient.retired}

    def sense(self, now: float) -> None:
        """Kill what was retired; collect answered pings, time out silent ones, send due ones; restart what is due."""
        for name in self.specs:
            patient = self.book.patients[name]
            if patient.retired:
                if name not in self.killed:
                    self.killed.add(name)
                    self._kill_for_good(name)
                continue
            self._collect(name, now)
            if name not in self.pings and now - self.sent.get(name, 0.0) >= self.settings.ping_every:
                self._ping(name, now)
            if self.book.decide(name, now) == "restart":
                self._restart(name, now)

    def due(self, now: float) -> float:
        """Pings are due every tenth of a second at most."""
        return now + 0.1

    # -- pings ------------------------------------------------------------------------------

    def _ping(self, name: str, now: float) -> None:
        handle = self._handle(name)
        if handle is None:
            self._seen(self.book.failed(name, "dead", "no actor by that name", now))
            return
        method = handle.health if name.startswith(AGENT_PREFIX) else handle.pid
        self.pings[name] = (method.remote(), now)
        self.sent[name] = now

    def _collect(self, name: str, now: float) -> None:
        pending = self.pings.get(name)
        if pending is None:
            return
        ref, sent = pending
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            if now - sent >= self.settings.ping_timeout:
                del self.pings[name]
                self._seen(self.book.failed(name, "timeout", f"no answer to a ping in {now - sent:.1f} s", now))
            return
        del self.pings[name]
        try:
            answer = ray.get(ref)
        except ActorUnavailableError as exc:
            self._seen(self.book.failed(name, "unavailable", type(exc).__name__, now))
            return
        except (ActorDiedError, RayActorError) as exc:
            self.handles.pop(name, None)
            self._seen(self.book.failed(name, "dead", _first_line(exc), now))
            return
        pid, busy, progress = answer if isinstance(answer, tuple | list) else (answer, False, None)
        self._seen(self.book.answered(name, int(pid), bool(busy), progress, now))

    def _seen(self, found: list[Finding]) -> None:
        self.findings.extend(found)

    def _handle(self, name: str) -> Any:
        handle = self.handles.get(name)
        if handle is None:
            try:
                handle = self.handles[name] = ray.get_actor(name, namespace=names.NAMESPACE)
            except ValueError:
                return None
        return handle

    # -- acting -----------------------------------------------------------------------------

    def _restart(self, name: str, now: float) -> None:
        """Kill ``name`` so Ray starts it again in a new process; create it from its spec if it is gone for good."""
        self.book.restarting(name, now)
        self.pings.pop(name, None)
        handle = self._handle(name)
        if handle is not None:
            try:
                ray.kill(handle, no_restart=False)
                return
            except Exception:  # noqa: BLE001 - gone already: create it again from its spec below
                self.handles.pop(name, None)
        self.handles[name] = self.specs[name].start()
        self.book.patients[name].pid = None

    def _kill_for_good(self, name: str) -> None:
        self.pings.pop(name, None)
        handle = self._handle(name)
        if handle is not None:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(handle, no_restart=True)


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class HealthMonitorActor:
    """Runs the health monitor's :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, specs: list[ActorSpec], settings: dict[str, Any] | None = None,
                 store_url: str | None = None, blobs: str | None = None,
                 snapshots: dict[str, Any] | None = None) -> None:
        """``blobs``: the council's blob directory, where snapshots of the fold go (none: no snapshots);
        ``snapshots``: when (:class:`actors.snapshots.SnapshotSettings`)."""
        self.monitor = RayHealth(specs, HealthSettings(**(settings or {})))
        client = StoreClient()
        reader = reader_for(store_url) if store_url else None
        self.snapshots = Snapshots(names.HEALTH, BlobStore(Path(blobs)) if blobs else None,
                                   SnapshotSettings(**(snapshots or {})))
        # Failures charged and retirements, from the newest valid snapshot and the rest of the log (or all of it).
        self.snapshots.recover(self.monitor, reader or client)
        self.follower = Follower(self.monitor, client, reader=reader, longest_wait=0.1, wake_on_log=False,
                                 after_round=lambda: self.snapshots.maybe_take(self.monitor, client))
        self.monitor.started()
        self.follower.start("health")

    def watched(self) -> dict[str, dict[str, Any]]:
        """Each watched actor: its process id, failures in the budget window, and whether it is retired or suspect."""
        with self.follower.lock:
            now = self.follower.clock()
            return {n: {"pid": p.pid, "failures": len(self.monitor.book.recent(n, now)), "retired": p.retired,
                        "suspect": p.suspect} for n, p in self.monitor.book.patients.items()}

    def findings(self) -> list[tuple[str, str, str]]:
        """Everything the pings found so far in this incarnation: (actor, kind, detail)."""
        with self.follower.lock:
            return [(f.name, f.kind, f.detail) for f in self.monitor.findings]

    def stats(self) -> dict[str, int | float | str]:
        """The position folded and the snapshots: taken, and the one this incarnation recovered from."""
        return {"position": self.monitor.position, **self.snapshots.stats()}

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
