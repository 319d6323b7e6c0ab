"""The error detector's judgement as a plain :class:`actors.follow.Process`: what to do about each failure.

:class:`ErrorDetector` folds task failures, dead letters, agent restarts and queue entries from
the log and decides, for each dead-lettered task, by the kind of failure its agent recorded
(``events.catalogue.FailureKind``, set from the exception's type — never read from the message):

* **transient** (a timeout, a lost connection, an expired lease): requeue it once more — unless
  every attempt failed the same way (the same error, numbers aside), which no retry will change:
  alert instead;
* **code** (the skill's own code raised a programming error): submit a fix task for an agent with
  the ``code.fix`` capability, when one is registered (one per dead letter: a task a person
  requeued that fails again gets a fix task of its own); otherwise alert;
* **infrastructure** (the log or a worker was lost): alert, as critical;
* **denied** (the gate refused an action) and **permanent** (the skill said it cannot succeed as
  asked: a failing test, a blocking review finding): alert, for a person to read;
* a task dead-lettered because a task it depends on was: nothing (the dependency is handled).

It also alerts when the failure rate, the restart rate or a queue's wait past its start deadline
crosses a threshold. Everything it decides is an intent; what it has done is known only from its
own events folded back (``task.requeued`` by the error detector, ``task.submitted`` of a fix,
``alert.raised``), so a decision whose append failed is simply decided again, and a restarted
detector does nothing twice.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.follow import Process
from events import ANY, NO_STREAM, Intent, NewEvent, RecordedEvent, streams
from events.catalogue import (
    AgentRegistered,
    AgentRestarted,
    AlertRaised,
    FailureKind,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskSubmitted,
)

SOURCE: Literal["error-detector"] = "error-detector"
"""The ``source`` of the detector's alerts, and ``by`` of its requeues."""

FIX_CAPABILITY = "code.fix"
"""The capability an agent registers to be sent fix tasks for code errors."""

Severity = Literal["info", "warning", "critical"]

_SEVERITY: dict[FailureKind, Severity] = {"infrastructure": "critical", "code": "warning", "denied": "warning",
                                          "permanent": "info", "transient": "warning", "lost": "warning"}
_SAYS: dict[FailureKind, str] = {
    "transient": "a transient error, already retried",
    "code": "an error in the skill's code",
    "infrastructure": "the system under it failed",
    "denied": "the gate denied an action it needed",
    "permanent": "it cannot succeed as asked",
    "lost": "its work never reached the request's tree, and was done afresh",
}


class DetectorSettings(BaseModel):
    """Thresholds and windows for the error detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: float = Field(300.0, gt=0, description="seconds over which rates are measured")
    max_failures: int = Field(20, ge=1, description="failed attempts in the window that raise an alert")
    max_restarts: int = Field(5, ge=1, description="agent restarts in the window that raise an alert")
    requeue_transient: bool = Field(True, description="requeue a task dead-lettered by transient errors, once")


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered task the detector has not acted on yet."""

    task_id: str
    version: int
    """The task stream's version at the dead letter: a requeue is appended there, so it never races a person's."""
    kind: FailureKind
    error: str
    capability: str
    requeued: bool
    """Whether the detector requeued this task before (it requeues a task once)."""
    alike: int = 0
    """How many attempts failed, all the same way (0 when they differ, or only one failed)."""

    @property
    def fix_id(self) -> str:
        """The id of the fix task asked for this dead letter: keyed by its version, so a later one gets its own."""
        suffix = f"-{self.version}"
        return f"fix-{self.task_id}"[:200 - len(suffix)] + suffix


