"""What the orchestrator of one request decides, folded from the log: a plain :class:`actors.follow.Process`.

It folds the request's stream and its tasks' streams, and decides, each decision an intent at
the version of the request's stream it was decided from (so two incarnations racing can never
both land one, and a restarted orchestrator decides nothing twice):

* the planner's task completed → ``plan.proposed`` (or ``plan.rejected`` and the request stops
  with the problems; so too if planning failed for good);
* a proposed plan → ``request.finished`` (planned) when only a plan was asked for; otherwise,
  once a person confirmed it if that was asked, ``plan.adopted`` in one commit with the request's
  tasks and the phase warrants (:mod:`actors.orchestrator.adopt`; signed by the council);
* a task of the plan failed for good (the skill said it cannot succeed, or the gate refused) →
  ``orchestrator.decided``: revise (a new planning task with what completed and what failed; at
  most the request's number of revisions), else ask a person, whose ``council answer`` brings one
  more revision. Failures the dispatcher retries, and those the error detector may still requeue
  (transient, code, infrastructure), are left to them until the detector has said its last word;
* a revision's plan → ``plan.revised`` in one commit with its tasks, the tasks it replaces that
  have not run cancelled;
* every task of the plan as adopted or revised completed → ``request.finished`` (completed).

Nothing here calls a model or touches the tree: the planner and the agents do, under warrants.
The one call out is :attr:`sign`, the council's signature on the phase warrants.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.follow import Process
from actors.orchestrator import adopt
from actors.orchestrator.validate import Roster, problems
from events import NO_STREAM, Intent, Metadata, NewEvent, RecordedEvent, streams
from events.catalogue import (
    SETTLED,
    TASK_EVENTS,
    AlertRaised,
    Budget,
    BudgetAllocated,
    FeatureRequested,
    ModelCallCompleted,
    OrchestratorAnswered,
    OrchestratorDecided,
    PhaseGrant,
    PipelinePlanned,
    Plan,
    PlanAdopted,
    PlanConfirmed,
    PlannedStep,
    PlanProposed,
    PlanRejected,
    PlanRevised,
    RequestFinished,
    RequestSubmitted,
    TaskCancelled,
    TaskCompleted,
    TaskDeadLettered,
    TaskSpec,
    TaskStatus,
    TaskSubmitted,
    VoteProposed,
    WarrantIssued,
    next_status,
)
from governance import budget as budgets

ACTOR = "orchestrator"
HANDLED = frozenset({"permanent", "denied"})
"""Failure kinds the orchestrator answers at once by revising the plan. The others the dispatcher retries and the
error detector judges: the orchestrator answers them once the detector has said its last word (an alert, or a fix
task), never while it may still requeue them."""

Signer = Callable[[str, list[PhaseGrant]], list[WarrantIssued]]
"""The council's signature on a request's phase warrants (request id, grants → ``warrant.issued`` payloads)."""

Proposer = Callable[[str, str, str, str], VoteProposed | str]
"""The council's proposal of a budget vote (request id, the amounts asked for, the subject, the vote's id): the
proposal, or why the policy does not let it be put."""

EXTEND_AT = 0.8
"""The share of a request's budget (tokens, money or wall time) spent that makes the orchestrator ask for more."""


@dataclass
class Task:
    """What the orchestrator knows of one of the request's tasks."""

    capability: str
    status: TaskStatus
    version: int
    inputs: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    kind: str = ""
    dependency: str | None = None
    judged: bool = False
    """Whether the error detector has said its last word on the task's dead letter (an alert, or a fix task)."""

    @property
    def given_up(self) -> bool:
        """Dead-lettered on its own, and nothing will try it again: the skill said it cannot succeed, the gate
        refused, or the error detector has judged it (it requeues what may pass, and says when it will not)."""
        return (self.status is TaskStatus.DEAD_LETTERED and self.dependency is None
                and (self.kind in HANDLED or self.judged))


