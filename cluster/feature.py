"""A request in plain words, orchestrated: submit it, follow it live, and read its report — the driver's side of
:mod:`actors.orchestrator`.

    from cluster.driver import Council, new_request_id
    from cluster.feature import follow_feature, start_feature, feature_report

    with Council.start() as council:
        feature = start_feature(council, "Add a user authentication system with JWT tokens", "path/to/repo")
        follow_feature(council, feature, print)      # the plan, each task's status, each decision, until it settles
        print(feature_report(council, feature.request_id).text())

The request, the orchestrator's facts (the request, the roster the plan must fit, the budget,
the pipeline that ships the result) and the planning task are appended in one commit; then the
request's orchestrator actor is started (or found running) and takes it from there.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import ray

from actors import names
from actors.orchestrator.actor import orchestrate
from actors.orchestrator.validate import Roster, roster
from actors.pipeline.plan import plan as plan_pipeline
from actors.skills.registry import SkillRegistry
from cluster.driver import Council, new_request_id
from cluster.pipeline import PipelineTimedOut, prepare_request
from cluster.report import Report, report
from events import CouncilError, Intent, Metadata, NewEvent, streams
from events.catalogue import (
    SETTLED,
    FeatureRequested,
    OrchestratorAnswered,
    OrchestratorDecided,
    PipelinePlanned,
    Plan,
    PlanAdopted,
    PlanConfirmed,
    PlanProposed,
    PlanRejected,
    PlanRevised,
    RequestFinished,
    TaskSpec,
    TaskStatus,
)
from governance.authority import grants
from governance.policy import Policy

PLANNER = "plan.write"
MOST_REVISIONS = 3
"""The most revisions a policy may allow a request's plan."""


