"""A feature request's plan and the orchestrator's decisions, all in the request's stream (``request-<request_id>``).

::

    feature.requested → plan.proposed ─┬→ plan.confirmed? → plan.adopted → (tasks run) → request.finished
                                       └→ plan.rejected → request.finished (stopped)
         a task fails for good → orchestrator.decided (revise | ask | stop) → plan.revised → …

The plan is what the planner model proposed, validated (:mod:`actors.orchestrator.validate`);
``plan.adopted`` lands in one commit with the request's tasks and one warrant per phase and role.
Every decision the orchestrator takes is an event with its reason.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from events.catalogue.fields import Capability, Count, Id, Inputs, Seconds, Text
from events.catalogue.governance import Budget
from events.catalogue.tasks import TaskSpec
from events.registry import Event, event_type


class PlanTask(Struct, frozen=True, kw_only=True):
    """One task of a plan: who does it (``role``, ``capability``), what, how it is judged, and what it waits for."""

    id: Id
    """The plan's name for the task (``design``, ``code-auth``); its task id is the request's id and this."""
    title: Text
    role: Id
    capability: Capability
    instructions: Text
    acceptance: list[Text] = []
    files: list[Text] = []
    estimate_minutes: float = 0.0
    estimate_tokens: Count = 0
    depends_on: list[Id] = []


class PlanPhase(Struct, frozen=True, kw_only=True):
    """A phase: tasks that belong together (architecture, implementation, testing…), under one warrant per role."""

    name: Id
    tasks: list[PlanTask] = []


class Plan(Struct, frozen=True, kw_only=True):
    """What the planner proposed for a request: a summary and its phases, in order."""

    summary: Text = ""
    phases: list[PlanPhase] = []

    def tasks(self) -> list[PlanTask]:
        """Every task of every phase, in the plan's order."""
        return [task for phase in self.phases for task in phase.tasks]


@event_type("feature.requested")
class FeatureRequested(Event, frozen=True, kw_only=True):
    """A request in plain words, to be planned by the orchestrator over a repository's tree (relative to the
    workspace). ``plan_only`` stops at the proposed plan; ``confirm`` waits for a person to confirm it."""

    request_id: Id
    instruction: Text
    repository: Text
    tree: Text
    commit: Id
    planner_task: Id
    plan_only: bool = False
    confirm: bool = False
    revisions: Count = 1
    """How often the plan may be revised after a task fails for good."""
    team: Inputs = {}
    """The roster the plan is validated against (``actors.orchestrator.validate.Roster``), as the team was when
    the request was submitted."""
    budget: Budget = Budget()
    """The request's budget, which the plan's estimates must fit."""
    threshold: Text = "high"
    """The review severity that stops the request (the policy's ``[tool.pipeline] review_block_at``)."""
    pipeline: list[TaskSpec] = []
    """The CI pipeline's tasks over the request's result, submitted if the plan ships (depending on its last
    tasks)."""


@event_type("plan.proposed")
class PlanProposed(Event, frozen=True, kw_only=True):
    """The planner's plan passed validation (``repaired``: after one round with the problems of the first)."""

    request_id: Id
    revision: Count
    plan: Plan
    model: Text = ""
    repaired: list[Text] = []
    """The problems of the first answer, when it was sent back once."""
    planner_task: Id


@event_type("plan.rejected")
class PlanRejected(Event, frozen=True, kw_only=True):
    """The planner's plan failed validation twice (or planning failed): the request stops with the problems."""

    request_id: Id
    revision: Count
    problems: list[Text]
    planner_task: Id


@event_type("plan.confirmed")
class PlanConfirmed(Event, frozen=True, kw_only=True):
    """A person read the proposed plan and let it start (``council run feature`` without ``--yes``)."""

    request_id: Id
    revision: Count
    by: Id


class PhaseGrant(Struct, frozen=True, kw_only=True):
    """A phase's warrant for one role: every task of that role in the phase works under a child of it."""

    phase: Id
    role: Id
    warrant_id: Id
    actions: list[Text]
    tasks: list[Id]


@event_type("plan.adopted")
class PlanAdopted(Event, frozen=True, kw_only=True):
    """The plan became the request's tasks and phase warrants, in this same commit; ``tasks`` maps each plan task
    to its task id."""

    request_id: Id
    revision: Count
    tasks: dict[Id, Id]
    grants: list[PhaseGrant] = []
    pipeline: list[Id] = []
    """The CI pipeline's task ids, when the plan ships what it makes (a task of capability ``ci.deploy``)."""


@event_type("plan.revised")
class PlanRevised(Event, frozen=True, kw_only=True):
    """After a task failed for good, the planner's new tasks replace the ones not done yet (validated like the
    first plan); adopted in the same commit as its tasks, like ``plan.adopted``."""

    request_id: Id
    revision: Count
    reason: Text
    plan: Plan
    tasks: dict[Id, Id]
    grants: list[PhaseGrant] = []
    cancelled: list[Id] = []
    planner_task: Id
    pipeline: list[Id] = []
    """The CI pipeline's task ids, when the revised plan ships."""


Decision = Literal["revise", "ask", "stop", "extend"]


@event_type("orchestrator.decided")
class OrchestratorDecided(Event, frozen=True, kw_only=True):
    """What the orchestrator decided about a task that failed for good, or a budget running low, and why."""

    request_id: Id
    task_id: Id | None = None
    decision: Decision
    reason: Text
    question: Text = ""


@event_type("orchestrator.answered")
class OrchestratorAnswered(Event, frozen=True, kw_only=True):
    """A person answered the orchestrator's question (``council answer REQUEST "…"``): the plan is revised with it."""

    request_id: Id
    answer: Text
    by: Id


Outcome = Literal["completed", "stopped", "planned"]


@event_type("request.finished")
class RequestFinished(Event, frozen=True, kw_only=True):
    """The orchestrator is done with the request: every task completed, or it stopped (and why), or only a plan
    was asked for."""

    request_id: Id
    outcome: Outcome
    reason: Text = ""
    elapsed_s: Seconds = 0.0
