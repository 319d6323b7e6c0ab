"""The planner (``plan.write``): a request in plain words becomes a plan the team can carry out, or the exact
reasons it cannot.

One attempt:

1. **Read the tree** (one ``file.read``, remembered as a blob) and make a map of it, so the plan
   names real files; **recall** the project context and the lessons of earlier requests that bear
   on this one (:mod:`actors.coding.recall`), within a budget of tokens.
2. **Ask the model** for a plan as structured output (:class:`~actors.orchestrator.validate.PlanAnswer`),
   with the team's roster, the request's budget, and — for a revision — the plan so far, the tasks
   that completed and what failed. The call is governed, budgeted and recorded like every model
   call, so a rerun after a crash is answered from the log and paid for once.
3. **Validate** it (:func:`~actors.orchestrator.validate.problems`). A plan with problems goes back
   to the model once, with exactly those problems; if the second answer has problems too, the
   result says so and the orchestrator stops the request with them.
4. **Ask the policy** whether the plan may start: the gated action ``plan.approve`` on the plan's
   digest. The policy allows it, or asks people to approve it (the task waits, like any action
   awaiting approvals), or denies it — then the task fails with the policy's reason.

The result is the plan as data, with the model, the problems sent back and what the calls cost;
the orchestrator records it as ``plan.proposed`` or ``plan.rejected``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from actors.coding import context
from actors.coding.recall import recall
from actors.coding.repomap import mentioned_identifiers, repo_map
from actors.coding.skill_io import plain, validated
from actors.llm.types import Message
from actors.orchestrator.adopt import design_path
from actors.orchestrator.validate import PlanAnswer, Roster, problems
from actors.pipeline.results import StepResult
from actors.skills import Toolset, skill
from actors.tools.gated import Tools
from events.catalogue import Budget
from governance import signing
from projections.knowledge import Entry

SYSTEM = """You are the orchestrator of a software team. You turn a request into a plan the team carries out: \
phases in order (for example architecture, implementation, testing, documentation, deployment), each with tasks. \
Every task names the role that does it and one capability of that role (only roles and capabilities of the team \
below), says exactly what to do and how the result is judged (acceptance criteria), names the files it expects \
to touch, estimates its minutes and model tokens, and lists the ids of the tasks it depends on.

Rules:
- Task ids are short lower-case names with dashes, like "design" or "code-auth"; each used once.
- A feature that needs design work starts with one design.write task; the code tasks depend on it.
- Code is written by code.write; test.write writes and runs tests of a code task and depends on it; code.fix \
depends on a test.write or test.run task; test.run depends on a code.fix task; code.review and docs.write come \
after the code they judge or document.
- Ship (ci.deploy, which runs the whole CI pipeline: tests, review, build, staging, production) only if the \
request asks for it or the team ships every change; nothing depends on the deploy task.
- Keep the plan as small as the request allows; the estimates together must fit the budget.
Answer with the plan as JSON that fits the schema, nothing else."""


class PlanningTask(BaseModel):
    """What ``plan.write`` is asked: the request, the team and budget the plan must fit, and for a revision what
    happened so far."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction: Annotated[str, Field(min_length=1, max_length=20_000)]
    request_id: Annotated[str, Field(min_length=1, max_length=200)]
    team: Roster
    budget: dict[str, Any] = Field(default_factory=dict)
    revision: Annotated[int, Field(ge=0, le=20)] = 0
    previous: dict[str, Any] | None = None
    """A revision's plan so far (as recorded)."""
    done: dict[str, str] = Field(default_factory=dict)
    """Plan tasks that completed (plan task id → capability): a revision may depend on them and must not redo them."""
    failure: Annotated[str, Field(max_length=20_000)] = ""
    """Why the revision is asked for: the failed task and its error."""
    answer: Annotated[str, Field(max_length=20_000)] = ""
    """A person's answer to the orchestrator's question, if one was asked."""
    max_tokens: Annotated[int, Field(ge=256, le=64_000)] = 4096
    map_tokens: Annotated[int, Field(ge=0, le=16_000)] = 1024
    knowledge_tokens: Annotated[int, Field(ge=0, le=16_000)] = 1024
    """The budget of the project context and lessons shown with the request (:mod:`actors.coding.recall`)."""
    approve: bool = True
    """Ask the policy whether the plan may start (``plan.approve``); false for a plan that is only shown."""


