"""The error detector's judgement as a plain class: what each failure is, and what to do about it.

:class:`ErrorDetector` folds task failures, dead letters, agent restarts and queue entries from
the log and decides, for each dead-lettered task, by the kind of its last error:

* **transient** (timeouts, lost connections, expired leases): requeue it once more;
* **code** (a Python error raised by the skill): submit a fix task for an agent with the
  ``code.fix`` capability, when one is registered; otherwise alert;
* **configuration** (bad inputs, a missing skill or workspace, a gate denial) and
  **infrastructure** (dead workers, full disks, out of memory): alert a person.

It also alerts when the failure rate, the restart rate or a queue's wait past its start deadline
crosses a threshold. Everything it decides is an event, and it recognises its own earlier events
when it folds the log again, so a restarted detector does nothing twice.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from events import ANY, NO_STREAM, NewEvent, RecordedEvent
from events.catalogue import AlertRaised, TaskRequeued, TaskSubmitted
from events.registry import Event

Kind = Literal["transient", "configuration", "code", "infrastructure"]

_PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("infrastructure", re.compile(r"worker died|actor died|out of memory|oom|no space left|disk full|"
                                  r"node .* (lost|died)|RayActorError|ObjectLostError", re.I)),
    ("transient", re.compile(r"timeout|timed out|temporar|unavailable|connection (reset|refused|error)|"
                             r"rate limit|try again|lease .* expired|ConnectionError|BrokenPipe", re.I)),
    ("configuration", re.compile(r"needs inputs|no skill for|no workspace|denied|not valid JSON|"
                                 r"is not a program on PATH|not an environment|permission|no warrant|"
                                 r"PermanentFailure|ActionRefused|not allowed|refused", re.I)),
    ("code", re.compile(r"\b(TypeError|AttributeError|NameError|KeyError|IndexError|ValueError|"
                        r"ZeroDivisionError|AssertionError|SyntaxError|ImportError|ModuleNotFoundError|"
                        r"RecursionError|NotImplementedError|UnboundLocalError)\b")),
)

FIX_CAPABILITY = "code.fix"
"""The capability an agent registers to be sent fix tasks for code errors."""


def classify(error: str) -> Kind:
    """The kind of an error message (the first matching family; unknown errors count as code)."""
    for kind, pattern in _PATTERNS:
        if pattern.search(error or ""):
            return kind
    return "code"


class DetectorSettings(BaseModel):
    """Thresholds and windows for the error detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: float = Field(300.0, gt=0, description="seconds over which rates are measured")
    max_failures: int = Field(20, ge=1, description="failed attempts in the window that raise an alert")
    max_restarts: int = Field(5, ge=1, description="agent restarts in the window that raise an alert")
    requeue_transient: bool = Field(True, description="requeue a task dead-lettered by transient errors, once")


@dataclass
class ErrorDetector:
    """The fold, and the decisions."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    position: int = 0
    fixers: set[str] = field(default_factory=set)
    """Agents that registered the fix capability."""
    failures: deque[float] = field(default_factory=deque)
    restarts: deque[float] = field(default_factory=deque)
    dead: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    """Dead-lettered tasks not handled yet: task id → (last error, stream version, capability)."""
    handled: set[str] = field(default_factory=set)
    """Tasks the detector already acted on (requeued, sent to a fixer, or alerted about)."""
    alerted: dict[str, float] = field(default_factory=dict)
    """Alert key → when it was last raised (repeats inside the window are not raised again)."""
    capabilities: dict[str, str] = field(default_factory=dict)
    queued: dict[str, float] = field(default_factory=dict)
    """Queued tasks with a start deadline: task id → the deadline."""

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event of the log."""
        self.position = event.position
        kind, p, at = event.type, event.payload, event.recorded_at.timestamp()
        if kind == "task.submitted":
            self.capabilities[p.task_id] = p.capability
            failed = (p.inputs or {}).get("failed_task") if p.capability == FIX_CAPABILITY else None
            if isinstance(failed, str):
                self.handled.add(failed)
        elif kind == "task.failed":
            self.failures.append(at)
        elif kind == "task.dead_lettered":
            self.dead[p.task_id] = (p.last_error, event.stream_version, self.capabilities.get(p.task_id, ""))
            self.queued.pop(p.task_id, None)
        elif kind == "task.requeued":
            self.dead.pop(p.task_id, None)
            if p.reason.startswith("error detector:"):
                self.handled.add(p.task_id)
        elif kind == "task.queued" and p.start_deadline is not None:
            self.queued[p.task_id] = p.start_deadline
        elif kind in ("task.assigned", "task.completed"):
            self.queued.pop(p.task_id, None)
        elif kind == "agent.registered" and FIX_CAPABILITY in p.capabilities:
            self.fixers.add(p.agent_id)
        elif kind == "agent.restarted":
            self.restarts.append(at)
        elif kind == "alert.raised":
            self.alerted[p.key] = at
            if p.key.startswith("task:"):
                self.handled.add(p.key.split(":", 2)[1])

    def decide(self, now: float) -> list[tuple[str, list[Event | NewEvent], object]]:
        """The appends to make now: requeues, fix tasks and alerts (each at most once)."""
        out: list[tuple[str, list[Event | NewEvent], object]] = []
        for task_id, (error, version, capability) in sorted(self.dead.items()):
            if task_id in self.handled:
                continue
            self.handled.add(task_id)
            kind = classify(error)
            if kind == "transient" and self.settings.requeue_transient:
                out.append((f"task-{task_id}", [TaskRequeued(task_id=task_id, reason=(
                    f"error detector: transient failure ({error[:200]}); one more try"))], version))
            elif kind == "code" and self.fixers:
                fix = f"fix-{task_id}"[:200]
                out.append((f"task-{fix}", [NewEvent(payload=TaskSubmitted(
                    task_id=fix, capability=FIX_CAPABILITY, title=f"fix the error in {task_id}", priority=1,
                    inputs={"failed_task": task_id, "capability": capability, "error": error[:4000]}),
                    event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:fix:{task_id}"))], NO_STREAM))
            else:
                out.append(self._alert(f"task:{task_id}:{kind}", "warning", f"task {task_id} ({capability or '?'}) "
                                       f"failed for good: a {kind} error", error[:2000], now, force=True))
        for queue, threshold, what in ((self.failures, self.settings.max_failures, "failed task attempts"),
                                       (self.restarts, self.settings.max_restarts, "agent restarts")):
            while queue and now - queue[0] > self.settings.window:
                queue.popleft()
            if len(queue) >= threshold:
                alert = self._alert(f"rate:{what}", "warning", f"{len(queue)} {what} in the last "
                                    f"{self.settings.window:.0f} s (threshold {threshold})", "", now)
                if alert is not None:
                    out.append(alert)
        late = sorted(t for t, deadline in self.queued.items() if now > deadline)
        if late:
            alert = self._alert("queue:late", "warning", f"{len(late)} queued task(s) waited past their start "
                                f"deadline", ", ".join(late[:20]), now)
            if alert is not None:
                out.append(alert)
        return [a for a in out if a is not None]

    def _alert(self, key: str, severity: str, summary: str, detail: str, now: float,
               force: bool = False) -> tuple[str, list[Event | NewEvent], object] | None:
        last = self.alerted.get(key)
        if not force and last is not None and now - last < self.settings.window:
            return None
        self.alerted[key] = now
        return ("alerts", [AlertRaised(key=key[:200], severity=severity, source="error-detector",  # type: ignore[arg-type]
                                       summary=summary[:2000], detail=detail)], ANY)
