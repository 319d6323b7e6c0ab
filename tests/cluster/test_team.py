"""Teams are configuration: a team file validated with the file, line and field of what is wrong, and a team
checked against the registered skills and the policy before anything starts. No Ray here."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.skills import SkillError, SkillRegistry
from cluster.settings import DEFAULT_POLICY, DEFAULT_TEAM
from cluster.team import AgentSpec, TeamError, check_team, load_team, parse_team
from governance.policy import load_policy

GOOD = """
skills = []

[[agents]]
name = "worker"
role = "worker"
capabilities = ["noop", "echo"]
slots = 4
count = 2

[[agents]]
name = "coder"
role = "coder"
capabilities = ["files.write"]
"""


def test_the_default_team_is_todays_team_and_passes_its_own_checks() -> None:
    team = load_team(DEFAULT_TEAM)
    assert [(m.agent_id, m.role, m.slots) for m in team.members()] == [
        ("worker-1", "worker", 4), ("worker-2", "worker", 4), ("orchestrator-1", "orchestrator", 2),
        ("architect-1", "architect", 1), ("coder-1", "coder", 2), ("tester-1", "tester", 2),
        ("reviewer-1", "reviewer", 1), ("builder-1", "builder", 2), ("deployer-1", "deployer", 1),
        ("documenter-1", "documenter", 1), ("assistant-1", "assistant", 2)]
    check_team(team, SkillRegistry.load(), load_policy(DEFAULT_POLICY))


def test_council_up_resizes_the_worker_entry_only() -> None:
    team = parse_team(GOOD).with_workers(count=3, slots=8)
    assert [(m.agent_id, m.slots) for m in team.members()] == [("worker-1", 8), ("worker-2", 8), ("worker-3", 8),
                                                               ("coder-1", 1)]
    with pytest.raises(TeamError, match='no \\[\\[agents\\]\\] entry named "worker"'):
        parse_team(GOOD.replace('name = "worker"', 'name = "plain"')).with_workers(count=3)


def test_a_team_without_its_workers_keeps_where_each_agent_came_from() -> None:
    coder = parse_team(GOOD, "team.toml").members(leave_out={"worker"})
    assert [(m.agent_id, m.where) for m in coder] == [("coder-1", 'team.toml line 14: agents[1] ("coder")')]


@pytest.mark.parametrize(("change", "message"), [
    (('slots = 4', 'slotz = 4'), r'team.toml line 8: agents\[0\] \("worker"\) has an unknown field "slotz" '
                                  r'\(did you mean "slots"\?\)'),
    (('count = 2', 'count = 0'), r'team.toml line 9: agents\[0\] \("worker"\) field "count": must be at least 1, '
                                  r'not 0$'),
    (('slots = 4', 'slots = 300'), r'team.toml line 8: agents\[0\] \("worker"\) field "slots": must be at most 256, '
                                    r'not 300$'),
    (('role = "coder"', 'role = "Coder!"'), r'team.toml line 13: agents\[1\] \("coder"\) field "role": must be '
                                             r"lower-case letters"),
    (('capabilities = ["files.write"]\n', ''), r'team.toml line 11: agents\[1\] \("coder"\) field "capabilities" '
                                                r"is missing; add it"),
    (('name = "coder"', 'name = "worker"'), r"team.toml: .*two \[\[agents\]\] entries are named \"worker\""),
    (('skills = []', 'skills = "mine"'), r'team.toml line 2: top-level field "skills": must be a list, '
                                         r'not a string \("mine"\)$'),
    (('skills = []', 'skills = [""]'), r'team.toml line 2: top-level field "skills"\[0\]: must not be empty$'),
    (('skills = []', 'skils = []'), r'team.toml line 2: the team has an unknown field "skils" '
                                    r'\(did you mean "skills"\?\)'),
    (('[[agents]]\nname = "coder"', '[[agents]\nname = "coder"'), r"team.toml: TOML syntax error"),
])
def test_a_bad_team_file_is_refused_naming_the_line_and_the_field(tmp_path: Path, change: tuple[str, str],
                                                                    message: str) -> None:
    path = tmp_path / "team.toml"
    path.write_text(GOOD.replace(*change, 1))
    with pytest.raises(TeamError, match=message):
        load_team(path)


def test_a_misspelt_required_field_is_one_problem_the_misspelling(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(GOOD.replace('name = "coder"', 'nme = "coder"'))  # and so "name" is missing from agents[1]
    with pytest.raises(TeamError) as caught:
        load_team(path)
    assert str(caught.value) == f'{path} line 12: agents[1] has an unknown field "nme" (did you mean "name"?)'


def test_the_first_problem_by_line_is_reported_and_the_rest_counted() -> None:
    # pydantic reports role before count (the model's order); the file has count first
    text = '[[agents]]\ncount = 0\nname = "x"\nrole = "Bad!"\ncapabilities = ["noop"]\n'
    with pytest.raises(TeamError) as caught:
        parse_team(text, "team.toml")
    assert str(caught.value) == ('team.toml line 2: agents[0] ("x") field "count": must be at least 1, not 0 '
                                 "(and 1 more problem)")
    with pytest.raises(TeamError) as caught:
        parse_team(text.replace("count = 0", "count = 1"), "team.toml")
    rule = "must be lower-case letters, digits, '_' or '-', starting with a letter (at most 40), not \"Bad!\""
    assert str(caught.value) == f'team.toml line 4: agents[0] ("x") field "role": {rule}'


def test_no_agents_at_all_is_refused() -> None:
    with pytest.raises(TeamError) as caught:
        parse_team('skills = []\n', "team.toml")
    assert str(caught.value) == "team.toml: [[agents]] is missing; add it"
    with pytest.raises(TeamError) as caught:
        parse_team('agents = []\n', "team.toml")
    assert str(caught.value) == "team.toml line 1: [[agents]]: must list at least one item"


def test_a_missing_team_file_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(TeamError, match=r"there is no team file .*nope\.toml; give the path of one"):
        load_team(tmp_path / "nope.toml")
    (tmp_path / "latin1.toml").write_bytes(GOOD.replace('"coder"', '"cod\xe9r"').encode("latin-1"))
    with pytest.raises(TeamError, match=r"^cannot read team file .*latin1\.toml: .*; check it is a readable UTF-8 "
                                        r"text file$"):
        load_team(tmp_path / "latin1.toml")


def test_an_unknown_capability_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(GOOD.replace('"files.write"', '"paint.walls"'))
    with pytest.raises(TeamError, match=r'team.toml line 14: agents\[1\] \("coder"\): no skill is registered for '
                                        r"capability 'paint.walls'; known: ci.build, .*sleep, .*\. Skills come from"):
        check_team(load_team(path), SkillRegistry.load(), None)


def test_a_misspelt_capability_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(GOOD.replace('"files.write"', '"files.wrte"'))
    with pytest.raises(TeamError) as caught:
        check_team(load_team(path), SkillRegistry.load(), None)
    assert str(caught.value).startswith(f'{path} line 14: agents[1] ("coder"): no skill is registered for capability '
                                        "'files.wrte' (did you mean \"files.write\"?); known: ")


def test_an_acting_agent_in_a_role_the_policy_never_names_is_refused() -> None:
    team = parse_team(GOOD.replace('role = "coder"', 'role = "qa"'), "team.toml")
    with pytest.raises(TeamError, match=r"agents\[1\] \(\"coder\"\): role 'qa' is named by no rule of the policy "
                                        r"'default', so the gate would deny everything its acting skills "
                                        r"\(files.write\) do; use a role the policy names "
                                        r"\(architect, assistant, builder"):
        check_team(team, SkillRegistry.load(), load_policy(DEFAULT_POLICY))
    # Plain skills need no warrant, so a plain worker's role need not be in the policy.
    check_team(parse_team(GOOD), SkillRegistry.load(), load_policy(DEFAULT_POLICY))


def test_agents_made_in_code_are_named_by_their_id() -> None:
    with pytest.raises(TeamError, match="the team: agent a1: no skill is registered for capability 'nope'"):
        check_team([AgentSpec(agent_id="a1", capabilities=("nope",))], SkillRegistry.load(), None)


def test_a_skills_module_that_fails_to_import_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_skills.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SkillError, match="the skills module broken_skills fails to import \\(ModuleNotFoundError: "
                                         "No module named 'not_a_module_anywhere'\\); check it is installed"):
        SkillRegistry.load(["broken_skills"])
    with pytest.raises(SkillError, match="'broken skills' is not a module path"):
        SkillRegistry.load(["broken skills"])
