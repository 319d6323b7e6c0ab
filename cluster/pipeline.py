"""Running the CI/CD pipeline on a repository, following it live, and reporting on it — all from the log.

    from cluster.driver import Council
    from cluster.pipeline import follow, report, start_ci

    with Council.start() as council:
        run = start_ci(council, "examples/sample-service")
        follow(council, run, print)           # every step's status as it changes, until the run settles
        print(report(council, run).text())

A run settles when every step has completed or was dead-lettered, or when production waits for
its approvals (the run goes on, as events, once they are signed: ``council approve``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.pipeline.config import load_config
from actors.pipeline.plan import STEPS, plan, task_id
from actors.tools.checkout import REQUEST, prepare
from actors.tools.workspace import Workspace
from cluster.driver import Council, new_request_id
from events import CouncilError
from governance.approvals import ApprovalLedger

SETTLED = ("completed", "dead_lettered")


@dataclass(frozen=True)
class Run:
    """A pipeline run: its request, its tree in the workspace and the task of each step."""

    request_id: str
    tree: Path
    commit: str
    base: str | None
    tasks: dict[str, str]


def start_ci(council: Council, repo: str | Path, base: str | None = None) -> Run:
    """Check ``repo`` out into a tree of its own and submit the pipeline over it (request, plan and tasks in one commit)."""
    workspace = council.settings.absolute().workspace
    if workspace is None:
        raise CouncilError("the council has no workspace; start it with a home (`council up`)")
    request_id = new_request_id()
    root = Workspace(workspace)
    checkout = prepare(root, request_id, repo, base)
    tree = root.path(checkout.path)
    try:
        config = load_config(tree)
    except CouncilError:
        shutil.rmtree(tree)  # nothing was submitted: leave nothing behind
        raise
    threshold = str(council.council_status().get("review_block_at") or "high")
    planned, specs = plan(request_id, checkout, config, threshold)
    council.request(f"ci {Path(checkout.source).name} @ {checkout.commit[:12]}", specs, request_id=request_id,
                    plan=planned)
    return Run(request_id, tree, checkout.commit, checkout.base, {s.name: task_id(request_id, s.name) for s in STEPS})


def follow(council: Council, run: Run, show: Callable[[str], None], timeout: float = 1800.0, *,
           through_prod: bool = False) -> dict[str, str]:
    """Call ``show`` with a line for every change of a step's status until the run settles; return the statuses.

    A run waiting for production approvals has settled, unless ``through_prod``: then every step must
    have completed or been dead-lettered.
    """
    steps = {t: name for name, t in run.tasks.items()}
    status: dict[str, str] = {}
    after = 0
    deadline = time.monotonic() + timeout
    while not _settled(status, run, through_prod):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pipeline {run.request_id} did not settle in {timeout:.0f} s; "
                               f"follow it with `council status`")
        feed = council.changes("tasks", after, timeout=1.0)
        after = max(after, feed.position)
        columns = feed.columns
        for row in feed.rows:
            record = dict(zip(columns, row, strict=True))
            task = record["task_id"]
            if task in steps and status.get(task) != record["status"]:
                status[task] = record["status"]
                agent = f" ({record['agent_id']})" if record.get("agent_id") else ""
                show(f"{steps[task]:<8} {record['status']}{agent}")
    return {steps[t]: s for t, s in status.items()}


def _settled(status: dict[str, str], run: Run, through_prod: bool) -> bool:
    if len(status) < len(run.tasks):
        return False
    rest = [s for t, s in status.items() if t != run.tasks["prod"]]
    prod = status.get(run.tasks["prod"])
    return all(s in SETTLED for s in rest) and (prod in SETTLED or (prod == "awaiting_approval" and not through_prod))


@dataclass
class Report:
    """What a pipeline run did, read back from the log."""

    request_id: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    approval: dict[str, Any] | None = None
    staging: str | None = None
    tree: str = ""

    @property
    def outcome(self) -> str:
        """``shipped``, ``awaiting approval``, ``failed at <step>``, or ``running``."""
        by_step = {s["step"]: s["status"] for s in self.steps}
        failed = next((s["step"] for s in self.steps if s["status"] == "dead_lettered" and s["step"] in self.errors), None)
        if failed:
            return f"failed at {failed}"
        if by_step.get("prod") == "completed":
            return "shipped"
        if by_step.get("prod") == "awaiting_approval":
            return "awaiting approval"
        return "running"

    def text(self) -> str:
        """The report, for a terminal."""
        lines = [f"pipeline {self.request_id}: {self.outcome}", f"  tree: {self.tree}", "", "steps:"]
        for s in self.steps:
            took = f"{s['seconds']:.1f} s" if s.get("seconds") is not None else ""
            lines.append(f"  {s['step']:<8} {s['status']:<18} {s.get('agent') or '':<13} {took}")
        for step, error in self.errors.items():
            lines.append(f"  ! {step}: {error}")
        test, review, build = self.results.get("test"), self.results.get("review"), self.results.get("build")
        if test:
            coverage = test.get("coverage_total")
            lines += ["", f"tests: {test.get('passed', 0)} passed, {test.get('failed', 0)} failed, "
                          f"{test.get('skipped', 0)} skipped" + (f"; line coverage {coverage:.1f}%" if coverage is not None
                                                                 else "")
                      + (f" (ran {', '.join(test['ran'])})" if test.get("ran") else "")]
        if review:
            counts = ", ".join(f"{n} {s}" for s, n in review.get("counts", {}).items() if n) or "no findings"
            lines.append(f"review: {counts}; blocks at {review.get('threshold')}"
                         + (f"; safe fixes committed as {str(review['fix_commit'])[:12]}" if review.get("fix_commit")
                            else ""))
        if build:
            lines.append(f"build: {'reproducible' if build.get('reproducible') else 'NOT reproducible'} "
                         f"(two builds compared byte for byte) at commit {str(build.get('commit'))[:12]}")
            lines += [f"  {a['sha256']}  {a['name']}" for a in build.get("artefacts", [])]
            if build.get("provenance"):
                lines.append(f"  provenance: {self.tree}/{build['provenance']} (in-toto SLSA v1, DSSE, "
                             f"signed by {build.get('signer')})")
        if self.staging:
            lines.append(f"staging: {self.staging}")
        docs = self.results.get("docs")
        if docs:
            lines.append(f"docs: {self.tree}/{docs['changelog']}, {self.tree}/{docs['graph']}")
        if self.approval:
            a = self.approval
            lines += ["", f"production waits for {a['needed']} approvals of {', '.join(a['approvers'])} "
                          f"(deploy {a['target']}, digest {a['digest'][:16]}…). To approve:"]
            lines += [f"  council approve {a['approval_id']} --key {key}" for key in a["keys"]]
        return "\n".join(lines)


def report(council: Council, run: Run | str) -> Report:
    """The report of a run (or a request id): each step's status from the ``tasks`` read model, the
    results its task recorded, and the approval production waits for."""
    request_id = run.request_id if isinstance(run, Run) else run
    planned = [e.payload for e in council.store.read_stream(f"request-{request_id}") if e.type == "pipeline.planned"]
    if not REQUEST.match(request_id) or not planned:
        raise CouncilError(f"there is no pipeline {request_id}; runs are listed by "
                           "`council sql \"SELECT * FROM requests\"`")
    workspace = council.settings.absolute().workspace or ""
    found = Report(request_id, tree=str(Path(workspace) / planned[0].tree))
    rows = council.sql("SELECT task_id, status, agent_id, duration_s, last_error FROM tasks "
                       f"WHERE request_id = '{request_id}'")  # the id matched REQUEST: no quote can be in it
    tasks = {row[0]: row for row in rows.rows}
    for step in planned[0].steps:
        _, status, agent, seconds, error = tasks.get(step.task_id, (step.task_id, "submitted", None, None, None))
        if status in ("completed", "awaiting_approval"):
            last = _last(council, step.task_id, "task.completed" if status == "completed" else "task.awaiting")
            if status == "completed":
                found.results[step.step] = dict(last.result)
            else:
                found.approval = _approval(council, last.authority_id)
        elif status == "dead_lettered" and error:
            found.errors[step.step] = error
        found.steps.append({"step": step.step, "task_id": step.task_id, "status": status, "agent": agent,
                            "seconds": seconds if status == "completed" else None})
    staging = found.results.get("staging")
    if staging and staging.get("path"):
        found.staging = f"{staging['path']} → release {staging.get('release')} ({staging.get('artefact')})"
    return found


def _last(council: Council, task_id: str, kind: str) -> Any:
    return next(e.payload for e in reversed(council.store.read_stream(f"task-{task_id}")) if e.type == kind)


def _approval(council: Council, approval_id: str) -> dict[str, Any] | None:
    ledger = ApprovalLedger()
    for event in council.store.read_stream(f"approval-{approval_id}"):
        ledger.evolve(event.payload, event.recorded_at.timestamp())
    asked = ledger.requested
    if asked is None:
        return None
    signed = set(ledger.approvals)  # fingerprints whose signatures count
    keys = [name for name, fp in asked.approvers.items() if fp not in signed]
    return {"approval_id": approval_id, "needed": asked.needed, "approvers": sorted(asked.approvers),
            "keys": keys[:max(0, asked.needed - len(signed))] or keys, "target": asked.spec.target,
            "digest": asked.digest}
