"""The learner as a plain :class:`actors.follow.Process`: lessons from what finished, strategies from evidence.

:class:`Learner` folds tasks, model calls, edits, test runs, requests, the knowledge it recorded
and the strategies in effect, and decides two kinds of appends:

* **Lessons.** When an orchestrated request finishes (``request.finished``), when every task of a
  request nobody orchestrates has settled, and when a task outside any request settles, a
  ``knowledge.added`` of kind ``lesson`` (see :mod:`monitoring.lessons`) — and one for every task
  that failed for good, wherever it ran. A lesson's entry id is made of what it is about, and its
  event id of that, appended where its stream must not exist yet: a restarted learner, or two
  racing, never record a lesson twice.
* **Strategies.** When the evidence about one thing crosses its threshold
  (:class:`LearnerSettings`), a ``strategy.changed`` with that evidence's positions: a model whose
  edits for a capability are refused too often is swapped for the first model of its fallback
  chain (``[models] fallback``; the gate still decides whether the role may use it); a
  capability whose leases keep running out while their holders are alive (``task.lease_expired``
  with ``ran_out``) gets a lease ``lease_factor`` times longer; a test that
  failed and then passed in the same task with no edit in between, ``flaky_after`` times, is
  retried once when it is all that fails. Only evidence recorded *after* the last strategy about
  the same thing (or its revert by a person) counts, so a reverted strategy comes back only on new
  evidence. Every strategy is appended to the one ``strategies`` stream at the version it was
  decided from: a person's revert in between makes the learner decide again.

What the learner has done is known only from its own events folded back, so a decision whose
append failed is decided again, and none is made twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from actors.follow import Process
from events import NO_STREAM, Intent, NewEvent, RecordedEvent, streams
from events.catalogue import (
    FeatureRequested,
    KnowledgeAdded,
    ModelCallCompleted,
    ModelCallFailed,
    RequestFinished,
    RequestSubmitted,
    StrategyChanged,
    StrategyKind,
    StrategyReverted,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskRequeued,
    TaskSubmitted,
    TestsReported,
    WarrantIssued,
)
from events.catalogue.models import EditApplied, EditMalformed
from monitoring.lessons import RequestSeen, TaskSeen, entry_id, request_lesson, task_lesson
from projections.strategies import Key, StrategyBook

BY = "learner"
"""Who the learner's strategies are ``by``."""
EVIDENCE = 50
"""The most positions a strategy keeps as its evidence (the latest)."""


