"""The plan benchmark's requests file loads, bad files are refused with what is wrong, and plans are judged."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# bench holds scripts, not a package (its modules import each other by name); appended, so its script names
# (gate, pipeline, recovery, ...) never shadow a module another test imports.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from plan_checks import ROLES, Expectation, check, load

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ROOT / "bench" / "feature_requests.toml"

# -- load ----------------------------------------------------------------------------------------


def test_the_real_requests_file_loads_with_enough_distinct_requests() -> None:
    expectations = load(REQUESTS)
    assert len(expectations) >= 24
    assert len({e.id for e in expectations}) == len(expectations)
    assert len({e.text for e in expectations}) == len(expectations)
    for e in expectations:
        assert set(e.roles) <= set(ROLES)
        assert all(a in e.roles and b in e.roles for a, b in e.order)
    jwt = next(e for e in expectations if e.id == "jwt-auth")
    assert jwt == Expectation("jwt-auth", "Add a user authentication system with JWT tokens",
                              ("architect", "coder", "tester", "documenter"),
                              (("architect", "coder"), ("coder", "tester")))


def test_only_requests_that_ask_to_ship_demand_the_deployer() -> None:
    shipped = {e.id for e in load(REQUESTS) if "deployer" in e.roles}
    assert shipped == {"healthz-deploy", "webhook-signature-hotfix", "notifications-release"}


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "requests.toml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = '[[requests]]\nid = "a-fix"\ntext = "Fix it"\nroles = ["coder", "tester"]\norder = [["coder", "tester"]]\n'


def test_a_small_good_file_loads_and_order_is_optional(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + '[[requests]]\nid = "docs"\ntext = "Write docs"\nroles = ["documenter"]\n')
    assert load(path) == [Expectation("a-fix", "Fix it", ("coder", "tester"), (("coder", "tester"),)),
                          Expectation("docs", "Write docs", ("documenter",), ())]


@pytest.mark.parametrize(("body", "message"), [
    ('[[requests]]\nid = "x"\nroles = ["coder"]\n', r"request 1 \('x'\): missing text"),
    ('[[requests]]\nid = "x"\ntext = "  "\nroles = ["coder"]\n', r"request 1 \('x'\): missing text"),
    (GOOD + GOOD, r"request 2: duplicate id 'a-fix'"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder"]\nrole = ["tester"]\n',
     r"request 1 \('x'\): unknown key 'role' \(did you mean 'roles'\?\)"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder", "tester"]\norder = [["coder"]]\n',
     r"request 1 \('x'\): order pair \['coder'\] is not two role names"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder", "tester"]\norder = [["coder", "tester", "coder"]]\n',
     r"order pair .* is not two role names"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder", "tester"]\norder = [["coder", 1]]\n',
     r"order pair .* is not two role names"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder", "tester"]\norder = ["coder", "tester"]\n',
     r"order pair 'coder' is not two role names"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder"]\norder = [["coder", "tester"]]\n',
     r"names 'tester', which is not in roles"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder"]\norder = [["coder", "coder"]]\n', r"same role twice"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["codr"]\n', r"unknown role 'codr' \(did you mean 'coder'\?\)"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = []\n', r"roles must be a non-empty list"),
    ('[[requests]]\nid = "x"\ntext = "t"\nroles = ["coder", "coder"]\n', r"listed twice"),
    ('[[requests]]\ntext = "t"\nroles = ["coder"]\n', r"request 1: missing id"),
    ('[[requests]]\nid = "Bad_Id"\ntext = "t"\nroles = ["coder"]\n', r"request 1: id must be lower-case"),
    ('title = "x"\n' + GOOD, r"unknown top-level key 'title'"),
    ("", r"no requests"),
    ("[[requests]\n", r"not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_entry_and_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ValueError, match=message) as caught:
        load(path)
    assert str(path) in str(caught.value)


# -- check ---------------------------------------------------------------------------------------

FEATURE = Expectation("feature", "Add a feature", ("architect", "coder", "tester", "documenter"),
                      (("architect", "coder"), ("coder", "tester")))


def _task(ident: str, role: str, *depends_on: str) -> dict[str, Any]:
    return {"id": ident, "title": ident, "role": role, "capability": ROLES[role][0], "instructions": "do it",
            "acceptance": ["it is done"], "files": [], "estimate_minutes": 5, "estimate_tokens": 1000,
            "depends_on": list(depends_on)}


def _plan(*phases: list[dict[str, Any]]) -> dict[str, Any]:
    return {"summary": "a plan", "phases": [{"name": f"phase {n}", "tasks": tasks} for n, tasks in enumerate(phases)]}


def test_a_good_plan_passes() -> None:
    plan = _plan([_task("design", "architect")],
                 [_task("api", "coder", "design"), _task("ui", "coder", "design")],
                 [_task("tests", "tester", "api", "ui"), _task("docs", "documenter", "design")])
    assert check(plan, FEATURE) == []


def test_a_required_role_with_no_task_is_reported() -> None:
    plan = _plan([_task("design", "architect"), _task("code", "coder", "design"), _task("tests", "tester", "code")])
    assert check(plan, FEATURE) == ["no task has role 'documenter'"]


def test_a_task_that_does_not_follow_the_role_it_must_follow_is_named() -> None:
    plan = _plan([_task("design", "architect"), _task("code", "coder", "design"), _task("docs", "documenter")],
                 [_task("unit", "tester", "code"), _task("smoke", "tester", "design")])
    assert check(plan, FEATURE) == [
        "task 'smoke' (tester) does not depend, directly or through other tasks, on any coder task"]


def test_a_dependency_through_other_tasks_satisfies_the_order() -> None:
    # fix depends on tests, tests on code, code on design: fix follows the architect only through two
    # other tasks. Cut code from design and neither coder task follows an architect task any more.
    plan = _plan([_task("design", "architect"), _task("docs", "documenter", "design")],
                 [_task("code", "coder", "design"), _task("tests", "tester", "code"),
                  _task("fix", "coder", "tests"), _task("retest", "tester", "fix")])
    assert check(plan, FEATURE) == []
    plan["phases"][1]["tasks"][0]["depends_on"] = []
    assert check(plan, FEATURE) == [
        "task 'code' (coder) does not depend, directly or through other tasks, on any architect task",
        "task 'fix' (coder) does not depend, directly or through other tasks, on any architect task"]


def test_an_order_pair_whose_first_role_is_missing_is_reported_once_as_the_missing_role() -> None:
    plan = _plan([_task("code", "coder"), _task("tests", "tester", "code"), _task("docs", "documenter")])
    assert check(plan, FEATURE) == ["no task has role 'architect'"]


def test_a_dependency_cycle_does_not_hang_or_satisfy_the_order() -> None:
    plan = _plan([_task("design", "architect"), _task("docs", "documenter"), _task("code", "coder", "design"),
                  _task("t1", "tester", "t2"), _task("t2", "tester", "t1")])
    assert check(plan, FEATURE) == [
        "task 't1' (tester) does not depend, directly or through other tasks, on any coder task",
        "task 't2' (tester) does not depend, directly or through other tasks, on any coder task"]


@pytest.mark.parametrize(("plan", "problem"), [
    ([], "the plan is not a JSON object but list"),
    ("a plan", "the plan is not a JSON object but str"),
    (None, "the plan is not a JSON object but NoneType"),
    ({"summary": "s"}, "the plan has no list of phases"),
    ({"phases": {"name": "p"}}, "the plan has no list of phases"),
    ({"phases": ["p"]}, "phase 1 is not an object with a list of tasks"),
    ({"phases": [{"name": "p", "tasks": "code it"}]}, "phase 1 is not an object with a list of tasks"),
    ({"phases": [{"tasks": ["code it"]}]}, "task 1 of phase 1 is not an object"),
    ({"phases": [{"tasks": [{"role": "coder"}]}]}, "task 1 of phase 1 has no id"),
    ({"phases": [{"tasks": [{"id": 7, "role": "coder"}]}]}, "task 1 of phase 1 has no id"),
    ({"phases": [{"tasks": [{"id": "c"}]}]}, "task 'c' has no role"),
    ({"phases": [{"tasks": [{"id": "c", "role": "coder", "depends_on": "design"}]}]},
     "task 'c': depends_on is not a list of task ids"),
    ({"phases": [{"tasks": [{"id": "c", "role": "coder", "depends_on": [1]}]}]},
     "task 'c': depends_on is not a list of task ids"),
    ({"phases": [{"tasks": [{"id": "c", "role": "coder"}, {"id": "c", "role": "tester"}]}]},
     "task id 'c' is used twice"),
    ({"phases": [{"tasks": [{"id": "c", "role": "coder", "depends_on": ["design"]}]}]},
     "task 'c' depends on 'design', which is not in the plan"),
])
def test_a_malformed_plan_is_a_problem_not_an_exception(plan: Any, problem: str) -> None:
    expected = Expectation("fix", "Fix it", ("coder",), ())
    assert problem in check(plan, expected)


def test_the_well_formed_tasks_of_a_malformed_plan_are_still_judged() -> None:
    plan = _plan([_task("code", "coder"), "write tests", {"id": "docs"}])
    assert check(plan, FEATURE) == ["task 2 of phase 1 is not an object", "task 'docs' has no role",
                                    "no task has role 'architect'", "no task has role 'tester'",
                                    "no task has role 'documenter'"]
