"""The health monitor actor: pings every long-lived actor, restarts the crashed and the hung, retires the hopeless.

Each watched actor has at most one ping in flight. Agents answer ``health()`` on a thread of
their own (a separate concurrency group), with their process id, whether they are running a
task, and when that task last made progress; the system actors answer ``pid()``. The monitor's
:class:`monitoring.health.HealthBook` decides; this shell acts — ``ray.kill`` lets Ray restart a
hung actor in a new process, and an actor that is gone for good (its constructor failed, or it
was killed without restart) is created again from the recipe it was booted with — and records
every detection, restart and retirement as an event, and every retirement as an alert.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections import deque
from typing import Any, NamedTuple

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors import names
from actors.follow import fold_from
from actors.store_client import StoreClient
from events import CouncilError, RecordedEvent
from events.catalogue import (
    ActorRestarted,
    ActorRetired,
    ActorUnresponsive,
    AgentRetired,
    AgentUnresponsive,
    AlertRaised,
)
from monitoring.health import Finding, HealthBook, HealthSettings


class Recipe(NamedTuple):
    """How to create a watched actor again: ``module:Class``, constructor arguments, actor options."""

    cls: str
    args: tuple[Any, ...]
    init: dict[str, Any]
    options: dict[str, Any]


class HealthLoop:
    """Ping, judge, act, record — until stopped."""

    def __init__(self, recipes: dict[str, Recipe], settings: HealthSettings, client: StoreClient) -> None:
        self.recipes, self.settings, self.client = recipes, settings, client
        self.book = HealthBook(settings)
        for name in recipes:
            self.book.watch(name)
        self.pings: dict[str, tuple[Any, float]] = {}
        self.sent: dict[str, float] = {}
        self.handles: dict[str, Any] = {}
        self.findings: deque[Finding] = deque(maxlen=1000)  # the latest, for status and tests; the log keeps all
        self._stop = threading.Event()

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                self.round(time.time())
            except CouncilError:
                pass  # the store is away: what was found is recorded next round
            self._stop.wait(0.1)

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()

    def round(self, now: float) -> None:
        """Collect answered pings, time out silent ones, send due ones, and act on what the book decides."""
        for name in list(self.recipes):
            patient = self.book.patients[name]
            if patient.retired:
                continue
            self._collect(name, now)
            if name not in self.pings and now - self.sent.get(name, 0.0) >= self.settings.ping_every:
                self._ping(name, now)
            verdict = self.book.decide(name, now)
            if verdict == "restart":
                self._restart(name, now)
            elif verdict == "retire":
                self._retire(name)

    def recover(self, now: float) -> None:
        """Rebuild restart counts (within the budget window) and retirements from the log's health events."""
        window = self.settings.budget_window

        def apply(event: RecordedEvent) -> None:
            p, at = event.payload, event.recorded_at.timestamp()
            patient = self.book.patients.get(getattr(p, "actor", None) or names.agent(getattr(p, "agent_id", "")))
            if patient is None:
                return
            if event.type == "actor.retired" or (event.type == "agent.retired" and "over the budget" in p.reason):
                patient.retired = True
            elif now - at < window and (event.type == "agent.unresponsive"
                                        or (event.type == "actor.restarted" and p.by == "monitor")):
                patient.restarts.append(at)

        fold_from(self.client, 0, apply, ["actor.restarted", "actor.retired", "agent.unresponsive", "agent.retired"])

    # -- pings ------------------------------------------------------------------------------

    def _ping(self, name: str, now: float) -> None:
        handle = self._handle(name)
        if handle is None:
            self._record(self.book.failed(name, "dead", "no actor by that name", now))
            return
        method = handle.health if name.startswith("agent:") else handle.pid
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
                self._record(self.book.failed(name, "timeout", f"no answer to a ping in {now - sent:.1f} s", now))
            return
        del self.pings[name]
        try:
            answer = ray.get(ref)
        except ActorUnavailableError as exc:
            self._record(self.book.failed(name, "unavailable", type(exc).__name__, now))
            return
        except (ActorDiedError, RayActorError) as exc:
            self.handles.pop(name, None)
            self._record(self.book.failed(name, "dead", _first_line(exc), now))
            return
        pid, busy, progress = answer if isinstance(answer, tuple | list) else (answer, False, None)
        self._record(self.book.answered(name, int(pid), bool(busy), progress, now))

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
        self.book.restarting(name, now)
        self.pings.pop(name, None)
        handle = self._handle(name)
        if handle is not None:
            try:
                ray.kill(handle, no_restart=False)  # Ray starts it again in a new process
                return
            except Exception:  # noqa: BLE001 - gone already: create it again below
                self.handles.pop(name, None)
        recipe = self.recipes[name]
        module, _, cls = recipe.cls.partition(":")
        actor_class = getattr(importlib.import_module(module), cls)
        self.handles[name] = actor_class.options(name=name, namespace=names.NAMESPACE, lifetime="detached",
                                                 get_if_exists=True, **recipe.options).remote(*recipe.args,
                                                                                                **recipe.init)
        self.book.patients[name].pid = None

    def _retire(self, name: str) -> None:
        self._record([self.book.retiring(name)])
        handle = self._handle(name)
        if handle is not None:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    # -- the record -------------------------------------------------------------------------

    def _record(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.findings.append(finding)
            if finding.kind == "unavailable":
                continue  # Ray is restarting it; the new process id will say so
            name = finding.name
            if name.startswith("agent:"):
                agent_id = name.removeprefix("agent:")
                if finding.kind in ("dead", "hung"):
                    self.client.append(f"agent-{agent_id}", [AgentUnresponsive(agent_id=agent_id, reason=(
                        f"{finding.kind}: {finding.detail}")[:2000], last_seen_at=self.book.patients[name].alive_at)])
                elif finding.kind == "retired":
                    self.client.append(f"agent-{agent_id}", [AgentRetired(agent_id=agent_id, reason=finding.detail)])
                # a restarted agent records agent.restarted itself, with its new epoch
            elif finding.kind in ("dead", "hung"):
                self.client.append(f"actor-{name}", [ActorUnresponsive(actor=name, problem=finding.kind,
                                                                       detail=finding.detail[:2000], pid=finding.pid)])
            elif finding.kind == "restarted":
                self.client.append(f"actor-{name}", [ActorRestarted(
                    actor=name, pid=finding.pid or 0, previous_pid=finding.previous_pid,
                    by="monitor" if "monitor" in finding.detail else "ray",
                    restarts=len(self.book.patients[name].restarts))])
            elif finding.kind == "retired":
                self.client.append(f"actor-{name}", [ActorRetired(actor=name, reason=finding.detail)])
            if finding.kind == "retired":
                self.client.append("alerts", [AlertRaised(key=f"retired:{name}", severity="critical", source="health",
                                                          summary=f"{name} was retired: it kept failing",
                                                          detail=finding.detail)])


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)
class HealthMonitorActor:
    """Runs a :class:`HealthLoop` from the moment it is created (or restarted)."""

    def __init__(self, recipes: dict[str, Recipe], settings: dict[str, Any] | None = None) -> None:
        self.loop = HealthLoop(recipes, HealthSettings(**(settings or {})), StoreClient())
        self.loop.recover(time.time())  # restart counts and retirements, from the log
        self._thread = threading.Thread(target=self.loop.run, daemon=True, name="health")
        self._thread.start()

    def watched(self) -> dict[str, dict[str, Any]]:
        """Each watched actor: its process id, restarts in the budget window, and whether it is retired or suspect."""
        return {n: {"pid": p.pid, "restarts": len(p.restarts), "retired": p.retired, "suspect": p.suspect}
                for n, p in self.loop.book.patients.items()}

    def findings(self) -> list[tuple[str, str, str]]:
        """Everything found so far by this incarnation: (actor, kind, detail)."""
        return [(f.name, f.kind, f.detail) for f in self.loop.findings]

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


