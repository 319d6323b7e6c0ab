"""What a finished task or request taught, as a knowledge entry of kind ``lesson``: the pure part of the learner.

:class:`TaskSeen` and :class:`RequestSeen` are what the learner (:mod:`monitoring.learner`) folded of
a task and a request; :func:`task_lesson` and :func:`request_lesson` turn them into the
``knowledge.added`` a person can read: what worked (the plan's shape as it ran, the edits that
applied the first time, the fixes that made refused edits or failing tests pass) and what failed
(each dead letter's class as the error detector judges it, its last error, and the positions of
the events that led to it). Every claim carries its evidence: log positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from events.catalogue import FailureKind, KnowledgeAdded, KnowledgeSource
from monitoring.errors import classified, gist

EVIDENCE = 200
"""The most positions a lesson keeps as its evidence (the first ones: what led to the outcome)."""
ERROR_CHARS = 300
"""How much of a failure's error a lesson quotes."""
BODY_CHARS = 60_000
"""The longest body a lesson has (an event's text holds 64 KiB): a request of very many tasks is cut short."""


@dataclass
class TaskSeen:
    """One task as the learner folded it."""

    task_id: str
    capability: str
    request_id: str | None
    title: str = ""
    depends_on: list[str] = field(default_factory=list)
    submitted_at: int = 0
    attempts: int = 0
    """Leases given (each a try)."""
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    """(position, kind, error) of each failed attempt, an expired lease counted as transient."""
    tokens: int = 0
    models: list[str] = field(default_factory=list)
    model_failures: list[int] = field(default_factory=list)
    applied: list[tuple[int, int, str, list[str]]] = field(default_factory=list)
    """(position, round, model, files) of each answer whose edits all applied."""
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    """(position, model, refusal) of each answer whose edits were refused."""
    tests: list[tuple[int, list[str], int]] = field(default_factory=list)
    """(position, failing tests, passed) of each test run."""
    status: str = "submitted"
    """``completed``, ``dead_lettered``, ``cancelled`` once settled; otherwise where it is."""
    settled_at: int = 0
    settled_version: int = 0
    dead_kind: FailureKind | None = None
    last_error: str = ""
    dependency: str | None = None

    @property
    def settled(self) -> bool:
        """Whether it will not run again unless someone requeues it."""
        return self.status in ("completed", "dead_lettered", "cancelled")

    def evidence(self) -> list[int]:
        """The positions its lesson rests on, in log order."""
        found = {self.submitted_at, self.settled_at, *(p for p, _, _ in self.failures), *self.model_failures,
                 *(p for p, *_ in self.applied), *(p for p, *_ in self.refused), *(p for p, *_ in self.tests)}
        return sorted(p for p in found if p > 0)

    def worked(self) -> list[str]:
        """What went right, a line each (empty if nothing is worth saying)."""
        out = []
        first = [a for a in self.applied if a[1] == 1]
        if first:
            files = sorted({f for a in first for f in a[3]})
            out.append(f"the edits of {first[0][2]} applied the first time ({', '.join(files[:8]) or 'no file'}; "
                       f"position {first[0][0]})")
        later = [a for a in self.applied if a[1] > 1]
        if later:
            refusals = sorted({r for _, _, r in self.refused})
            out.append(f"edits refused as {', '.join(refusals) or 'malformed'} were fixed in round {later[-1][1]} by "
                       f"{later[-1][2]} (position {later[-1][0]})")
        fixed = self._tests_fixed()
        if fixed:
            out.append(fixed)
        if self.status == "completed" and self.attempts > 1:
            out.append(f"it completed on attempt {self.attempts} after {len(self.failures)} failed one(s)")
        return out

    def _tests_fixed(self) -> str | None:
        """The run whose tests passed after an earlier run of this task failed, said."""
        for i, (position, failing, passed) in enumerate(self.tests):
            before = [t for t in self.tests[:i] if t[1]]
            if not failing and passed and before:
                names = sorted({n for _, f, _ in before for n in f})
                return (f"the tests that failed ({', '.join(names[:5])}) passed at position {position}"
                        + (" after the edits in between" if any(before[-1][0] < a[0] < position for a in self.applied)
                           else ", with no edit in between: a flaky test?"))
        return None

    def failed(self) -> str | None:
        """Why it failed for good, with the error detector's judgement, or None if it did not."""
        if self.status != "dead_lettered" or self.dead_kind is None:
            return None
        if self.dependency is not None:
            return f"it never ran: the task it depends on, {self.dependency}, failed for good"
        ways = [gist(e) for _, k, e in self.failures if k == self.dead_kind]
        alike = len(ways) if len(ways) > 1 and len(set(ways)) == 1 else 0
        led = ", ".join(str(p) for p, _, _ in self.failures[-5:])
        return (f"{self.dead_kind}: {classified(self.dead_kind, alike)}. The last error: "
                f"{self.last_error[:ERROR_CHARS]!r}" + (f" (the attempts' failures: positions {led})" if led else ""))