@dataclass
class Orchestration:
    """The request, folded: its plan's revisions, its tasks, and what the orchestrator decided."""

    request_id: str
    version: int = 0
    """The request stream's version."""
    submitted_at: float = 0.0
    feature: FeatureRequested | None = None
    proposed: dict[int, PlanProposed] = field(default_factory=dict)
    rejected: PlanRejected | None = None
    confirmed: set[int] = field(default_factory=set)
    adopted: dict[int, PlanAdopted | PlanRevised] = field(default_factory=dict)
    decided: dict[str, OrchestratorDecided] = field(default_factory=dict)
    """Task id (or ``budget``) → the decision taken about it."""
    answers: list[OrchestratorAnswered] = field(default_factory=list)
    finished: RequestFinished | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    planners: dict[str, int] = field(default_factory=dict)
    """Planning task id → the revision it plans."""
    spent: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Task id → the model tokens and dollars its calls came to."""
    allocated: list[Budget] = field(default_factory=list)
    """Budgets the council allocated to the request since it was submitted (by a vote), in order."""

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event of the request's stream or of one of its tasks'."""
        p = event.payload
        if event.stream == streams.request(self.request_id):
            self.version = event.stream_version
            if isinstance(p, RequestSubmitted):
                self.submitted_at = event.recorded_at.timestamp()
            elif isinstance(p, FeatureRequested):
                self.feature = p
                self.planners[p.planner_task] = 0
            elif isinstance(p, PlanProposed):
                self.proposed[p.revision] = p
            elif isinstance(p, PlanRejected):
                self.rejected = p
            elif isinstance(p, PlanConfirmed):
                self.confirmed.add(p.revision)
            elif isinstance(p, PlanAdopted | PlanRevised):
                self.adopted[p.revision] = p
            elif isinstance(p, OrchestratorDecided):
                self.decided[p.task_id or "budget"] = p
                if p.decision == "revise":
                    self.planners[_planner_id(self.request_id, self.revisions + 1)] = self.revisions + 1
            elif isinstance(p, OrchestratorAnswered):
                self.answers.append(p)
                self.planners[_planner_id(self.request_id, self.revisions + 1)] = self.revisions + 1
            elif isinstance(p, RequestFinished):
                self.finished = p
            return
        if isinstance(p, BudgetAllocated):
            if p.request_id == self.request_id:
                self.allocated.append(p.budget)
            return
        if isinstance(p, AlertRaised):
            judged = self.tasks.get(p.task_id or "")
            if judged is not None and judged.status is TaskStatus.DEAD_LETTERED:
                judged.judged = True
            return
        if isinstance(p, ModelCallCompleted):
            if p.task_id in self.tasks:
                tokens, money = self.spent.get(p.task_id, (0, 0.0))
                self.spent[p.task_id] = (tokens + p.input_tokens + p.output_tokens, money + p.cost)
            return
        if isinstance(p, TaskSubmitted):
            fixing = self.tasks.get(str(p.inputs.get("failed_task", "")))
            if fixing is not None and fixing.status is TaskStatus.DEAD_LETTERED:
                fixing.judged = True  # the detector sent it to be fixed: it does not come back by itself
            if p.request_id == self.request_id:
                self.tasks[p.task_id] = Task(p.capability, TaskStatus.SUBMITTED, event.stream_version, dict(p.inputs))
            return
        task = self.tasks.get(getattr(p, "task_id", ""))
        if task is None:
            return
        task.status = next_status(task.status, event.type)
        task.version = event.stream_version
        task.judged = task.judged and task.status is TaskStatus.DEAD_LETTERED
        if isinstance(p, TaskCompleted):
            task.result = dict(p.result)
        elif isinstance(p, TaskDeadLettered):
            task.error, task.kind, task.dependency = p.last_error, p.kind, p.dependency

    @property
    def budget(self) -> Budget:
        """The request's budget: the last the council allocated, else the one it was submitted with."""
        if self.allocated:
            return self.allocated[-1]
        return self.feature.budget if self.feature is not None else Budget()

    @property
    def revisions(self) -> int:
        """The highest revision asked for so far (0: only the first plan)."""
        return max(self.planners.values(), default=0)