class PlanWritten(StepResult, frozen=True, kw_only=True):
    """What the planner came to: a plan that passed validation, or the problems of the last answer."""

    plan: dict[str, Any]
    problems: list[str]
    """Empty when the plan is valid."""
    repaired: list[str]
    """The first answer's problems, when it was sent back."""
    model: str
    calls: int
    cost: float
    tokens: int


@skill("plan.write", toolset=Toolset.GATED, actions=("file.read", "llm.call", "plan.approve"))
def write_plan(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Turn ``inputs`` (a :class:`PlanningTask`) into a validated plan, or the reasons there is none (see the
    module)."""
    task = validated(PlanningTask, inputs, "plan.write")
    models = tools.models
    tree = tools.read_tree(".", remember=models.blobs)
    budget = msgspec.convert(task.budget, Budget)
    known = recall(models, "plan", "\n".join([task.instruction, task.failure, task.answer]), ("context", "lesson"),
                   task.knowledge_tokens)
    conversation = context.messages(SYSTEM, _question(task, tree, known))
    answer = models.ask(conversation, name="plan", schema=PlanAnswer, max_tokens=task.max_tokens, temperature=0.0)
    calls, cost, tokens = answer.calls, answer.cost, answer.reply.input_tokens + answer.reply.output_tokens
    assert answer.answer is not None
    plan = answer.answer.plan()
    found = problems(plan, task.team, budget, done=task.done, done_kinds=task.done)
    repaired: list[str] = []
    if found:
        repaired = found
        again = [*conversation, Message(role="assistant", content=answer.text),
                 Message(role="user", content="That plan cannot run as it is:\n" + "\n".join(f"- {p}" for p in found)
                         + "\nAnswer with the whole plan again, with these fixed.")]
        second = models.ask(again, name="plan-repair", schema=PlanAnswer, max_tokens=task.max_tokens, temperature=0.0)
        calls, cost = calls + second.calls, cost + second.cost
        tokens += second.reply.input_tokens + second.reply.output_tokens
        assert second.answer is not None
        plan = second.answer.plan()
        found = problems(plan, task.team, budget, done=task.done, done_kinds=task.done)
        answer = second
    if not found and task.approve:
        digest = signing.digest(msgspec.to_builtins(plan))
        tools.authorize("plan.approve", f"plan {task.request_id} revision {task.revision} {digest[:16]}",
                        arguments={"plan": digest, "request": task.request_id, "revision": task.revision})
    written = PlanWritten(plan=msgspec.to_builtins(plan), problems=found, repaired=repaired, model=answer.model,
                          calls=calls, cost=round(cost, 6), tokens=tokens)
    return plain(written)


def _question(task: PlanningTask, tree: dict[str, str], known: list[Entry]) -> str:
    """The user message: the request, the team, the budget, what the team knows that bears on it, the repository,
    and what a revision must know."""
    parts = [f"The request ({task.request_id}):\n{task.instruction}",
             f"The team (role: capabilities):\n{task.team.describe()}",
             f"The budget: {_budget(task.budget)}",
             f"An architect's design note goes to {design_path(task.request_id)}."]
    if known:
        parts.append(context.knowledge_part(known))
    if tree:
        the_map = repo_map(tree, mentioned=mentioned_identifiers(task.instruction), max_tokens=task.map_tokens,
                           count_tokens=context.tokens)
        parts.append("The repository's files:\n" + context.data_block("FILE LIST", "\n".join(sorted(tree)[:400])))
        if the_map:
            parts.append("A map of the repository:\n" + context.data_block("REPOSITORY MAP", the_map))
    else:
        parts.append("The repository is empty.")
    if task.previous is not None:
        parts.append(f"This is revision {task.revision} of the plan. The plan so far:\n"
                     + context.data_block("PLAN", json.dumps(task.previous, indent=1)))
        if task.done:
            parts.append("These tasks completed; do not plan them again (new tasks may depend on them by id): "
                         + ", ".join(sorted(task.done)))
        if task.failure:
            parts.append("What went wrong:\n" + context.data_block("FAILURE", task.failure))
        if task.answer:
            parts.append(f"A person answered how to go on:\n{task.answer}")
        parts.append("Plan only the work that is left, with new task ids.")
    return "\n\n".join(parts)


def _budget(budget: dict[str, Any]) -> str:
    said = [f"{budget['tokens']:,} model tokens" if budget.get("tokens") is not None else "",
            f"{budget['wall_time_s'] / 60:.0f} minutes" if budget.get("wall_time_s") is not None else ""]
    return ", ".join(s for s in said if s) or "no limit"