@dataclass
class RequestSeen:
    """One request as the learner folded it."""

    request_id: str
    title: str = ""
    orchestrated: bool = False
    tasks: list[str] = field(default_factory=list)
    """Its tasks, in the order submitted."""
    outcome: str = ""
    reason: str = ""
    elapsed_s: float = 0.0
    finished_at: int = 0


def entry_id(*parts: str) -> str:
    """A lesson's entry id: ``lesson-`` and ``parts``, within the 200 characters an id may have."""
    return "-".join(("lesson", *parts))[:200]


def task_lesson(task: TaskSeen, lesson_id: str) -> KnowledgeAdded:
    """The lesson of a settled task outside any orchestrated request (or of one that failed for good)."""
    failed = task.failed()
    source: KnowledgeSource = "failure" if failed else "request"
    body = [f"Task {task.task_id} ({task.capability}) {task.status.replace('_', '-')} after {task.attempts} "
            f"attempt(s), {task.tokens} model tokens{_models(task)}."]
    worked = task.worked()
    if worked:
        body += ["", "## What worked", *(f"- {line}" for line in worked)]
    if failed:
        body += ["", "## What failed", f"- {failed}"]
    title = f"{task.capability}: {'failed: ' + (task.dead_kind or '') if failed else task.status}" + (
        f" — {task.title}" if task.title else "")
    return KnowledgeAdded(entry_id=lesson_id, kind="lesson", title=title[:200], body=_bounded(body),
                          tags=_tags(["task", task.capability, task.status, task.dead_kind or ""]),
                          source=source, origin=task.request_id or task.task_id, evidence=task.evidence()[:EVIDENCE])


def request_lesson(request: RequestSeen, tasks: list[TaskSeen], lesson_id: str, finished_at: int) -> KnowledgeAdded:
    """The lesson of a finished request: the shape its plan ran in, and what worked and failed task by task."""
    attempts = sum(t.attempts for t in tasks)
    tokens = sum(t.tokens for t in tasks)
    outcome = request.outcome or ("completed" if all(t.status == "completed" for t in tasks) else "stopped")
    head = (f"Request {request.request_id}" + (f" ({request.title!r})" if request.title else "")
            + f" {outcome}" + (f" in {request.elapsed_s:.1f} s" if request.elapsed_s else "")
            + f": {len(tasks)} task(s), {attempts} attempt(s), {tokens} model tokens."
            + (f" Why: {request.reason[:ERROR_CHARS]}" if request.reason else ""))
    shape = [f"- {t.task_id.removeprefix(request.request_id + '-')} ({t.capability})"
             + (f" after {', '.join(d.removeprefix(request.request_id + '-') for d in t.depends_on)}"
                if t.depends_on else "") for t in tasks]
    worked = [f"- {t.task_id}: {line}" for t in tasks for line in t.worked()]
    failed = [f"- {t.task_id}: {why}" for t in tasks if (why := t.failed()) is not None]
    body = [head, "", "## Plan shape", *(shape or ["- no task"])]
    if worked:
        body += ["", "## What worked", *worked]
    if failed:
        body += ["", "## What failed", *failed]
    evidence = sorted({finished_at, *(p for t in tasks for p in t.evidence())} - {0})
    source: KnowledgeSource = "failure" if failed or outcome == "stopped" else "request"
    title = f"{request.title or request.request_id}: {outcome}"
    return KnowledgeAdded(entry_id=lesson_id, kind="lesson", title=title[:200],
                          body=_bounded(body), tags=_tags(["request", outcome, *(t.capability for t in tasks)]),
                          source=source, origin=request.request_id, evidence=evidence[:EVIDENCE])


def _bounded(lines: list[str]) -> str:
    """The lines as one body of at most :data:`BODY_CHARS`, saying so when cut."""
    body = "\n".join(lines)
    return body if len(body) <= BODY_CHARS else body[:BODY_CHARS - 40].rsplit("\n", 1)[0] + "\n- … (cut: too long)"


def _models(task: TaskSeen) -> str:
    return f" (models: {', '.join(dict.fromkeys(task.models))})" if task.models else ""


def _tags(tags: list[str]) -> list[str]:
    """Distinct, non-empty tags of at most 64 characters, in order."""
    return list(dict.fromkeys(t[:64] for t in tags if t))[:20]
