"""Running a request on a repository — the CI/CD pipeline alone, or the coding team and then the pipeline — and
following it live, from the log.

    from cluster.driver import Council
    from cluster.pipeline import follow, start_ci, start_code
    from cluster.report import report

    with Council.start() as council:
        run = start_ci(council, "examples/sample-service")   # or start_code(council, "Add …", "path/to/repo")
        follow(council, run, print)           # every step's status as it changes, until the run settles
        print(report(council, run).text())

A run settles when every step has completed or was dead-lettered, or when production waits for
its approvals (the run goes on, as events, once they are signed: ``council approve``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actors import depot
from actors.coding.plan import FIX_ROUNDS, MOST_FIX_ROUNDS, plan_code
from actors.pipeline.config import (
    PackageIndex,
    PipelineConfig,
    load_config,
    package_index,
    review_blocks_known,
    review_threshold,
)
from actors.pipeline.install import install_args
from actors.pipeline.plan import plan
from actors.tools.checkout import Checkout, prepare
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace
from cluster.driver import Council, new_request_id
from events import CouncilError
from events.catalogue import (
    SETTLED,
    PipelinePlanned,
    TaskSpec,
    TaskStatus,
)
from events.catalogue.work import Severity
from governance.confinement import SandboxTable


@dataclass(frozen=True)
class Run:
    """A pipeline run: its request, its tree in the workspace and the task of each step."""

    request_id: str
    tree: Path
    commit: str
    base: str | None
    tasks: dict[str, str]


def start_ci(council: Council, repo: str | Path, base: str | None = None) -> Run:
    """Check ``repo`` out into a tree of its own and submit the pipeline over it (request, plan and tasks in one
    commit)."""
    return _start(council, repo, base, lambda request_id, checkout, shape: plan(request_id, checkout, *shape), "ci")


def start_code(council: Council, instruction: str, repo: str | Path, base: str | None = None,
               fix_rounds: int = FIX_ROUNDS) -> Run:
    """Check ``repo`` out into a tree of its own and submit a coding request over it: the team makes the change
    ``instruction`` asks for, then the pipeline ships it (:mod:`actors.coding.plan`; one commit)."""
    if not instruction.strip():
        raise CouncilError("say what to build: `council run code \"Add a function that …\" --repo PATH`")
    if not 1 <= fix_rounds <= MOST_FIX_ROUNDS:
        raise CouncilError(f"--fix-rounds must be 1 to {MOST_FIX_ROUNDS}, not {fix_rounds}")
    return _start(council, repo, base, lambda request_id, checkout, shape: plan_code(
        request_id, instruction.strip(), checkout, *shape, fix_rounds=fix_rounds), f"code: {instruction.strip()[:80]}",
                  empty_ok=True)


Planner = Callable[[str, Checkout, tuple[PipelineConfig, Severity, bool, list[str], PackageIndex]],
                   tuple[PipelinePlanned, list[TaskSpec]]]


def _start(council: Council, repo: str | Path, base: str | None, planner: Planner, title: str, *,
           empty_ok: bool = False) -> Run:
    """Make ``repo``'s tree for a new request, plan it with ``planner`` and submit request, plan and tasks at once
    (``empty_ok``: a directory with no files starts the tree with an empty commit)."""
    ready = prepare_request(council, repo, base, empty_ok=empty_ok)
    planned, specs = planner(ready.request_id, ready.checkout, ready.shape)
    council.request(f"{title} {Path(ready.checkout.source).name} @ {ready.checkout.commit[:12]}", specs,
                    request_id=ready.request_id, plan=planned)
    return Run(ready.request_id, ready.tree, ready.checkout.commit, planned.base,
               {s.step: s.task_id for s in planned.steps})


@dataclass(frozen=True)
class Prepared:
    """A new request's tree, made and checked, before anything is submitted: its id, checkout, where the tree is,
    and the pipeline's shape for it (configuration, review threshold, known findings, install, package index)."""

    request_id: str
    checkout: Checkout
    tree: Path
    shape: tuple[PipelineConfig, Severity, bool, list[str], PackageIndex]


