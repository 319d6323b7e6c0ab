"""What a plan must be before anything runs: the schema the planner answers in, and the checks it passes.

The schema keeps to the strictest subset every provider's structured output accepts: every field
required, no numeric or length constraints, no extra fields. What the schema cannot say is
checked here, each problem said exactly, so that one round back to the model can fix it:

* the plan has tasks, and each task id is a short name used once;
* every role is one the team has, and every capability one that role's agents have;
* every dependency names a task of the plan, and the dependencies have no cycle;
* no task needs an action the policy grants its role nowhere (from what its skill declares);
* the estimates are numbers a plan can mean, and they fit the request's budget (tokens in all,
  and minutes along the longest chain of dependencies against its wall time);
* nothing comes after shipping: no task depends on a ``ci.deploy`` task, which stands for the whole
  CI pipeline over the request's result;
* every text is of a size a person can read and the log holds (:data:`LIMITS`).

The roster — the team as the plan may use it — is built once when the request is submitted
(:func:`roster`) and travels in the planning task's inputs, so validating is a pure function of
the plan, the roster and the budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from events.catalogue import Budget, Plan, PlanPhase, PlanTask
from governance import warrant

SHIP = "ci.deploy"
"""The capability that stands for the CI pipeline: a plan task of it ships what the other tasks made."""

NEEDS: Mapping[str, tuple[str, ...]] = {"code.fix": ("test.write", "test.run"), "test.run": ("code.fix",)}
"""Capabilities that work on an earlier task's result: a task of one of these must be upstream of them."""

TASK_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MOST_TASKS = 40


class TaskAnswer(BaseModel):
    """One task, as the planner model writes it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    role: str
    capability: str
    instructions: str
    acceptance: list[str]
    files: list[str]
    estimate_minutes: float
    estimate_tokens: int
    depends_on: list[str]


class PhaseAnswer(BaseModel):
    """One phase, as the planner model writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    tasks: list[TaskAnswer]


class PlanAnswer(BaseModel):
    """The planner model's whole answer: a summary and the phases in order."""

    model_config = ConfigDict(extra="forbid")

    summary: str
    phases: list[PhaseAnswer]

    def plan(self) -> Plan:
        """The answer as the plan recorded in the log."""
        return Plan(summary=self.summary, phases=[PlanPhase(name=p.name, tasks=[PlanTask(
            id=t.id, title=t.title, role=t.role, capability=t.capability, instructions=t.instructions,
            acceptance=list(t.acceptance), files=list(t.files), estimate_minutes=float(t.estimate_minutes),
            estimate_tokens=max(0, int(t.estimate_tokens)), depends_on=list(t.depends_on)) for t in p.tasks])
            for p in self.phases])


class RoleSheet(BaseModel):
    """One role of the team: the capabilities its agents have (each with the actions its skill declares) and the
    actions the policy grants the role at all (patterns, as in the policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capabilities: dict[str, list[str]]
    granted: list[str]


class Roster(BaseModel):
    """The team as a plan may use it: role → :class:`RoleSheet`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: dict[str, RoleSheet]

    def describe(self) -> str:
        """The roster as the planner reads it: one line per role, with its capabilities."""
        return "\n".join(f"- {role}: {', '.join(sorted(sheet.capabilities))}"
                         for role, sheet in sorted(self.roles.items()))


def roster(agents: Iterable[tuple[str, Iterable[str]]], declared: Mapping[str, Iterable[str]],
           granted: Mapping[str, Iterable[str]]) -> Roster:
    """The roster of a team: ``agents`` as (role, capabilities) pairs (several agents may share a role),
    ``declared`` capability → the actions its skill declares, ``granted`` role → the actions the policy grants it.

    Roles nobody plans with are left out: the orchestrator's own (it plans) and roles with no capability.
    """
    roles: dict[str, dict[str, list[str]]] = {}
    for role, capabilities in agents:
        for capability in capabilities:
            roles.setdefault(role, {})[capability] = sorted(declared.get(capability, ()))
    return Roster(roles={role: RoleSheet(capabilities=caps, granted=sorted(granted.get(role, ())))
                         for role, caps in sorted(roles.items()) if caps and role != "orchestrator"})