class LearnerSettings(BaseModel):
    """When evidence is enough to change a strategy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    malformed_after: int = Field(3, ge=1, description="refused answers of one model for one capability that swap it")
    malformed_share: float = Field(0.5, gt=0, le=1, description="the share of that model's answers (for that "
                                                                "capability) that must have been refused")
    lease_after: int = Field(2, ge=1, description="expired leases of one capability that lengthen its lease")
    lease_factor: float = Field(2.0, gt=1, description="how much longer each new lease is")
    longest_lease: float = Field(3600.0, gt=0, description="the longest lease the learner gives (seconds)")
    flaky_after: int = Field(2, ge=1, description="times a test failed, then passed with no edit in between, in one "
                                                  "task before it is retried as flaky")
    lessons: bool = Field(True, description="record a lesson for every finished request and task")


@dataclass
class Learner(Process):
    """The fold, and the decisions (see the module)."""

    types = tuple(cls.type_name for cls in (
        TaskSubmitted, TaskAssigned, TaskFailed, TaskLeaseExpired, TaskCompleted, TaskDeadLettered, TaskCancelled,
        TaskRequeued, ModelCallCompleted, ModelCallFailed, EditApplied, EditMalformed, WarrantIssued, TestsReported,
        RequestSubmitted, FeatureRequested, RequestFinished, KnowledgeAdded, StrategyChanged, StrategyReverted))
    """Exactly the types :meth:`evolve` folds: the others are not even read."""

    settings: LearnerSettings = field(default_factory=lambda: LearnerSettings())
    fallback: dict[str, list[str]] = field(default_factory=dict)
    """The models configuration's fallback chains: model → the models that may stand in for it, in order."""
    lease: float = 60.0
    """The lease the dispatcher gives when no strategy says otherwise (its settings' ``lease``)."""
    position: int = 0
    tasks: dict[str, TaskSeen] = field(default_factory=dict)
    requests: dict[str, RequestSeen] = field(default_factory=dict)
    warrants: dict[str, str] = field(default_factory=dict)
    """Warrant id → the task it was issued for."""
    recorded: set[str] = field(default_factory=set)
    """Entry ids of the lessons in the log."""
    pending: dict[str, KnowledgeAdded] = field(default_factory=dict)
    """Lessons decided and not folded back yet."""
    book: StrategyBook = field(default_factory=StrategyBook)
    refused: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(capability, model) → positions of answers whose edits were refused."""
    answered: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(capability, model) → positions of answers whose edits applied."""
    expired: dict[str, list[int]] = field(default_factory=dict)
    """Capability → positions of its leases whose term ran out while their holders were alive."""
    flips: dict[str, list[int]] = field(default_factory=dict)
    """Test id → positions of runs in which it passed after failing in the same task with no edit in between."""

    # -- the fold --------------------------------------------------------------------------------

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event of the log."""
        at, p = event.position, event.payload
        if self.book.evolve(event):
            return
        match p:
            case TaskSubmitted():
                self.tasks[p.task_id] = TaskSeen(p.task_id, p.capability, p.request_id, p.title, list(p.depends_on),
                                                 submitted_at=at)
                if p.request_id is not None:
                    self.requests.setdefault(p.request_id, RequestSeen(p.request_id)).tasks.append(p.task_id)
            case RequestSubmitted():
                self.requests.setdefault(p.request_id, RequestSeen(p.request_id)).title = p.title
            case FeatureRequested():
                request = self.requests.setdefault(p.request_id, RequestSeen(p.request_id))
                request.orchestrated, request.title = True, request.title or p.instruction[:120]
            case RequestFinished():
                request = self.requests.setdefault(p.request_id, RequestSeen(p.request_id))
                request.outcome, request.reason, request.elapsed_s, request.finished_at = (
                    p.outcome, p.reason, p.elapsed_s, at)
                request.orchestrated = True
                self._learn_request(request)
            case KnowledgeAdded():
                self.recorded.add(p.entry_id)
                self.pending.pop(p.entry_id, None)
            case WarrantIssued() if p.task_id is not None:
                self.warrants[p.warrant_id] = p.task_id
            case _:
                self._task_event(event)

    def _task_event(self, event: RecordedEvent) -> None:
        at, p = event.position, event.payload
        task = self.tasks.get(getattr(p, "task_id", None) or self.warrants.get(getattr(p, "warrant_id", ""), ""))
        if task is None:
            return  # submitted before the log we read began, or not a task's: nothing to learn from it
        match p:
            case TaskAssigned():
                task.attempts += 1
            case TaskFailed():
                task.failures.append((at, p.kind, p.error))
            case TaskLeaseExpired():
                task.failures.append((at, "transient", f"its lease was taken back: {p.reason}"))
                if p.ran_out:  # a holder that died or fell silent is no sign the lease is too short
                    self.expired.setdefault(task.capability, []).append(at)
            case ModelCallCompleted():
                task.tokens += p.input_tokens + p.output_tokens
                task.models.append(p.model)
            case ModelCallFailed():
                task.model_failures.append(at)
            case EditApplied():
                task.applied.append((at, p.round, p.model, list(p.files)))
                self.answered.setdefault((task.capability, p.model), []).append(at)
            case EditMalformed():
                task.refused.append((at, p.model, p.refusal))
                self.refused.setdefault((task.capability, p.model), []).append(at)
            case TestsReported():
                self._tests(task, at, list(p.failures), p.passed)
            case TaskRequeued():
                task.status, task.dead_kind, task.dependency = "queued", None, None
            case TaskCompleted() | TaskDeadLettered() | TaskCancelled():
                task.status = {TaskCompleted: "completed", TaskDeadLettered: "dead_lettered",
                               TaskCancelled: "cancelled"}[type(p)]
                task.settled_at, task.settled_version = at, event.stream_version
                if isinstance(p, TaskDeadLettered):
                    task.dead_kind, task.last_error, task.dependency = p.kind, p.last_error, p.dependency
                self._learn_task(task)

    def _tests(self, task: TaskSeen, at: int, failing: list[str], passed: int) -> None:
        """A test that failed in this task's last run and passes now, with no edit applied in between, flipped."""
        if task.tests and passed:
            before, failed_then, _ = task.tests[-1]
            if not any(before < a[0] < at for a in task.applied):
                for test in set(failed_then) - set(failing):
                    self.flips.setdefault(test, []).extend([before, at])
        task.tests.append((at, failing, passed))

    def _learn_task(self, task: TaskSeen) -> None:
        """Decide the lessons a settled task gives: its own (outside an orchestrated request, or a failure), and its
        request's once every task of a request nobody orchestrates has settled."""
        if not self.settings.lessons:
            return
        request = self.requests.get(task.request_id or "")
        if (task.status == "dead_lettered" and task.dependency is None) or request is None:
            self._lesson(task_lesson(task, entry_id("task", task.task_id, str(task.settled_version))))
        if request is not None and not request.orchestrated:
            tasks = [self.tasks[t] for t in request.tasks if t in self.tasks]
            if tasks and all(t.settled for t in tasks):
                self._lesson(request_lesson(request, tasks, entry_id("request", request.request_id),
                                            max(t.settled_at for t in tasks)))

    def _learn_request(self, request: RequestSeen) -> None:
        if self.settings.lessons:
            tasks = [self.tasks[t] for t in request.tasks if t in self.tasks]
            self._lesson(request_lesson(request, tasks, entry_id("request", request.request_id), request.finished_at))

    def _lesson(self, lesson: KnowledgeAdded) -> None:
        if lesson.entry_id not in self.recorded:
            self.pending[lesson.entry_id] = lesson

    # -- the decisions ---------------------------------------------------------------------------

    def decide(self, now: float) -> Sequence[Intent]:
        """The lessons not recorded yet, and the strategies the evidence now calls for (in one append to the
        ``strategies`` stream, at the version they were decided from)."""
        out = [Intent(streams.knowledge(lesson_id), [NewEvent(payload=lesson, event_id=uuid.uuid5(
            uuid.NAMESPACE_URL, f"council:lesson:{lesson_id}"))], NO_STREAM)
            for lesson_id, lesson in self.pending.items()]
        changes = self.strategies()
        if changes:
            out.append(Intent(streams.STRATEGIES, [NewEvent(payload=c, event_id=uuid.uuid5(
                uuid.NAMESPACE_URL, f"council:strategy:{c.strategy_id}")) for c in changes],
                self.book.version or NO_STREAM))
        return out

    def strategies(self) -> list[StrategyChanged]:
        """The strategy changes the evidence calls for now (none is recorded by this: see :meth:`decide`)."""
        effect = self.book.in_effect()
        out = []
        for (capability, model), refused in sorted(self.refused.items()):
            key: Key = ("model-swap", capability, model)
            chain = [m for m in self.fallback.get(model, []) if m != model]
            if key in effect or not chain:
                continue
            since = self.book.last_moved(key)
            bad = [p for p in refused if p > since]
            good = [p for p in self.answered.get((capability, model), []) if p > since]
            if len(bad) >= self.settings.malformed_after and len(bad) >= self.settings.malformed_share * (
                    len(bad) + len(good)):
                out.append(self._change("model-swap", capability, chain[0], bad, model=model, reason=(
                    f"{len(bad)} of {len(bad) + len(good)} answers of {model} for {capability} had their edits "
                    f"refused; {chain[0]} is next in its fallback chain")))
        for capability, expired in sorted(self.expired.items()):
            key = ("lease", capability, "")
            since = self.book.last_moved(key)
            recent = [p for p in expired if p > since]
            current = self.book.leases().get(capability, self.lease)
            longer = min(self.settings.longest_lease, current * self.settings.lease_factor)
            if len(recent) >= self.settings.lease_after and longer > current:
                out.append(self._change("lease", capability, f"{longer:g}", recent, reason=(
                    f"{len(recent)} leases of {capability} tasks expired at {current:g} s; leased for {longer:g} s")))
        for test, flips in sorted(self.flips.items()):
            key = ("flaky-retry", test, "")
            since = self.book.last_moved(key)
            recent = [p for p in flips if p > since]
            if key not in effect and len(recent) // 2 >= self.settings.flaky_after:
                out.append(self._change("flaky-retry", test, "1", recent, reason=(
                    f"{test} failed and then passed with no edit in between {len(recent) // 2} time(s); a run in "
                    "which only flaky tests fail is run once more")))
        return out

    def _change(self, kind: StrategyKind, subject: str, value: str, evidence: list[int], *, reason: str,
                model: str = "") -> StrategyChanged:
        """A strategy change with an id made of what it is about and how many came before it about the same."""
        before = len(self.book.about((kind, subject, model)))
        strategy_id = f"{kind}:{subject}" + (f":{model}" if model else "")
        suffix = f"#{before + 1}"
        return StrategyChanged(strategy_id=strategy_id[:200 - len(suffix)] + suffix, kind=kind, subject=subject,
                               model=model, value=value, evidence=sorted(evidence)[-EVIDENCE:], reason=reason, by=BY)

    def due(self, now: float) -> float:
        """Nothing falls due on the clock: the learner decides when the log moves."""
        return now + 5.0