def prepare_request(council: Council, repo: str | Path, base: str | None, *, empty_ok: bool = False,
                    request_id: str | None = None) -> Prepared:
    """Check ``repo`` out into a tree of its own for a new request (``request_id``, or a fresh one) and read its
    pipeline configuration; a configuration that cannot be read removes the tree again (nothing was submitted)."""
    workspace = council.settings.absolute().workspace
    if workspace is None:
        raise CouncilError("the council has no workspace; start it with a home (`council up`)")
    if depot.running():
        # The pipeline's steps leave build outputs in the tree (wheels, reports, the environment) that later steps,
        # on other agents, read; a fetched copy carries commits only.
        raise CouncilError('the CI/CD pipeline needs trees = "shared" (a workspace on a disk every agent\'s node '
                           'mounts); this council runs with trees = "fetch", whose copies carry commits only. '
                           'Start the council with COUNCIL_TREES=shared to run the pipeline')
    request_id = request_id or new_request_id()
    root = Workspace(workspace)
    policy = council.policy()
    table = policy.sandbox if policy is not None else SandboxTable()
    home = council.settings.absolute().home
    box = Sandbox(table.terms(network=False, wall_time_s=300.0), hidden=(home, str(root.root)))
    checkout = prepare(root, request_id, repo, base, box=box, empty_ok=empty_ok)
    tree = root.path(checkout.path)
    try:
        config = load_config(tree)
        threshold, block_known, index = review_threshold(policy), review_blocks_known(policy), package_index(policy)
        install = install_args(tree, config) if config.environment == "own" else []
    except CouncilError:
        shutil.rmtree(tree)  # nothing was submitted: leave nothing behind
        raise
    return Prepared(request_id, checkout, tree, (config, threshold, block_known, install, index))


class PipelineTimedOut(CouncilError, TimeoutError):
    """A pipeline did not settle in the time it was followed for; it goes on without the follower."""


def follow(council: Council, run: Run, show: Callable[[str], None], timeout: float = 1800.0, *,
           through_prod: bool = False) -> dict[str, TaskStatus]:
    """Call ``show`` with a line for every change of a step's status until the run settles; return the statuses.

    Steps that are only submitted (waiting for the steps before them) are not shown: every step
    starts there. A run waiting for production approvals has settled, unless ``through_prod``:
    then every step must have completed or been dead-lettered. A step that failed on its own is
    settled once the error detector has judged it (:meth:`Council.verdict`), at most
    :data:`VERDICT_WAIT` seconds later: a requeue (and the steps after it, reopened) is followed
    on. :class:`PipelineTimedOut` after ``timeout`` seconds.
    """
    steps = {t: name for name, t in run.tasks.items()}
    status: dict[str, TaskStatus] = {}
    after = 0
    deadline = time.monotonic() + timeout
    judged_by: float | None = None  # when waiting for the error detector's verdicts stops
    while True:
        if _settled(status, run, through_prod):
            judged_by = judged_by or time.monotonic() + VERDICT_WAIT
            if time.monotonic() > judged_by or not _pending(council, status):
                break
        else:
            judged_by = None
        if time.monotonic() > deadline:
            raise PipelineTimedOut(f"the pipeline {run.request_id} did not settle in {timeout:.0f} s; follow it with "
                                   f"`council run report {run.request_id} --wait` or `council status`")
        feed = council.changes("tasks", after, timeout=1.0)
        after = max(after, feed.position or 0)
        for row in feed.rows:
            record = dict(zip(feed.columns, row, strict=True))
            task, now = record["task_id"], TaskStatus(record["status"])
            if task in steps and status.get(task) != now:
                status[task] = now
                if now is TaskStatus.SUBMITTED:
                    continue
                agent = f" ({record['agent_id']})" if record.get("agent_id") else ""
                show(f"{steps[task]:<8} {now}{agent}")
    return {steps[t]: s for t, s in status.items()}


VERDICT_WAIT = 20.0
"""Seconds a run whose steps have all settled waits for the error detector to judge the ones that failed (it
decides within a few): whether one is requeued, and the run goes on."""


def _pending(council: Council, status: dict[str, TaskStatus]) -> bool:
    """Whether a step the read model shows dead-lettered still waits for the error detector's verdict, or has moved
    on in the log already (requeued or reopened: the read model will show it)."""
    return any(now is TaskStatus.DEAD_LETTERED and council.verdict(task).state in ("pending", "moved")
               for task, now in status.items())


def _settled(status: dict[str, TaskStatus], run: Run, through_prod: bool) -> bool:
    if len(status) < len(run.tasks):
        return False
    rest = [s for t, s in status.items() if t != run.tasks["prod"]]
    prod = status.get(run.tasks["prod"])
    return all(s in SETTLED for s in rest) and (
        prod in SETTLED or (prod is TaskStatus.AWAITING_APPROVAL and not through_prod))