class OrchestratorProcess(Process):
    """The orchestrator of one request: :class:`Orchestration` folded, and what it decides (see the module)."""

    # Every type a request's stream holds must be folded: its decisions are appended at the stream's version.
    types: Sequence[str] | None = tuple(cls.type_name for cls in (*TASK_EVENTS,)) + tuple(cls.type_name for cls in (
        RequestSubmitted, FeatureRequested, PipelinePlanned, PlanProposed, PlanRejected, PlanConfirmed, PlanAdopted,
        PlanRevised, OrchestratorDecided, OrchestratorAnswered, RequestFinished, ModelCallCompleted, BudgetAllocated,
        AlertRaised))

    def __init__(self, request_id: str, sign: Signer, propose: Proposer | None = None) -> None:
        """``sign`` is the council's signature on phase warrants, ``propose`` its proposal of a budget vote (None:
        the orchestrator records that the budget runs low, and asks for nothing)."""
        self.state = Orchestration(request_id)
        self.sign, self.propose = sign, propose

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event (those of other requests are passed over)."""
        ref = streams.parse(event.stream)
        if ref is not None and ref.kind is streams.Kind.REQUEST and ref.id != self.state.request_id:
            return
        self.state.evolve(event)

    def decide(self, now: float) -> Sequence[Intent]:
        """The next decision, if one is due (at most one a round: each changes what the next one sees)."""
        s, feature = self.state, self.state.feature
        if feature is None or s.finished is not None:
            return ()
        for planner, revision in sorted(s.planners.items(), key=lambda kv: kv[1]):
            decided = self._planned(planner, revision, now)
            if decided is not None:
                return decided
        first = s.proposed.get(0)
        if first is not None and 0 not in s.adopted:
            if feature.plan_only:
                return self._finish("planned", "only a plan was asked for (--plan-only)", now)
            if feature.confirm and 0 not in s.confirmed:
                return ()
            return self._adopt(first.plan, 0, None, "", now)
        if not s.adopted:
            return ()
        return self._watch(now)

    # -- planning ---------------------------------------------------------------------------

    def _planned(self, planner: str, revision: int, now: float) -> Sequence[Intent] | None:
        """What a planning task's end decides: a proposal, a revision adopted, or a stop; None if nothing yet."""
        s = self.state
        task = s.tasks.get(planner)
        if task is None or revision in s.proposed or revision in s.adopted or s.rejected is not None:
            return None
        if task.given_up:
            return self._stop_planning(revision, planner, [f"planning failed: {task.error}"], now)
        if task.status is not TaskStatus.COMPLETED:
            return None
        found = list(task.result.get("problems") or [])
        if found:
            return self._stop_planning(revision, planner, found, now)
        try:
            plan = msgspec.convert(task.result.get("plan") or {}, Plan)
        except msgspec.ValidationError as exc:
            return self._stop_planning(revision, planner, [f"the planner's result is not a plan: {exc}"], now)
        if revision == 0:
            return [self._note(PlanProposed(request_id=s.request_id, revision=0, plan=plan,
                                            model=str(task.result.get("model", "")),
                                            repaired=list(task.result.get("repaired") or []), planner_task=planner),
                               f"proposed:{revision}")]
        return self._adopt(plan, revision, planner, self._reason(revision), now)

    def _stop_planning(self, revision: int, planner: str, found: list[str], now: float) -> Sequence[Intent]:
        s = self.state
        rejected = PlanRejected(request_id=s.request_id, revision=revision, problems=found[:50], planner_task=planner)
        finished = RequestFinished(request_id=s.request_id, outcome="stopped", elapsed_s=max(0.0, now - s.submitted_at),
                                   reason=f"the plan (revision {revision}) cannot run: " + "; ".join(found)[:4000])
        return [Intent(streams.request(s.request_id), [self._new(rejected, f"rejected:{revision}"),
                                                       self._new(finished, "finished")], s.version)]

    def _reason(self, revision: int) -> str:
        decided = [d for d in self.state.decided.values() if d.decision in ("revise", "ask")]
        answered = self.state.answers
        said = decided[-1].reason if decided else ""
        return (said + (f"; a person answered: {answered[-1].answer}" if answered else ""))[:4000] or \
            f"revision {revision}"

    # -- adoption ---------------------------------------------------------------------------

    def _adopt(self, plan: Plan, revision: int, planner: str | None, reason: str, now: float) -> Sequence[Intent]:
        """The plan as work, in one commit: the adoption (or revision), the phase warrants, the tasks."""
        s = self.state
        feature = s.feature
        assert feature is not None
        team = Roster.model_validate(feature.team)
        done = self._done()
        kinds = {tid: s.tasks[tid].capability for tid in done.values() if tid in s.tasks}
        found = problems(plan, team, s.budget, done=done, done_kinds={k: kinds[v] for k, v in done.items()
                                                                       if v in kinds})
        if found:  # the team or the plan changed under it since it was validated: stop, and say why
            return self._stop_planning(revision, planner or feature.planner_task, found, now)
        spec_feature = feature if revision == 0 else msgspec.structs.replace(
            feature, pipeline=_renamed(feature.pipeline, feature.request_id, f"{feature.request_id}-r{revision}"))
        ids, specs, pipeline = adopt.specs(spec_feature, revision, plan, done, kinds)
        grants = adopt.grants(s.request_id, revision, plan, team)
        if revision == 0:
            head: PlanAdopted | PlanRevised = PlanAdopted(request_id=s.request_id, revision=0, tasks=ids,
                                                          grants=grants, pipeline=pipeline)
            cancelled: list[Intent] = []
        else:
            open_tasks = [tid for tid, t in s.tasks.items()
                          if t.status in (TaskStatus.SUBMITTED, TaskStatus.QUEUED) and tid not in s.planners]
            head = PlanRevised(request_id=s.request_id, revision=revision, reason=reason, plan=plan, tasks=ids,
                               grants=grants, cancelled=open_tasks, planner_task=planner or "", pipeline=pipeline)
            cancelled = [Intent(streams.task(tid), [TaskCancelled(
                task_id=tid, reason=f"replaced by revision {revision} of the plan")], s.tasks[tid].version)
                for tid in open_tasks]
        meta = Metadata(correlation_id=s.request_id, actor=ACTOR)
        prefix = f"{s.request_id}-" if revision == 0 else f"{s.request_id}-r{revision}-"
        # A step is named as its plan or pipeline names it (``code-auth``, ``prod``), whatever revision made it.
        steps = [*self._steps_done(), *(PlannedStep(step=(spec.task_id or "").removeprefix(prefix),
                                                   task_id=spec.task_id or "", capability=spec.capability,
                                                   depends_on=list(spec.depends_on)) for spec in specs)]
        planned = PipelinePlanned(request_id=s.request_id, repository=feature.repository, tree=feature.tree,
                                  commit=feature.commit, base=feature.commit, steps=steps)
        warrants = [Intent(streams.warrant(w.warrant_id), [NewEvent(payload=w, metadata=meta)], NO_STREAM)
                    for w in self.sign(s.request_id, grants)]
        tasks = [Intent(streams.task(spec.task_id or ""), [NewEvent(
            payload=spec.submitted(spec.task_id or "", s.request_id, 2), metadata=meta)], NO_STREAM) for spec in specs]
        return [Intent(streams.request(s.request_id), [self._new(head, f"adopted:{revision}"),
                                                       self._new(planned, f"steps:{revision}")], s.version),
                *warrants, *tasks, *cancelled]

    def _steps_done(self) -> list[PlannedStep]:
        """The steps of earlier plans that completed (a revision's report shows them with its own)."""
        s = self.state
        return [PlannedStep(step=name, task_id=tid, capability=s.tasks[tid].capability)
                for name, tid in self._done().items() if tid in s.tasks]

    def _done(self) -> dict[str, str]:
        """Plan task → task id of every task of an adopted plan that completed."""
        out = {}
        for adopted in self.state.adopted.values():
            for name, tid in adopted.tasks.items():
                task = self.state.tasks.get(tid)
                if task is not None and task.status is TaskStatus.COMPLETED:
                    out[name] = tid
        return out

    # -- watching ---------------------------------------------------------------------------

    def _watch(self, now: float) -> Sequence[Intent]:
        s = self.state
        latest = max(s.adopted)
        if s.revisions > latest:  # a revision is asked for (a decision, or a person's answer): plan it
            planner = _planner_id(s.request_id, s.revisions)
            if planner in s.tasks:
                return ()
            asked = [d for d in s.decided.values() if d.decision in ("revise", "ask")]
            return [self._planning(s.revisions, asked[-1].reason if asked else "",
                                   s.answers[-1].answer if s.answers else "")]
        low = self._budget_low(now)
        if low:
            return low
        current = [*s.adopted[latest].tasks.values(), *s.adopted[latest].pipeline]
        for tid in current:
            task = s.tasks.get(tid)
            if task is not None and task.given_up:
                return () if tid in s.decided else self._failed(tid, task)  # decided: revised, or asked and waiting
        cancelled = [tid for tid in current if (t := s.tasks.get(tid)) is not None and t.status is TaskStatus.CANCELLED]
        if cancelled:
            return self._finish("stopped", f"{', '.join(cancelled)} cancelled by a person", now)
        if current and all((t := s.tasks.get(tid)) is not None and t.status is TaskStatus.COMPLETED
                           for tid in current) and all(t.status in SETTLED for t in s.tasks.values()):
            return self._finish("completed", f"every task of the plan (revision {latest}) completed", now)
        return ()

    def _failed(self, task_id: str, task: Task) -> Sequence[Intent]:
        """Revise the plan after a task failed for good, or ask a person once no revision is left."""
        s = self.state
        feature = s.feature
        assert feature is not None
        why = f"task {task_id} ({task.capability}) failed for good ({task.kind}): {task.error}"[:4000]
        if s.revisions < feature.revisions:
            revision = s.revisions + 1
            decided = OrchestratorDecided(request_id=s.request_id, task_id=task_id, decision="revise",
                                          reason=f"{why}; revising the plan (revision {revision} of at most "
                                                 f"{feature.revisions})")
            return [Intent(streams.request(s.request_id), [self._new(decided, f"decided:{task_id}")], s.version)]
        question = (f"{why}. The plan was revised {s.revisions} time(s), the most this request allows. How should "
                    f"the team go on? Answer with `council answer {s.request_id} \"…\"` (the plan is revised with "
                    f"your answer), or stop it with `council cancel {s.request_id}`.")
        decided = OrchestratorDecided(request_id=s.request_id, task_id=task_id, decision="ask", reason=why,
                                      question=question)
        return [Intent(streams.request(s.request_id), [self._new(decided, f"decided:{task_id}")], s.version)]

    def _budget_low(self, now: float) -> Sequence[Intent]:
        """Ask for more budget before the request runs out: once :data:`EXTEND_AT` of its tokens, money or wall
        time is spent, a ``budget.allocate`` vote for twice as much of what runs low (once per allocation)."""
        s = self.state
        key = f"budget-{len(s.allocated) + 1}"
        if key in s.decided:
            return ()
        limit = s.budget
        tokens = sum(t for t, _ in s.spent.values())
        money = sum(m for _, m in s.spent.values())
        elapsed = max(0.0, now - s.submitted_at)
        low = {name: (used, most) for name, used, most in (("tokens", tokens, limit.tokens),
                                                            ("money", money, limit.money),
                                                            ("wall_time_s", elapsed, limit.wall_time_s))
               if most and used >= EXTEND_AT * most}
        if not low:
            return ()
        more = msgspec.convert({name: int(most * 2) if name == "tokens" else float(most * 2)
                                for name, (_, most) in low.items()}, Budget)
        said = ", ".join(f"{name} {used:,.2f} of {most:,.2f}" for name, (used, most) in low.items())
        vote = f"bv-{s.request_id}-{len(s.allocated) + 1}"
        proposal = (self.propose(s.request_id, budgets.render(more), f"more budget for {s.request_id}: {said}", vote)
                    if self.propose is not None else "no council to propose it")
        asked = f"asked the council to allocate {budgets.render(more)} (vote {vote})" if isinstance(
            proposal, VoteProposed) else f"could not ask for more: {proposal}"
        decided = OrchestratorDecided(request_id=s.request_id, task_id=key, decision="extend",
                                      reason=f"the request has spent {said} ({EXTEND_AT:.0%} or more); {asked}")
        out = [Intent(streams.request(s.request_id), [self._new(decided, key)], s.version)]
        if isinstance(proposal, VoteProposed):
            out.append(Intent(streams.vote(vote), [NewEvent(payload=proposal, metadata=Metadata(
                correlation_id=s.request_id, actor=ACTOR))], NO_STREAM))
        return out

    def _planning(self, revision: int, failure: str, answer: str) -> Intent:
        """The planning task of ``revision``: the plan so far, what completed, what failed (and a person's answer)."""
        s = self.state
        feature = s.feature
        assert feature is not None
        latest = s.adopted[max(s.adopted)]
        previous = msgspec.to_builtins(latest.plan if isinstance(latest, PlanRevised) else s.proposed[0].plan)
        done = self._done()
        kinds = {name: s.tasks[tid].capability for name, tid in done.items()}
        first = s.tasks.get(feature.planner_task)
        inputs = {**(first.inputs if first is not None else {}), "revision": revision, "previous": previous,
                  "done": kinds, "failure": failure, "answer": answer, "approve": True}
        tid = _planner_id(s.request_id, revision)
        spec = TaskSpec(task_id=tid, capability="plan.write", inputs=inputs, max_attempts=3,
                        title=f"plan: revision {revision}")
        meta = Metadata(correlation_id=s.request_id, actor=ACTOR)
        return Intent(streams.task(tid), [NewEvent(payload=spec.submitted(tid, s.request_id, 2), metadata=meta)],
                      NO_STREAM)

    def _finish(self, outcome: str, reason: str, now: float) -> Sequence[Intent]:
        s = self.state
        finished = RequestFinished(request_id=s.request_id, outcome=outcome,  # type: ignore[arg-type]
                                   reason=reason, elapsed_s=round(max(0.0, now - s.submitted_at), 3))
        return [Intent(streams.request(s.request_id), [self._new(finished, "finished")], s.version)]

    def _note(self, event: Any, name: str) -> Intent:
        return Intent(streams.request(self.state.request_id), [self._new(event, name)], self.state.version)

    def _new(self, event: Any, name: str) -> NewEvent:
        """``event`` with an id that is a function of the request and what it records: once, whoever records it."""
        rid = self.state.request_id
        return NewEvent(payload=event, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:orchestrator:{rid}:{name}"),
                        metadata=Metadata(correlation_id=rid, actor=ACTOR))

    def due(self, now: float) -> float:
        """Nothing falls due on the clock: every decision follows an event."""
        return now + 5.0


def _planner_id(request_id: str, revision: int) -> str:
    return f"{request_id}-plan" if revision == 0 else f"{request_id}-r{revision}-plan"


def _renamed(pipeline: list[TaskSpec], old: str, new: str) -> list[TaskSpec]:
    """The pipeline's specs with every task id of the request ``old…`` renamed ``new…`` (ids and inputs alike)."""
    ids = {spec.task_id: (spec.task_id or "").replace(old, new, 1) for spec in pipeline}

    def rename(value: Any) -> Any:
        return ids.get(value, value) if isinstance(value, str) else value

    return [msgspec.structs.replace(spec, task_id=ids[spec.task_id], depends_on=[rename(d) for d in spec.depends_on],
                                    inputs={k: rename(v) for k, v in spec.inputs.items()}) for spec in pipeline]
