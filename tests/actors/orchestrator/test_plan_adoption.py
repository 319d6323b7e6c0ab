"""Adopting a plan: each task becomes a task whose inputs its own skill accepts, wired to the results it works on;
shipping becomes the CI pipeline after the plan's last tasks; each phase and role gets a grant of just the actions
its tasks' skills declare."""

from __future__ import annotations

import copy

from orchestrator_support import example_roster, feature, jwt_answer, jwt_plan, task
from pydantic import BaseModel

from actors.coding.coder import CodeTask
from actors.coding.documenter import DocsTask
from actors.coding.reviewer import ReviewTask
from actors.coding.skill_io import validated
from actors.coding.tester import FixTask, RunTask, TestTask
from actors.orchestrator import adopt
from actors.orchestrator.architect import DesignTask
from actors.orchestrator.render import mermaid, table
from actors.orchestrator.validate import PlanAnswer
from actors.pipeline.plan import STEPS

SKILL_INPUTS: dict[str, type[BaseModel]] = {
    "design.write": DesignTask, "code.write": CodeTask, "test.write": TestTask, "code.fix": FixTask,
    "test.run": RunTask, "code.review": ReviewTask, "docs.write": DocsTask}


def test_the_plan_becomes_tasks_each_skill_accepts_then_the_pipeline() -> None:
    wanted = feature("r-jwt")
    ids, specs, pipeline = adopt.specs(wanted, 0, jwt_plan())
    assert ids == {"design": "r-jwt-design", "code-auth": "r-jwt-code-auth", "test-auth": "r-jwt-test-auth",
                   "docs-auth": "r-jwt-docs-auth"}  # "ship" is the pipeline, not a task of its own
    by_id = {s.task_id: s for s in specs}
    for spec in specs[:4]:
        validated(SKILL_INPUTS[spec.capability], spec.inputs, spec.capability)  # raises if the wiring is wrong
    code = by_id["r-jwt-code-auth"]
    assert code.depends_on == ["r-jwt-design"]
    assert code.inputs["files"] == [adopt.design_path("r-jwt"), "src/accounts_service/auth.py"]
    assert "passwords are hashed with a salt" in code.inputs["acceptance"]
    assert "Add a user authentication system with JWT tokens" in code.inputs["instruction"]
    assert by_id["r-jwt-test-auth"].inputs["code"] == "r-jwt-code-auth"
    assert by_id["r-jwt-docs-auth"].inputs["code"] == "r-jwt-code-auth"
    assert by_id["r-jwt-design"].inputs["path"] == "docs/design/r-jwt.md"
    assert pipeline == [f"r-jwt-{s.name}" for s in STEPS]
    assert by_id["r-jwt-changes"].depends_on == ["r-jwt-docs-auth"]  # the pipeline waits for the plan's last task
    assert by_id["r-jwt-prod"].capability == "ci.deploy"
    order = {s.task_id: i for i, s in enumerate(specs)}
    assert all(order[d] < order[s.task_id] for s in specs for d in s.depends_on)


def test_fix_and_rerun_find_the_test_runs_they_follow() -> None:
    answer = copy.deepcopy(jwt_answer())
    answer["phases"][2]["tasks"] += [task("fix-auth", "coder", "code.fix", ["test-auth"]),
                                     task("retest-auth", "tester", "test.run", ["fix-auth"]),
                                     task("critique", "reviewer", "code.review", ["retest-auth"])]
    plan = PlanAnswer.model_validate(answer).plan()
    _, specs, _ = adopt.specs(feature("r-fix"), 0, plan)
    by_id = {s.task_id: s for s in specs}
    assert by_id["r-fix-fix-auth"].inputs["after"] == "r-fix-test-auth"
    assert by_id["r-fix-retest-auth"].inputs == {"step": "retest-auth", "fix": "r-fix-fix-auth",
                                                 "after": "r-fix-test-auth", "last": True}
    assert by_id["r-fix-critique"].inputs["base"] == feature().commit
    for spec in specs:
        if spec.capability in SKILL_INPUTS:
            validated(SKILL_INPUTS[spec.capability], spec.inputs, spec.capability)


def test_each_phase_and_role_gets_just_what_its_tasks_skills_declare() -> None:
    grants = {(g.phase, g.role): g for g in adopt.grants("r-jwt", 0, jwt_plan(), example_roster())}
    assert set(grants) == {("architecture", "architect"), ("implementation", "coder"), ("testing", "tester"),
                           ("documentation", "documenter")}
    assert grants[("architecture", "architect")].actions == ["file.read", "file.write", "git.commit", "llm.call"]
    assert "deploy" not in grants[("implementation", "coder")].actions
    assert grants[("testing", "tester")].tasks == ["r-jwt-test-auth"]
    assert len({g.warrant_id for g in grants.values()}) == 4
    assert adopt.grants("r-jwt", 0, jwt_plan(), example_roster()) == list(grants.values())  # the same ids again


def test_a_revision_numbers_its_tasks_apart_from_the_first_plan() -> None:
    assert adopt.task_ids("r-1", 2, jwt_plan())["code-auth"] == "r-1-r2-code-auth"
    assert adopt.phase_warrant_id("r-1", 0, "testing", "tester") != adopt.phase_warrant_id("r-1", 1, "testing",
                                                                                           "tester")


def test_the_plan_reads_as_a_table_and_a_mermaid_diagram_that_model_text_cannot_break() -> None:
    answer = copy.deepcopy(jwt_answer())
    answer["phases"][0]["name"] = 'arch"] --> evil["x'
    answer["phases"][1]["tasks"][0]["title"] = "code \x1b[2J\x1b[31mred"  # a model's words that clear a terminal
    plan = PlanAnswer.model_validate(answer).plan()
    text = table(plan)
    assert "code-auth" in text and "design.write" in text and "5 task(s) in 5 phase(s)" in text
    assert "\x1b" not in text and "code [2J[31mred" in text
    diagram = mermaid(plan)
    assert diagram.startswith("flowchart LR")
    assert "t_design --> t_code_auth" in diagram and "t_docs_auth --> t_ship" in diagram
    assert '"]' not in diagram.split("\n")[1][:-2]  # the phase's name cannot close its label early