@dataclass
class ErrorDetector(Process):
    """The fold, and the decisions."""

    types = tuple(cls.type_name for cls in (TaskSubmitted, TaskFailed, TaskLeaseExpired, TaskDeadLettered,
                                            TaskRequeued, TaskQueued, TaskAssigned, TaskCompleted, AgentRegistered,
                                            AgentRestarted, AlertRaised))
    """Exactly the types :meth:`evolve` folds: the others are not even read."""
    snapshot_schema = "error-detector"
    snapshot_version = 2
    """Its snapshots (:mod:`monitoring.detector_snapshot`); raise the version when the fold changes shape or what it
    keeps (2: finished tasks and lapsed alerts are forgotten)."""

    settings: DetectorSettings = field(default_factory=lambda: DetectorSettings())
    position: int = 0
    changed: int = 0
    """The position of the last event folded into the state (of :attr:`types`): what calls for a snapshot."""
    fixers: set[str] = field(default_factory=set)
    """Agents that registered the fix capability."""
    failures: deque[float] = field(default_factory=deque)
    restarts: deque[float] = field(default_factory=deque)
    dead: dict[str, DeadLetter] = field(default_factory=dict)
    """Dead-lettered tasks not handled yet."""
    requeued: set[str] = field(default_factory=set)
    """Unfinished tasks the detector requeued once already."""
    alerted: dict[str, float] = field(default_factory=dict)
    """Alert key → when it was last raised, for alerts raised within the window (repeats inside it are not raised
    again; an older one says nothing)."""
    capabilities: dict[str, str] = field(default_factory=dict)
    """Unfinished tasks' capabilities, which their dead letters name."""
    queued: dict[str, float] = field(default_factory=dict)
    """Queued tasks with a start deadline: task id → the deadline."""
    failed: dict[str, list[str]] = field(default_factory=dict)
    """Each task's failed attempts since it was submitted or requeued: how each failed, numbers aside."""

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event of the log."""
        self.changed = event.position
        at = event.recorded_at.timestamp()
        for times in (self.failures, self.restarts):  # samples past the window no longer count: the fold stays small
            while times and at - times[0] > self.settings.window:
                times.popleft()
        match event.payload:
            case TaskSubmitted() as p:
                self.capabilities[p.task_id] = p.capability
                self.failed.pop(p.task_id, None)
                failed = (p.inputs or {}).get("failed_task") if p.capability == FIX_CAPABILITY else None
                pending = self.dead.get(failed) if isinstance(failed, str) else None
                # A fix was asked for this dead letter (one asked for an earlier dead letter of the task, stored
                # after the task was requeued and dead-lettered again, leaves the new one waiting for its own).
                if pending is not None and p.inputs.get("dead_letter_version", pending.version) == pending.version:
                    del self.dead[pending.task_id]
            case TaskFailed() as p:
                self.failures.append(at)
                self.failed.setdefault(p.task_id, []).append(gist(p.error))
            case TaskLeaseExpired() as p:
                self.failed.setdefault(p.task_id, []).append(gist(f"its lease was taken back: {p.reason}"))
            case TaskDeadLettered() as p:
                self.queued.pop(p.task_id, None)
                ways = self.failed.pop(p.task_id, [])
                if p.dependency is None:
                    alike = len(ways) if len(ways) > 1 and len(set(ways)) == 1 else 0
                    self.dead[p.task_id] = DeadLetter(p.task_id, event.stream_version, p.kind, p.last_error,
                                                      self.capabilities.get(p.task_id, ""), p.task_id in self.requeued,
                                                      alike)
            case TaskRequeued() as p:
                self.dead.pop(p.task_id, None)
                self.failed.pop(p.task_id, None)
                if p.by == SOURCE:
                    self.requeued.add(p.task_id)
            case TaskQueued() as p if p.start_deadline is not None:
                self.queued[p.task_id] = p.start_deadline
            case TaskAssigned() as p:
                self.queued.pop(p.task_id, None)
            case TaskCompleted() as p:  # a finished task is never dead-lettered: the fold keeps only open tasks
                self.queued.pop(p.task_id, None)
                self.failed.pop(p.task_id, None)
                self.capabilities.pop(p.task_id, None)
                self.requeued.discard(p.task_id)
            case AgentRegistered() as p if FIX_CAPABILITY in p.capabilities:
                self.fixers.add(p.agent_id)
            case AgentRestarted():
                self.restarts.append(at)
            case AlertRaised() as p:
                self.alerted = {k: t for k, t in self.alerted.items() if at - t < self.settings.window}
                self.alerted[p.key] = at
                if p.task_id is not None and p.source == SOURCE:
                    self.dead.pop(p.task_id, None)

    def encode_state(self) -> bytes:
        """The fold as snapshot bytes (:mod:`monitoring.detector_snapshot`)."""
        from monitoring import detector_snapshot  # it builds on this module

        return detector_snapshot.encode(self)

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        """Become the fold a snapshot encodes; unchanged if it cannot be read."""
        from monitoring import detector_snapshot

        detector_snapshot.restore(self, data, position, version)

    def decide(self, now: float) -> Sequence[Intent]:
        """The appends to make now: requeues, fix tasks and alerts; nothing here changes the detector."""
        out = [self._handle(dead, now) for _, dead in sorted(self.dead.items())]
        for times, threshold, what in ((self.failures, self.settings.max_failures, "failed task attempts"),
                                       (self.restarts, self.settings.max_restarts, "agent restarts")):
            recent = sum(1 for t in times if now - t <= self.settings.window)
            if recent >= threshold and self._due(f"rate:{what}", now):
                out.append(_alert(f"rate:{what}", "warning", f"{recent} {what} in the last "
                                  f"{self.settings.window:.0f} s (threshold {threshold})", "", now))
        late = sorted(t for t, deadline in self.queued.items() if now > deadline)
        if late and self._due("queue:late", now):
            out.append(_alert("queue:late", "warning", f"{len(late)} queued task(s) waited past their start deadline",
                              ", ".join(late[:20]), now))
        return out

    def due(self, now: float) -> float:
        """Rates and start deadlines are measured on the clock: look again every few seconds."""
        return now + 2.0

    def _handle(self, dead: DeadLetter, now: float) -> Intent:
        if dead.kind == "transient" and self.settings.requeue_transient and not dead.requeued and not dead.alike:
            return Intent(streams.task(dead.task_id), [TaskRequeued(
                task_id=dead.task_id, by=SOURCE, reason=f"transient failure ({dead.error[:200]}); one more try")],
                dead.version)
        if dead.kind == "code" and self.fixers:
            # Keyed by the dead letter, like the alert below: the same task requeued by a person and dead-lettered
            # again is a new failure with a fix task of its own, never a retry of the first one's append.
            fix = dead.fix_id
            return Intent(streams.task(fix), [NewEvent(payload=TaskSubmitted(
                task_id=fix, capability=FIX_CAPABILITY, title=f"fix the error in {dead.task_id}", priority=1,
                inputs={"failed_task": dead.task_id, "dead_letter_version": dead.version,
                        "capability": dead.capability, "error": dead.error[:4000]}),
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:fix:{dead.task_id}:{dead.version}"))], NO_STREAM)
        key = f"task:{dead.task_id}"
        says = classified(dead.kind, dead.alike)
        return _alert(key, _SEVERITY[dead.kind], f"task {dead.task_id} ({dead.capability or '?'}) failed for good: "
                      f"{says}", dead.error[:2000], now, task_id=dead.task_id,
                      event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:alert:{key}:{dead.version}"))

    def _due(self, key: str, now: float) -> bool:
        last = self.alerted.get(key)
        return last is None or now - last >= self.settings.window


def classified(kind: FailureKind, alike: int = 0) -> str:
    """The detector's judgement of a dead letter whose failures were of ``kind`` (``alike``: how many attempts failed
    all the same way, 0 when they differ), in the words its alert uses."""
    if alike and kind == "transient":
        return f"all {alike} attempts failed the same way, which another try will not change"
    return _SAYS[kind]


def _alert(key: str, severity: Severity, summary: str, detail: str, now: float, *, task_id: str | None = None,
           event_id: uuid.UUID | None = None) -> Intent:
    alert = AlertRaised(key=key[:200], severity=severity, source=SOURCE, summary=summary[:2000], detail=detail,
                        task_id=task_id)
    return Intent(streams.ALERTS, [alert if event_id is None else NewEvent(payload=alert, event_id=event_id)], ANY)


_NUMBERS = re.compile(r"0x[0-9a-f]+|\b(?=[0-9a-f]*\d)[0-9a-f]{6,}\b|\d+(\.\d+)?", re.IGNORECASE)
"""Numbers, and hexadecimal ids of six characters or more."""


def gist(error: str) -> str:
    """How an attempt failed, without the numbers that differ from one attempt to the next (times, ids, counts)."""
    return _NUMBERS.sub("#", error)[:500]