def problems(plan: Plan, team: Roster, budget: Budget, *, done: Iterable[str] = (),
             done_kinds: Mapping[str, str] | None = None) -> list[str]:
    """Everything wrong with ``plan`` for ``team`` within ``budget``, each said so the planner can fix it; [] if
    nothing is. ``done`` names tasks of an earlier plan a revision may depend on (they have completed), and
    ``done_kinds`` their capabilities."""
    found: list[str] = []
    tasks = plan.tasks()
    if not tasks:
        return ["the plan has no tasks: give at least one phase with at least one task"]
    if len(tasks) > MOST_TASKS:
        found.append(f"the plan has {len(tasks)} tasks; at most {MOST_TASKS}: merge small steps")
    if any(not p.tasks for p in plan.phases):
        found.append(f"phase(s) {', '.join(repr(p.name) for p in plan.phases if not p.tasks)} have no tasks: "
                     "remove them or give them tasks")
    seen: dict[str, PlanTask] = {}
    for task in tasks:
        if not TASK_ID.match(task.id):
            found.append(f"task id {task.id!r} is not a short name: use lower-case letters, digits and '-', at most "
                         "40 characters, like 'code-auth'")
        if task.id in seen:
            found.append(f"task id {task.id!r} is used twice: give each task its own id")
        seen[task.id] = task
    found += _size_problems(plan)
    for task in tasks:
        found += _task_problems(task, team)
    earlier = set(done)
    found += [f"task {t.id!r} completed already: do not plan it again (a new task may depend on it by id)"
              for t in tasks if t.id in earlier]
    for task in tasks:
        for dep in task.depends_on:
            if dep not in seen and dep not in earlier:
                found.append(f"task {task.id!r} depends on {dep!r}, which is not a task of the plan "
                             f"(tasks: {', '.join(seen)})")
            elif dep in seen and seen[dep].capability == SHIP:
                found.append(f"task {task.id!r} depends on {dep!r}, which ships the result ({SHIP}): shipping comes "
                             "last; nothing may depend on it")
    cycle = _cycle({t.id: [d for d in t.depends_on if d in seen] for t in tasks})
    if cycle:
        found.append(f"tasks {' -> '.join(cycle)} depend on each other in a cycle: break it")
    else:
        found += _upstream_problems(tasks, seen, done_kinds or {})
    found += _estimate_problems(tasks, budget, cycle=bool(cycle))
    return found


LIMITS = {"summary": 4_000, "phase name": 100, "title": 300, "text of instructions": 8_000,
          "acceptance criterion": 1_000, "file path": 1_000}
"""The longest text a plan may hold in each place (characters): a plan is read by people and goes into the log."""
MOST_CRITERIA, MOST_FILES = 20, 50


def _size_problems(plan: Plan) -> list[str]:
    found = []

    def said(what: str, where: str, text: str) -> None:
        if len(text) > LIMITS[what]:
            found.append(f"{where}: a {what} of {len(text):,} characters; at most {LIMITS[what]:,}: say it shorter")

    said("summary", "the plan", plan.summary)
    for phase in plan.phases:
        said("phase name", f"phase {phase.name[:40]!r}", phase.name)
        for task in phase.tasks:
            where = f"task {task.id[:40]!r}"
            said("title", where, task.title)
            said("text of instructions", where, task.instructions)
            for criterion in task.acceptance:
                said("acceptance criterion", where, criterion)
            for path in task.files:
                said("file path", where, path)
            if len(task.acceptance) > MOST_CRITERIA or len(task.files) > MOST_FILES:
                found.append(f"{where}: at most {MOST_CRITERIA} acceptance criteria and {MOST_FILES} files "
                             f"(it has {len(task.acceptance)} and {len(task.files)})")
    return found


