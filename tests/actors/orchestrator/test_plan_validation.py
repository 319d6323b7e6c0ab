"""A plan is validated before anything runs: every way it can be wrong is found and said so a model can fix it, and
a plan that is right passes."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from orchestrator_support import example_roster, jwt_answer, task

from actors.orchestrator.validate import PlanAnswer, RoleSheet, Roster, order, problems
from events.catalogue import Budget

BUDGET = Budget(tokens=2_000_000, wall_time_s=4 * 3600.0)
TEAM = example_roster()


def found(answer: dict[str, Any], team: Roster = TEAM, budget: Budget = BUDGET) -> list[str]:
    return problems(PlanAnswer.model_validate(answer).plan(), team, budget)


def test_the_seed_example_plan_passes_for_the_example_team_and_policy() -> None:
    assert found(jwt_answer()) == []
    assert set(TEAM.roles) >= {"architect", "coder", "tester", "reviewer", "documenter", "deployer"}
    assert "orchestrator" not in TEAM.roles  # the planner does not plan itself
    assert TEAM.roles["coder"].capabilities["code.write"] == ["file.read", "file.write", "git.commit", "llm.call"]


@pytest.mark.parametrize(("change", "said"), [
    (lambda a: a["phases"][1]["tasks"][0].update(role="wizard"), "role 'wizard' is not in the team"),
    (lambda a: a["phases"][1]["tasks"][0].update(capability="deploy.local"), "role 'coder' cannot do 'deploy.local'"),
    (lambda a: a["phases"][2]["tasks"][0].update(depends_on=["code-autth"]), "depends on 'code-autth', which is not"),
    (lambda a: a["phases"][0]["tasks"][0].update(depends_on=["docs-auth"]), "in a cycle"),
    (lambda a: a["phases"][2]["tasks"][0].update(id="code-auth"), "is used twice"),
    (lambda a: a["phases"][0]["tasks"][0].update(id="Design Phase!"), "is not a short name"),
    (lambda a: a["phases"][1]["tasks"][0].update(estimate_tokens=2_500_000), "over the request's budget"),
    (lambda a: a["phases"][1]["tasks"][0].update(estimate_minutes=300), "longest chain"),
    (lambda a: a["phases"][1]["tasks"][0].update(estimate_minutes=-5), "must be positive"),
    (lambda a: a["phases"][2]["tasks"].append(task("fix", "coder", "code.fix", ["code-auth"])),
     "works on the result of a test.write or test.run task"),
    (lambda a: a["phases"][3]["tasks"][0].update(depends_on=["ship"]), "shipping comes last"),
    (lambda a: a["phases"].append({"name": "afterthoughts", "tasks": []}), "have no tasks"),
    (lambda a: a.update(phases=[]), "the plan has no tasks"),
    (lambda a: a["phases"][1]["tasks"][0].update(instructions="x" * 9_000),
     "a text of instructions of 9,000 characters; at most 8,000"),
    (lambda a: a["phases"][1]["tasks"][0].update(acceptance=["ok"] * 21), "at most 20 acceptance criteria"),
])
def test_each_problem_is_found_and_said_exactly(change: Any, said: str) -> None:
    answer = copy.deepcopy(jwt_answer())
    change(answer)
    problems_found = found(answer)
    assert any(said in p for p in problems_found), problems_found


def test_a_task_whose_skill_needs_an_action_the_policy_never_grants_its_role_is_refused() -> None:
    sheets = dict(TEAM.roles)
    coder = sheets["coder"]
    granted = [g for g in coder.granted if g != "git.commit"]
    sheets["coder"] = RoleSheet(capabilities=coder.capabilities, granted=granted)
    said = found(jwt_answer(), Roster(roles=sheets))
    assert said == ["task 'code-auth': the policy does not let role 'coder' take git.commit, which code.write needs: "
                    "give the task to a role that may"]


def test_the_schema_is_the_strict_subset_every_provider_accepts() -> None:
    schema = PlanAnswer.model_json_schema()
    for definition in [schema, *schema["$defs"].values()]:
        assert definition["additionalProperties"] is False
        assert set(definition["required"]) == set(definition["properties"])  # every field required
    text = str(schema)
    assert "minimum" not in text and "maxLength" not in text and "minLength" not in text


def test_a_revision_may_depend_on_tasks_of_the_plan_before_that_completed() -> None:
    answer = {"summary": "", "phases": [{"name": "testing", "tasks": [
        task("fix-2", "coder", "code.fix", ["test-auth"]), task("retest-2", "tester", "test.run", ["fix-2"])]}]}
    plan = PlanAnswer.model_validate(answer).plan()
    assert problems(plan, TEAM, BUDGET, done={"test-auth"}, done_kinds={"test-auth": "test.write"}) == []
    assert "which is not a task of the plan" in problems(plan, TEAM, BUDGET)[0]
    again = PlanAnswer.model_validate({"summary": "", "phases": [{"name": "testing", "tasks": [
        task("test-auth", "tester", "test.write", [])]}]}).plan()
    assert problems(again, TEAM, BUDGET, done={"test-auth"}) == [
        "task 'test-auth' completed already: do not plan it again (a new task may depend on it by id)"]


def test_random_plans_are_judged_acyclic_exactly_when_an_order_exists() -> None:
    """Random dependency graphs: a plan has no cycle problem exactly when :func:`order` can place every task after
    its dependencies (and then it does)."""
    rng = random.Random(17)
    proved = 0
    for _ in range(300):
        n = rng.randint(1, 9)
        ids = [f"t{i}" for i in range(n)]
        tasks = [task(ids[i], "coder", "code.write", rng.sample(ids, rng.randint(0, min(3, n))), tokens=10)
                 for i in range(n)]
        plan = PlanAnswer.model_validate({"summary": "", "phases": [{"name": "p", "tasks": tasks}]}).plan()
        cyclic = any("cycle" in p for p in problems(plan, TEAM, BUDGET))
        try:
            placed = order(plan)
        except ValueError:
            assert cyclic
            proved += 1
            continue
        assert not cyclic
        at = {t.id: i for i, t in enumerate(placed)}
        assert all(at[d] < at[t.id] for t in placed for d in t.depends_on)
        proved += 1
    assert proved == 300
