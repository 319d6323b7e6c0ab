"""The report of a run — the pipeline's, or the coding team's and then the pipeline's — read back from the log:
each step's status, the results of those that completed as their types, what the team did and its model calls
cost, the sandbox's record, and the approval production waits for."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from actors.coding.coder import CodeWritten
from actors.coding.documenter import DocsWritten
from actors.coding.plan import RESULTS as CODING_RESULTS
from actors.coding.reviewer import CodeReviewed
from actors.coding.tester import Fixed, TestsWritten
from actors.orchestrator.architect import DesignWritten
from actors.orchestrator.planner import PlanWritten
from actors.pipeline.plan import STEPS, task_id
from actors.pipeline.results import (
    RESULTS,
    BuildResult,
    DocsResult,
    Release,
    ResultMismatch,
    ReviewResult,
    SetupResult,
    StepResult,
    TestResult,
    pick,
    read,
)
from actors.tools.checkout import REQUEST
from cluster.driver import Council
from cluster.pipeline import Run
from cluster.settings import Settings
from events import CouncilError, EventStore, streams
from events.catalogue import (
    ActionCompleted,
    GitCommitted,
    PipelinePlanned,
    TaskAwaiting,
    TaskCompleted,
    TaskFailed,
    TaskStatus,
    TestsReported,
    WarrantIssued,
)
from governance import reviews
from governance.approvals import ApprovalLedger
from governance.reviews import ReviewLedger

RESULT_TYPES: dict[str, type[StepResult]] = {**RESULTS, **CODING_RESULTS, "design.write": DesignWritten,
                                            "plan.write": PlanWritten}
"""Capability → the type of the result its skill hands on: the pipeline's steps, the coding team's and the
orchestrator's."""