def _task_problems(task: PlanTask, team: Roster) -> list[str]:
    sheet = team.roles.get(task.role)
    if sheet is None:
        return [f"task {task.id!r}: role {task.role!r} is not in the team (roles: {', '.join(sorted(team.roles))})"]
    if task.capability not in sheet.capabilities:
        return [f"task {task.id!r}: role {task.role!r} cannot do {task.capability!r} ({task.role} can do: "
                f"{', '.join(sorted(sheet.capabilities))})"]
    missing = [a for a in sheet.capabilities[task.capability]
               if not any(warrant.covers_name(g, a) for g in sheet.granted)]
    if missing:
        return [f"task {task.id!r}: the policy does not let role {task.role!r} take {', '.join(missing)}, which "
                f"{task.capability} needs: give the task to a role that may"]
    return []


def _upstream_problems(tasks: list[PlanTask], seen: Mapping[str, PlanTask], done: Mapping[str, str]) -> list[str]:
    found = []
    for task in tasks:
        wanted = NEEDS.get(task.capability)
        if not wanted:
            continue
        queue, visited, ok = list(task.depends_on), set(), False
        while queue and not ok:
            dep = queue.pop()
            if dep in visited:
                continue
            visited.add(dep)
            kind = seen[dep].capability if dep in seen else done.get(dep)
            ok = kind in wanted
            queue += seen[dep].depends_on if dep in seen else []
        if not ok:
            found.append(f"task {task.id!r} ({task.capability}) works on the result of a {' or '.join(wanted)} task: "
                         "make it depend on one")
    return found


def _estimate_problems(tasks: list[PlanTask], budget: Budget, *, cycle: bool) -> list[str]:
    found = [f"task {t.id!r}: estimates must be positive numbers (minutes {t.estimate_minutes}, tokens "
             f"{t.estimate_tokens})" for t in tasks
             if not 0 < t.estimate_minutes < 10_000 or t.estimate_tokens < 0]
    total = sum(t.estimate_tokens for t in tasks)
    if budget.tokens is not None and total > budget.tokens:
        found.append(f"the tasks' estimates come to {total:,} tokens, over the request's budget of "
                     f"{budget.tokens:,}: plan fewer or smaller tasks")
    if budget.wall_time_s is not None and not cycle and not found:
        longest = _longest_chain(tasks)
        if longest * 60 > budget.wall_time_s:
            found.append(f"the longest chain of dependent tasks takes {longest:.0f} minutes by the estimates, over "
                         f"the request's {budget.wall_time_s / 60:.0f} minutes: plan less, or more in parallel")
    return found


def _cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """A cycle of ``graph`` (node → the nodes it depends on) as a path that returns to its start, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _longest_chain(tasks: list[PlanTask]) -> float:
    """Minutes along the longest chain of dependencies (the graph is acyclic)."""
    by_id = {t.id: t for t in tasks}
    memo: dict[str, float] = {}

    def finish(task_id: str) -> float:
        if task_id not in memo:
            task = by_id[task_id]
            memo[task_id] = task.estimate_minutes + max(
                (finish(d) for d in task.depends_on if d in by_id), default=0.0)
        return memo[task_id]

    return max(finish(t.id) for t in tasks)


def order(plan: Plan) -> list[PlanTask]:
    """The plan's tasks in an order where each comes after the tasks it depends on (the plan's order otherwise)."""
    tasks = plan.tasks()
    placed: set[str] = set()
    out: list[PlanTask] = []
    ids = {t.id for t in tasks}
    while len(out) < len(tasks):
        ready = [t for t in tasks if t.id not in placed and all(d in placed or d not in ids for d in t.depends_on)]
        if not ready:
            raise ValueError("the plan's dependencies have a cycle; validate it first")
        out.append(ready[0])
        placed.add(ready[0].id)
    return out