def most_revisions(policy: Policy) -> int:
    """How often a request's plan may be revised after a task fails for good, as the policy in force sets it
    (``[tool.orchestrator] revisions``, 0 to :data:`MOST_REVISIONS`; 1 if it sets none). Anything else is refused
    with :class:`CouncilError`: no request runs on a guess."""
    value = policy.tool_table("orchestrator").get("revisions", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MOST_REVISIONS:
        raise CouncilError(f"the policy in force sets [tool.orchestrator] revisions = {value!r}; use a whole number "
                           f"from 0 to {MOST_REVISIONS}, and propose the corrected policy (`council policy propose`)")
    return value


@dataclass(frozen=True)
class Feature:
    """An orchestrated request: its id, its tree in the workspace, and the commit it started from."""

    request_id: str
    tree: Path
    commit: str


def start_feature(council: Council, instruction: str, repo: str | Path, base: str | None = None, *,
                  plan_only: bool = False, confirm: bool = False, revisions: int | None = None) -> Feature:
    """Check ``repo`` out into a tree of its own and submit ``instruction`` to an orchestrator (see the module).

    ``plan_only`` stops once the plan is proposed; ``confirm`` waits for a person to confirm the plan
    (:func:`confirm_plan`) before anything runs; ``revisions`` is how often the plan may be revised after
    a task fails for good: at most the policy's number (:func:`most_revisions`), which is the default.
    """
    words = instruction.strip()
    if not words:
        raise CouncilError("say what to build: `council run feature \"Add a user authentication system …\" "
                           "--repo PATH`")
    policy = council.policy()
    if policy is None:
        raise CouncilError("no policy is in force; start the council with one (`council up --policy FILE`)")
    most = most_revisions(policy)
    if revisions is None:
        revisions = most
    if not 0 <= revisions <= most:
        raise CouncilError(f"--revisions must be 0 to {most} (the policy's [tool.orchestrator] revisions), not "
                           f"{revisions}")
    team = team_roster(council, policy)
    if PLANNER not in council.capabilities():
        raise CouncilError(f"no agent of this council can plan ({PLANNER}): add an orchestrator agent to the team "
                           "file, as examples/team.toml does, and restart the council")
    request_id = new_request_id()
    # The orchestrator starts while the tree is made: its process is up by the time the plan is.
    orchestrator = orchestrate(_store_url(), request_id)
    try:
        return _submit(council, request_id, words, repo, base, team, policy,
                       plan_only=plan_only, confirm=confirm, revisions=revisions)
    except BaseException:
        ray.kill(orchestrator, no_restart=True)  # nothing was submitted: no orchestrator waits for it
        raise


def _submit(council: Council, request_id: str, words: str, repo: str | Path, base: str | None, team: Roster,
            policy: Policy, *, plan_only: bool, confirm: bool, revisions: int) -> Feature:
    """Make the request's tree, then append the request, the orchestrator's facts and the planning task at once."""
    ready = prepare_request(council, repo, base, empty_ok=True, request_id=request_id)
    checkout, start = ready.checkout, ready.checkout.commit
    config, threshold, block_known, install, index = ready.shape
    _, pipeline = plan_pipeline(request_id, replace(checkout, base=start), config, threshold, block_known,
                                install, index)
    budget = policy.budget_for("request")
    planner = f"{request_id}-plan"
    feature = FeatureRequested(request_id=request_id, instruction=words, repository=checkout.source,
                               tree=checkout.path, commit=start, planner_task=planner, plan_only=plan_only,
                               confirm=confirm, revisions=revisions, team=team.model_dump(), budget=budget,
                               threshold=threshold, pipeline=pipeline)
    inputs = {"instruction": words, "request_id": request_id, "team": team.model_dump(),
              "budget": msgspec.to_builtins(budget), "approve": not plan_only}
    spec = TaskSpec(task_id=planner, capability=PLANNER, inputs=inputs, max_attempts=3,
                    title="plan: the request as phases and tasks for the team")
    council.request(f"feature: {words[:80]} — {Path(checkout.source).name} @ {start[:12]}", [spec],
                    request_id=request_id, plan=feature)
    return Feature(request_id, ready.tree, start)


def team_roster(council: Council, policy: Policy, wait: float = 15.0) -> Roster:
    """The live team as a plan may use it: each registered role's capabilities (with the actions their skills
    declare) and what the policy grants the role. Waits up to ``wait`` seconds for a council just started to
    register its agents in the read models."""
    deadline = time.monotonic() + wait
    while True:
        rows = council.sql("SELECT role, capabilities FROM agents WHERE status != 'retired' AND role IS NOT NULL "
                           "ORDER BY agent_id").rows
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    skills = SkillRegistry.load()
    declared = {capability: skills.get(capability).actions for capability in skills}
    roles = {str(role) for role, _ in rows}
    return roster([(str(role), [str(c) for c in caps]) for role, caps in rows], declared,
                  {role: grants(policy, role)[0] for role in roles})


def _store_url() -> str:
    return str(ray.get(ray.get_actor(names.STORE, namespace=names.NAMESPACE).url.remote()))


# -- following -----------------------------------------------------------------------------------


@dataclass
class Progress:
    """What a follower has seen of a request's stream so far."""

    version: int = 0
    proposed: PlanProposed | None = None
    adopted: list[PlanAdopted | PlanRevised] = field(default_factory=list)
    question: OrchestratorDecided | None = None
    finished: RequestFinished | None = None
    statuses: dict[str, TaskStatus] = field(default_factory=dict)


def follow_feature(council: Council, feature: Feature | str, show: Callable[[str], None], timeout: float = 3600.0,
                   *, through_prod: bool = False, confirm: Callable[[Plan], bool] | None = None) -> Progress:
    """Call ``show`` with a line for each step of the request — the plan, its adoption or revision, every task's
    change of status, each decision — until it settles: finished, waiting for a person's answer, or (unless
    ``through_prod``) with nothing left but production waiting for its approvals. A plan that waits for
    confirmation is put to ``confirm`` (yes: :func:`confirm_plan`; no: the request stops). The orchestrator is
    started again if it is not running. :class:`PipelineTimedOut` after ``timeout`` seconds."""
    request_id = feature.request_id if isinstance(feature, Feature) else feature
    seen = Progress()
    after = 0
    deadline = time.monotonic() + timeout
    asked_confirmation = False
    ensured = False
    while True:
        for event in council.store.read_stream(streams.request(request_id), seen.version + 1):
            seen.version = event.stream_version
            _shown(event.payload, seen, show)
        if seen.finished is None and not ensured:
            orchestrate(_store_url(), request_id)  # a council restarted since: its orchestrator comes back
            ensured = True
        if seen.finished is not None or seen.question is not None:
            return seen
        wants = _requested(council, request_id)
        if (seen.proposed is not None and wants is not None and wants.confirm and not seen.adopted
                and not asked_confirmation and confirm is not None):
            asked_confirmation = True
            if confirm(seen.proposed.plan):
                confirm_plan(council, request_id)
            else:
                stop(council, request_id, "the person who asked did not confirm the plan")
        if seen.adopted and _settled(seen.statuses, through_prod):
            return seen
        if time.monotonic() > deadline:
            raise PipelineTimedOut(f"the request {request_id} did not settle in {timeout:.0f} s; it goes on: follow "
                                   f"it with `council watch {request_id}`")
        feed = council.changes("tasks", after, timeout=1.0)
        after = max(after, feed.position or 0)
        for row in feed.rows:
            record = dict(zip(feed.columns, row, strict=True))
            if record.get("request_id") != request_id:
                continue
            task, now = str(record["task_id"]), TaskStatus(record["status"])
            if seen.statuses.get(task) != now:
                seen.statuses[task] = now
                if now is not TaskStatus.SUBMITTED:
                    agent = f" ({record['agent_id']})" if record.get("agent_id") else ""
                    show(f"  {task[len(request_id) + 1:]:<18} {now}{agent}")


def _shown(payload: Any, seen: Progress, show: Callable[[str], None]) -> None:
    from actors.orchestrator.render import table

    if isinstance(payload, PlanProposed):
        seen.proposed = payload
        fixed = f" (after one round fixing {len(payload.repaired)} problem(s))" if payload.repaired else ""
        show(f"plan proposed by {payload.model or 'the planner'}{fixed}:\n" + table(payload.plan))
    elif isinstance(payload, PlanRejected):
        show("the plan cannot run:\n" + "\n".join(f"  - {p}" for p in payload.problems))
    elif isinstance(payload, PlanConfirmed):
        show(f"plan confirmed by {payload.by}")
    elif isinstance(payload, PlanAdopted):
        seen.adopted.append(payload)
        show(f"plan adopted: {len(payload.tasks)} task(s), {len(payload.grants)} phase warrant(s)"
             + (f", then the CI pipeline ({len(payload.pipeline)} steps)" if payload.pipeline else ""))
    elif isinstance(payload, PlanRevised):
        seen.adopted.append(payload)
        show(f"plan revised (revision {payload.revision}): {payload.reason}\n  new tasks: "
             f"{', '.join(payload.tasks) or 'none'}" + (f"; cancelled: {', '.join(payload.cancelled)}"
                                                       if payload.cancelled else ""))
    elif isinstance(payload, OrchestratorDecided):
        show(f"orchestrator: {payload.decision} — {payload.reason}")
        if payload.decision == "ask":
            seen.question = payload
            show(payload.question)
    elif isinstance(payload, OrchestratorAnswered):
        seen.question = None
        show(f"answered by {payload.by}: {payload.answer}")
    elif isinstance(payload, RequestFinished):
        seen.finished = payload
        show(f"request {payload.outcome}: {payload.reason} ({payload.elapsed_s:.1f} s)")


def _settled(statuses: dict[str, TaskStatus], through_prod: bool) -> bool:
    """Every task seen has settled, or (unless ``through_prod``) waits only for approvals."""
    waiting = {TaskStatus.AWAITING_APPROVAL} if not through_prod else set()
    return bool(statuses) and all(s in SETTLED or s in waiting for s in statuses.values()) and any(
        s is TaskStatus.AWAITING_APPROVAL for s in statuses.values())


def is_feature(council: Council, request_id: str) -> bool:
    """Whether ``request_id`` is an orchestrated request (submitted by :func:`start_feature`)."""
    return _requested(council, request_id) is not None


def _requested(council: Council, request_id: str) -> FeatureRequested | None:
    for event in council.store.read_stream(streams.request(request_id), 1, 3):
        if isinstance(event.payload, FeatureRequested):
            return event.payload
    return None


# -- a person's part -----------------------------------------------------------------------------


def _append(council: Council, request_id: str, event: Any, by: str) -> None:
    """Append ``event`` to the request's stream after what is there (refused if the request has finished)."""
    events = council.store.read_stream(streams.request(request_id))
    if not events or _requested(council, request_id) is None:
        raise CouncilError(f"there is no orchestrated request {request_id} (`council run report {request_id}` "
                           "reports a pipeline or coding request); `council sql \"SELECT request_id, title, outcome "
                           "FROM requests\"` lists them")
    if any(isinstance(e.payload, RequestFinished) for e in events):
        raise CouncilError(f"the request {request_id} has finished; there is nothing left to decide")
    meta = Metadata(correlation_id=request_id, actor=by)
    for result in council.store.append_many([Intent(streams.request(request_id), [NewEvent(payload=event,
                                                                                             metadata=meta)],
                                                    events[-1].stream_version)]):
        if isinstance(result, CouncilError):
            raise result


def confirm_plan(council: Council, request_id: str, by: str | None = None) -> None:
    """A person lets the proposed plan start (for a request submitted with ``confirm``)."""
    _append(council, request_id, PlanConfirmed(request_id=request_id, revision=0, by=by or getpass.getuser()),
            "person")


def answer(council: Council, request_id: str, text: str, by: str | None = None) -> None:
    """A person answers the orchestrator's question: the plan is revised with the answer. ``request_id`` may also
    be the task that failed (the question's subject): its request is answered."""
    if not request_id.startswith("r-") or not council.store.read_stream(streams.request(request_id), 1, 1):
        first = council.store.read_stream(streams.task(request_id), 1, 1)
        owner = getattr(first[0].payload, "request_id", None) if first else None
        request_id = owner or request_id
    if not text.strip():
        raise CouncilError("say how the team should go on: `council answer REQUEST \"Use bcrypt instead …\"`")
    events = council.store.read_stream(streams.request(request_id))
    if any(isinstance(e.payload, RequestFinished) for e in events):
        raise CouncilError(f"the request {request_id} has finished; there is nothing left to answer")
    asked = [e.payload for e in events if isinstance(e.payload, OrchestratorDecided) and e.payload.decision == "ask"]
    answered = [e for e in events if isinstance(e.payload, OrchestratorAnswered)]
    if len(asked) <= len(answered):
        raise CouncilError(f"the orchestrator of {request_id} has asked nothing that is not answered; "
                           f"`council watch {request_id}` shows where it stands")
    _append(council, request_id, OrchestratorAnswered(request_id=request_id, answer=text.strip()[:20_000],
                                                      by=by or getpass.getuser()), "person")


def stop(council: Council, request_id: str, reason: str) -> None:
    """A person stops the request: what has not run is cancelled, and the orchestrator leaves."""
    _append(council, request_id, RequestFinished(request_id=request_id, outcome="stopped", reason=reason), "person")
    council.cancel(request_id, reason)


# -- the report ----------------------------------------------------------------------------------


@dataclass
class FeatureReport:
    """What an orchestrated request came to: the request, its plans, the decisions, the work (the pipeline's report
    of its steps), cost per phase against the estimates, time, and where the audit trail is."""

    request_id: str
    instruction: str
    plans: list[tuple[int, Plan, str]]
    """(revision, plan, why) for the plan as adopted and each revision."""
    decisions: list[OrchestratorDecided]
    finished: RequestFinished | None
    work: Report | None
    phases: list[tuple[str, int, int, float, float]]
    """Per phase: (name, tokens estimated, tokens used, dollars, seconds of its tasks)."""
    rejected: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``completed``, ``stopped``, ``planned``, ``awaiting approval``, ``waiting for an answer`` or
        ``running``."""
        if self.finished is not None:
            return self.finished.outcome
        if self.decisions and self.decisions[-1].decision == "ask":
            return "waiting for an answer"
        if self.work is not None and self.work.outcome == "awaiting approval":
            return "awaiting approval"
        return "running"

    def text(self) -> str:
        """The report, for a terminal."""
        from actors.orchestrator.render import table

        lines = [f"request {self.request_id}: {self.outcome}", f"  asked: {self.instruction}"]
        if self.finished is not None:
            lines.append(f"  {self.finished.reason} ({self.finished.elapsed_s:.1f} s)")
        if self.rejected:
            lines += ["", "the plan could not run:", *[f"  - {p}" for p in self.rejected]]
        for revision, plan, why in self.plans:
            lines += ["", "plan as adopted:" if revision == 0 else f"plan revision {revision}: {why}", table(plan)]
        for decided in self.decisions:
            lines.append(f"decided: {decided.decision} — {decided.reason}")
        if self.work is not None:
            lines += ["", self.work.text()]
        if self.phases:
            lines += ["", "cost per phase (tokens estimated / used, dollars, task time):"]
            lines += [f"  {name:<16} {est:>9,} / {used:>9,}  ${money:.4f}  {seconds:.1f} s"
                      for name, est, used, money, seconds in self.phases]
        lines += ["", f"audit trail: council events --correlation {self.request_id}; council verify"]
        return "\n".join(lines)


def feature_report(council: Council, request_id: str) -> FeatureReport:
    """The report of an orchestrated request, read back from the log and the read models."""
    events = [e.payload for e in council.store.read_stream(streams.request(request_id))]
    wanted = next((e for e in events if isinstance(e, FeatureRequested)), None)
    if wanted is None:
        raise CouncilError(f"there is no orchestrated request {request_id} (`council run report {request_id}` "
                           "reports a pipeline or coding request); `council sql \"SELECT request_id, title, outcome "
                           "FROM requests\"` lists them")
    proposed = next((e for e in events if isinstance(e, PlanProposed)), None)
    plans: list[tuple[int, Plan, str]] = []
    adoptions: list[tuple[dict[str, str], Plan]] = []
    for e in events:
        if isinstance(e, PlanAdopted) and proposed is not None:
            plans.append((0, proposed.plan, ""))
            adoptions.append((e.tasks, proposed.plan))
        elif isinstance(e, PlanRevised):
            plans.append((e.revision, e.plan, e.reason))
            adoptions.append((e.tasks, e.plan))
    if not plans and proposed is not None:
        plans.append((0, proposed.plan, ""))
    rejected = [p for e in events if isinstance(e, PlanRejected) for p in e.problems]
    work = report(council, request_id) if any(isinstance(e, PipelinePlanned) for e in events) else None
    return FeatureReport(request_id, wanted.instruction, plans,
                         [e for e in events if isinstance(e, OrchestratorDecided)],
                         next((e for e in events if isinstance(e, RequestFinished)), None), work,
                         _phases(council, request_id, adoptions), rejected)


def _phases(council: Council, request_id: str,
            adoptions: list[tuple[dict[str, str], Plan]]) -> list[tuple[str, int, int, float, float]]:
    """Tokens estimated and used, dollars and task seconds per phase (request ids are checked names: no quotes)."""
    used = {str(t): (int(i or 0) + int(o or 0), float(c or 0.0)) for t, i, o, c in council.sql(
        "SELECT task_id, sum(input_tokens), sum(output_tokens), sum(cost) FROM llm_calls "
        f"WHERE request_id = '{request_id}' GROUP BY task_id").rows}
    took = {str(t): float(d or 0.0) for t, d in council.sql(
        f"SELECT task_id, duration_s FROM tasks WHERE request_id = '{request_id}'").rows}
    out: list[tuple[str, int, int, float, float]] = []
    for ids, plan in adoptions:
        for phase in plan.phases:
            tids = [ids[t.id] for t in phase.tasks if t.id in ids]
            out.append((phase.name, sum(t.estimate_tokens for t in phase.tasks),
                        sum(used.get(t, (0, 0.0))[0] for t in tids), sum(used.get(t, (0, 0.0))[1] for t in tids),
                        sum(took.get(t, 0.0) for t in tids)))
    return out