@dataclass
class Report:
    """What a pipeline run did, read back from the log: each step's status, and the results of those that completed,
    as their types (:data:`RESULT_TYPES`)."""

    request_id: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    """Per step, in the plan's order: ``step``, ``task_id``, ``status`` (a :class:`TaskStatus`), ``agent``,
    ``seconds``."""
    results: dict[str, StepResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Per step: why it was dead-lettered, or why its recorded result cannot be read."""
    tracebacks: dict[str, str] = field(default_factory=dict)
    """Per dead-lettered step whose last attempt failed unexpectedly (not a test, a finding or a refusal): where."""
    verdicts: dict[str, str] = field(default_factory=dict)
    """Per step that failed on its own: what the error detector made of it (why nothing will retry it)."""
    approval: dict[str, Any] | None = None
    tree: str = ""
    confined: dict[str, int] = field(default_factory=dict)
    """How many actions that ran commands ran in the sandbox (``bubblewrap``) and how many unconfined (``off``)."""
    limits: dict[str, list[str]] = field(default_factory=dict)
    """Per step: the resource limits its commands broke (and were stopped for)."""
    tested: TestsReported | None = None
    """What the last test run recorded, whether the step completed or not (a failed run's counts and details)."""
    commits: list[tuple[str, str, GitCommitted]] = field(default_factory=list)
    """Every commit the run's agents made, in the order they were recorded: (step, agent, the record)."""
    reviews: list[tuple[str, ReviewLedger]] = field(default_factory=list)
    """The reviews steps wait on: (step, the review as folded)."""
    shipped_by: list[str] = field(default_factory=list)
    """Who signed production's approval, as ``name (fingerprint)``, once it was granted."""
    costs: list[tuple[str, int, int, int, float]] = field(default_factory=list)
    """Per agent that called models for the request: (agent, calls, tokens in, tokens out, dollars)."""
    options: str = ""
    """What a printed command must carry to reach this council's log and keys (``--store``, ``--home``), when they
    are not the defaults a command in the current directory would use."""

    @property
    def outcome(self) -> str:
        """``shipped``, ``awaiting approval``, ``failed at <step>``, or ``running``."""
        by_step = {s["step"]: s["status"] for s in self.steps}
        failed = next((s["step"] for s in self.steps
                       if s["status"] is TaskStatus.DEAD_LETTERED and s["step"] in self.errors), None)
        if failed:
            return f"failed at {failed}"
        if by_step.get("prod") is TaskStatus.COMPLETED:
            return "shipped"
        if by_step.get("prod") is TaskStatus.AWAITING_APPROVAL:
            return "awaiting approval"
        return "running"

    def sandbox(self) -> str:
        """What the sandbox did: how many actions ran commands in it, any that ran unconfined, the limits hit."""
        inside, outside = self.confined.get("bubblewrap", 0), self.confined.get("off", 0)
        line = f"sandbox: {inside} action(s) ran their commands in bubblewrap"
        if outside:
            line = (f'WARNING: {outside} action(s) ran their commands unconfined (the policy says [sandbox] mode = '
                    f'"off"); {inside} in bubblewrap')
        hit = "; ".join(f"{step}: {', '.join(limits)}" for step, limits in self.limits.items())
        return line + (f"; limits hit: {hit}" if hit else "; no limit was hit")

    def team(self) -> list[str]:
        """What the coding team did (nothing for a run of the pipeline alone), and what its model calls cost."""
        lines: list[str] = []
        if self.commits and pick(self.results, "code", CodeWritten) is not None:
            touched = sorted({f for _, _, made in self.commits for f in made.files})
            lines.append(f"changed: {len(touched)} file(s) in {len(self.commits)} commit(s), each under its "
                         "agent's warrant:")
            lines += [f"  {made.commit[:12]} {step:<9} {agent:<13} {made.warrant_id}  "
                      f"{made.message.splitlines()[0][:70]} ({len(made.files)} file(s))"
                      for step, agent, made in self.commits]
        if code := pick(self.results, "code", CodeWritten):
            lines.append(f"code: {', '.join(code.files)} in commit {str(code.commit)[:12]} by {code.model} "
                         f"({code.rounds} answer(s), {code.refused} refused): {code.summary}")
        if tests := pick(self.results, "tests", TestsWritten):
            lines.append(f"tests: {', '.join(tests.files)} in commit {str(tests.commit)[:12]}; first run "
                         f"{tests.run.summary()}")
        for name, result in self.results.items():
            if isinstance(result, Fixed):
                lines.append(f"{name}: {', '.join(result.files)} in commit {str(result.commit)[:12]}" if result.fixed
                             else f"{name}: nothing to fix; {result.reason}")
            elif name.startswith("retest-") and isinstance(result, TestResult):
                lines.append(f"{name}: {result.summary()}")
        if critique := pick(self.results, "critique", CodeReviewed):
            counted = ", ".join(f"{n} {s}" for s, n in critique.counts.items() if n) or "no findings"
            lines.append(f"critique: {len(critique.reviewed)} file(s) reviewed by {critique.model or 'no model'}: "
                         f"{counted}" + (f"; {critique.fixed} fixed in commit {critique.fix_commit[:12]}"
                                         if critique.fix_commit else ""))
            lines += [f"  {f.severity:<8} {f.kind or f.tool} {f.path}:{f.line} {f.message[:160]}"
                      for f in critique.findings[:5]]
        if document := pick(self.results, "document", DocsWritten):
            lines.append(f"document: {', '.join(document.files) or 'nothing to change'}"
                         + (f" in commit {document.commit[:12]}" if document.commit else ""))
        if self.costs:
            lines.append("model calls, by agent:")
            lines += [f"  {agent:<14} {calls:>3} call(s), {tokens_in:,} tokens in, {tokens_out:,} out, ${cost:.4f}"
                      for agent, calls, tokens_in, tokens_out, cost in self.costs]
        return ["", *lines] if lines else []

    @property
    def staging(self) -> str | None:
        """Where staging's release is live, and which: ``<current link> → release <id> (<artefact>)``."""
        release = pick(self.results, "staging", Release)
        if release is None or not release.path:
            return None
        return f"{release.path} → release {release.release} ({release.artefact})"

    def text(self) -> str:
        """The report, for a terminal."""
        lines = [f"pipeline {self.request_id}: {self.outcome}", f"  tree: {self.tree}", "", "steps:"]
        for s in self.steps:
            took = f"{s['seconds']:.1f} s" if s.get("seconds") is not None else ""
            lines.append(f"  {s['step']:<8} {s['status']:<18} {s.get('agent') or '':<13} {took}")
        for step, error in self.errors.items():
            lines.append(f"  ! {step}: {error}")
            if step in self.verdicts:
                lines.append(f"    stopped for good: {self.verdicts[step]}")
            if step in self.tracebacks:
                lines += [f"      {line}" for line in self.tracebacks[step].rstrip().splitlines()[-12:]]
        lines += self.team()
        lines += ["", self.sandbox()]
        if (made := pick(self.results, "setup", SetupResult)) and made.python:
            lines += ["", f"environment: {made.python} (installed {' '.join(made.installed)}; the build backend "
                          + ("from the package index)" if made.isolated else "the council's)")]
        if test := pick(self.results, "test", TestResult):
            lines += ["", f"tests: {test.summary()}" + (f" (ran {', '.join(test.ran)})" if test.ran else "")]
        elif self.tested is not None:
            t = self.tested
            lines += ["", f"tests: {t.passed} passed, {t.failed} failed, {t.errors} errors, {t.skipped} skipped"]
            for test_id, detail in list(t.details.items())[:3]:
                lines.append(f"  {test_id}:")
                lines += [f"    {line}" for line in detail.splitlines()[-12:]]
        if review := pick(self.results, "review", ReviewResult):
            lines.append(f"review: {review.summary()}; blocks at {review.threshold}"
                         + (f"; safe fixes committed as {review.fix_commit[:12]}" if review.fix_commit else ""))
            lines += [f"  {f.severity:<8} {f.tool} {f.rule} {f.path}:{f.line} {f.message[:160]}" for f in review.top]
            if review.findings > len(review.top):
                lines.append(f"  … and {review.findings - len(review.top)} more (review.reported in the log)")
        if build := pick(self.results, "build", BuildResult):
            lines.append(f"build: {'reproducible' if build.reproducible else 'NOT reproducible'} "
                         f"(two builds compared byte for byte) at commit {str(build.commit)[:12]}")
            lines += [f"  {a.sha256}  {a.name}" for a in build.artefacts]
            if build.provenance:
                lines.append(f"  provenance: {self.tree}/{build.provenance} (in-toto SLSA v1, DSSE, "
                             f"signed by {build.signer})")
        if self.staging:
            lines.append(f"staging: {self.staging}")
        if (prod := pick(self.results, "prod", Release)) and prod.path:
            lines.append(f"production: {prod.path} → release {prod.release} ({prod.artefact})"
                         + (f", approved by {', '.join(self.shipped_by)}" if self.shipped_by else ""))
        if docs := pick(self.results, "docs", DocsResult):
            lines.append(f"docs: {self.tree}/{docs.changelog}, {self.tree}/{docs.graph}")
        for step, open_review in self.reviews:
            asked = open_review.requested
            assert asked is not None  # only a review that was asked is waited on
            lines += ["", f"{step} waits for review {asked.review_id} of {', '.join(asked.artefact.paths)} "
                          f"({asked.reason or 'security-sensitive'}): {len(open_review.answers)} of "
                          f"{open_review.needed} answer(s) from {', '.join(open_review.reviewers)}. "
                          "To read and answer it:",
                      f"  council reviews {asked.review_id}{self.options}",
                      f"  council answer {asked.review_id} --approve|--changes|--comment --key NAME \"…\""
                      f"{self.options}"]
        if self.approval:
            a = self.approval
            lines += ["", f"production waits for {a['needed']} approvals of {', '.join(a['approvers'])} "
                          f"(deploy {a['target']}, digest {a['digest'][:16]}…). To approve:"]
            lines += [f"  council approve {a['approval_id']} --key {key}{self.options}" for key in a["keys"]]
        return "\n".join(lines)


def report(council: Council, run: Run | str) -> Report:
    """The report of a run (or a request id): each step's status from the ``tasks`` read model, the
    results its task recorded (as their types), and the approval production waits for. The steps are those of the
    request's last ``pipeline.planned`` (an orchestrated request records one each time its plan is adopted or
    revised)."""
    request_id = run.request_id if isinstance(run, Run) else run
    planned = [e.payload for e in council.store.read_stream(streams.request(request_id))
               if isinstance(e.payload, PipelinePlanned)]
    if not REQUEST.match(request_id) or not planned:
        raise CouncilError(f"there is no pipeline {request_id}; runs are listed by "
                           "`council sql \"SELECT * FROM requests\"`")
    workspace = council.settings.absolute().workspace or ""
    found = Report(request_id, tree=str(Path(workspace) / planned[-1].tree), options=_options(council.settings))
    rows = council.sql("SELECT task_id, status, agent_id, duration_s, last_error FROM tasks "
                       f"WHERE request_id = '{request_id}'")  # the id matched REQUEST: no quote can be in it
    tasks = {row[0]: row for row in rows.rows}
    for step in planned[-1].steps:
        unseen = (step.task_id, TaskStatus.SUBMITTED, None, None, None)  # not folded into the read model yet
        _, named, agent, seconds, error = tasks.get(step.task_id, unseen)
        status = TaskStatus(named)
        if status is TaskStatus.COMPLETED:
            completed = _last(council, step.task_id, TaskCompleted)
            try:
                kind = RESULT_TYPES.get(step.capability)
                if kind is None:
                    raise KeyError(f"{step.capability} is not a step this council knows the result of")
                found.results[step.step] = read(completed.result, kind, f"task {step.task_id}")
            except (KeyError, ResultMismatch) as unreadable:  # a step this pipeline does not know, a result of
                found.errors[step.step] = str(unreadable.args[0])  # another shape: said in the report, not raised
        elif status is TaskStatus.AWAITING_APPROVAL:
            authority = _last(council, step.task_id, TaskAwaiting).authority_id
            review = reviews.fold(e.payload for e in council.store.read_stream(streams.review(authority)))
            if review.requested is not None and review.decided is None:
                found.reviews.append((step.step, review))
            else:
                found.approval = _approval(council, authority)
        elif status is TaskStatus.DEAD_LETTERED and error:
            found.errors[step.step] = error
            judged = council.verdict(step.task_id)
            if judged.state == "final":
                found.verdicts[step.step] = judged.why
            failed = [e.payload for e in council.store.read_stream(streams.task(step.task_id))
                      if isinstance(e.payload, TaskFailed)]
            if failed and failed[-1].traceback and failed[-1].kind not in ("permanent", "denied"):
                found.tracebacks[step.step] = failed[-1].traceback
        if step.step == "prod" and status is TaskStatus.COMPLETED:
            waited = [e.payload for e in council.store.read_stream(streams.task(step.task_id))
                      if isinstance(e.payload, TaskAwaiting)]
            granted = _approval(council, waited[-1].authority_id) if waited else None
            found.shipped_by = granted["signed"] if granted else []
        found.steps.append({"step": step.step, "task_id": step.task_id, "status": status, "agent": agent,
                            "seconds": seconds if status is TaskStatus.COMPLETED else None})
    _confinement(council, {step.task_id: step.step for step in planned[-1].steps}, found)
    spent = council.sql("SELECT agent_id, count(*), sum(input_tokens), sum(output_tokens), sum(cost) FROM llm_calls "
                        f"WHERE request_id = '{request_id}' GROUP BY agent_id ORDER BY agent_id")
    found.costs = [(str(a), int(n), int(i or 0), int(o or 0), float(c or 0.0)) for a, n, i, o, c in spent.rows]
    return found


def _confinement(council: Council, steps: dict[str, str], found: Report) -> None:
    """Count the run's actions that ran commands, in and out of the sandbox, and the limits each step's broke; keep
    the last test run's record."""
    warrants = [(e.payload.warrant_id, steps[e.payload.task_id], e.payload.holder)
                for e in council.store.read_all(1, None, ["warrant.issued"])
                if isinstance(e.payload, WarrantIssued) and e.payload.task_id in steps]
    commits: list[tuple[int, str, str, GitCommitted]] = []
    for warrant_id, step, agent in warrants:
        for event in council.store.read_stream(streams.warrant(warrant_id)):
            done = event.payload
            if isinstance(done, TestsReported):
                found.tested = done
            if isinstance(done, GitCommitted):
                commits.append((event.position, step, agent, done))
            if not isinstance(done, ActionCompleted) or done.confinement is None:
                continue
            mode = done.confinement.sandbox
            found.confined[mode] = found.confined.get(mode, 0) + 1
            for limit in done.limits_hit:
                if limit not in found.limits.setdefault(step, []):
                    found.limits[step].append(limit)
    found.commits = [(step, agent, made) for _, step, agent, made in sorted(commits, key=lambda c: c[0])]


E = TypeVar("E", TaskCompleted, TaskAwaiting)


def _options(settings: Settings) -> str:
    """The options a command run in this directory needs to reach the log and keys of ``settings`` (see
    :attr:`Report.options`)."""
    given, default = settings.absolute(), Settings().absolute()
    beside = Settings(store=given.store).absolute()  # the home a command given only --store finds
    options = f" --store {shlex.quote(given.store)}" if given.store != default.store else ""
    return options + (f" --home {shlex.quote(given.home)}" if given.home != beside.home else "")


def review_before(log: EventStore, step_task: str) -> ReviewResult | None:
    """The review a pipeline's step ``step_task`` (its production deploy) comes after, as it was recorded; None if
    the task is no pipeline's, or its request has no completed review."""
    request_id, _, step = step_task.rpartition("-")
    if step not in {s.name for s in STEPS} or not REQUEST.match(request_id):
        return None
    done = [e.payload for e in log.read_stream(streams.task(task_id(request_id, "review")))
            if isinstance(e.payload, TaskCompleted)]
    try:
        return read(done[-1].result, ReviewResult, f"the review of {request_id}") if done else None
    except ResultMismatch:
        return None


def _last(council: Council, task_id: str, kind: type[E]) -> E:
    """The last event of ``kind`` in the task's stream (the read model says there is one)."""
    return next(e.payload for e in reversed(council.store.read_stream(streams.task(task_id)))
                if isinstance(e.payload, kind))


def _approval(council: Council, approval_id: str) -> dict[str, Any] | None:
    ledger = ApprovalLedger()
    for event in council.store.read_stream(streams.approval(approval_id)):
        ledger.evolve(event.payload, event.recorded_at.timestamp())
    asked = ledger.requested
    if asked is None:
        return None
    signed = set(ledger.approvals)  # fingerprints whose signatures count
    keys = [name for name, fp in asked.approvers.items() if fp not in signed]
    return {"approval_id": approval_id, "needed": asked.needed, "approvers": sorted(asked.approvers),
            "keys": keys[:max(0, asked.needed - len(signed))] or keys, "target": asked.spec.target,
            "digest": asked.digest,
            "signed": [f"{name} ({fp})" for name, fp in asked.approvers.items() if fp in signed]}
