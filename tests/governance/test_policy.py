"""The policy file: validation with lines and fields, decisions and their precedence, hash, budgets, summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from events.catalogue import Budget, PolicyAdopted
from governance import globs
from governance.errors import PolicyError
from governance.policy import EFFECTS, Policy, PolicyDecision, in_force, load_policy, parse_policy
from governance.policy_errors import EFFECT_FIELDS
from governance.quantities import parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"

HEAD = """\
[policy]
name = "test"

[approvers]
alice = "alice"
bob = "bob"
carol = "carol"
"""  # 7 lines; the first rule written after it starts on line 9


def rule(name: str, effect: str = "allow", actions: str = '["file.write"]', roles: str = '["coder"]',
         **more: str) -> str:
    """One [[rules]] table; ``more`` values are TOML text, written in the order given."""
    lines = ["", "[[rules]]", f'name = "{name}"', f"actions = {actions}", f"roles = {roles}", f'effect = "{effect}"']
    lines += [f"{key} = {value}" for key, value in more.items()]
    return "\n".join(lines) + "\n"


def refusal(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.toml")
    return str(caught.value)


def line_of(text: str, fragment: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` line containing ``fragment``."""
    found = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    return found[nth - 1]


# -- refusals name the line and the field ------------------------------------------------------


def test_unknown_top_level_field():
    text = HEAD + "\n[polcy]\nname = 'x'\n"
    assert refusal(text) == (f'policy.toml line {line_of(text, "[polcy]")}: the policy has an unknown field "polcy" '
                             '(did you mean "policy"?)')


def test_unknown_field_in_policy_table():
    text = HEAD.replace('name = "test"', 'name = "test"\nowner = "me"')
    assert refusal(text).startswith('policy.toml line 3: [policy] has an unknown field "owner"')


def test_unknown_field_in_a_rule_is_reported_instead_of_the_missing_one_it_misspells():
    text = HEAD + rule("x").replace("effect =", "efect =")
    assert refusal(text) == (f'policy.toml line {line_of(text, "efect")}: rules[0] ("x") has an unknown field "efect" '
                             '(did you mean "effect"?)')


def test_unknown_field_in_budgets():
    text = HEAD + '\n[budgets.request]\ntokens = 5\ntokenz = 6\n' + rule("x")
    assert refusal(text).startswith(f'policy.toml line {line_of(text, "tokenz")}: [budgets.request] has an unknown '
                                    'field "tokenz" (did you mean "tokens"?)')
    text = HEAD + '\n[budgets.weekly]\ntokens = 5\n'
    assert refusal(text).startswith(f'policy.toml line {line_of(text, "weekly")}: '
                                    '[budgets] has an unknown field "weekly"')


def test_budget_values_are_checked():
    text = HEAD + '\n[budgets.agent]\ntokens = "5"\n'
    assert refusal(text) == (f'policy.toml line {line_of(text, "tokens")}: [budgets.agent] field "tokens": '
                             'must be a whole number, not a string ("5")')
    text = HEAD + '\n[budgets.agent]\nmoney = -1.0\n'
    assert "field \"money\": must be at least 0" in refusal(text)
    text = HEAD + '\n[budgets.agent]\nwall_time = "2 weeks"\n'
    message = refusal(text)
    assert message.startswith(f'policy.toml line {line_of(text, "wall_time")}: [budgets.agent] field "wall_time": ')
    assert 'not a duration' in message
    text = HEAD + '\n[budgets.agent]\nmoney = inf\n'
    assert 'must be a finite number' in refusal(text)


def test_duplicate_rule_names_name_both_lines():
    text = HEAD + rule("x") + rule("y") + rule("x", effect="deny")
    first, second = line_of(text, 'name = "x"'), line_of(text, 'name = "x"', 2)
    assert refusal(text) == (f'policy.toml line {second}: rule name "x" is used twice (first at line {first}); '
                             "give each rule its own name")


@pytest.mark.parametrize(("glob", "says"), [("a**", "whole segment"), ("/etc/**", "absolute"), ("../x", "'..'"),
                                            ("a//b", "empty segment"), ("[ab", "without its ']'")])
def test_bad_resource_globs(glob, says):
    text = HEAD + rule("x", resources=f'["src/**", "{glob}"]')
    message = refusal(text)
    assert message.startswith(f'policy.toml line {line_of(text, "resources")}: rules[0] ("x") field "resources"[1]: ')
    assert says in message


def test_bad_name_patterns_in_actions_roles_and_environments():
    text = HEAD + rule("x", actions='["File.Write"]')
    assert refusal(text).startswith(f'policy.toml line {line_of(text, "actions")}: rules[0] ("x") field "actions"[0]: '
                                    "'File.Write' is not a name pattern")
    text = HEAD + rule("x", roles='["coder", "the boss"]')
    assert 'field "roles"[1]' in refusal(text)
    text = HEAD + rule("x", environments='["prod/eu"]')
    assert 'field "environments"[0]' in refusal(text)


def test_bad_effect():
    text = HEAD + rule("deploy-prod", effect="permit")
    assert refusal(text) == (f'policy.toml line {line_of(text, "effect")}: rules[0] ("deploy-prod") field "effect": '
                             'must be one of allow, deny, approve, vote, not "permit"')


def test_approve_without_approvers():
    text = HEAD + rule("x", effect="approve", approvals="1")
    assert refusal(text) == (f'policy.toml line {line_of(text, "[[rules]]")}: rules[0] ("x") field "approvers" '
                             'is missing: an "approve" rule needs it (who may approve, from [approvers])')


def test_approve_without_approvals():
    text = HEAD + rule("x", effect="approve", approvers='["alice"]')
    assert 'field "approvals" is missing' in refusal(text)


def test_more_approvals_than_approvers():
    text = HEAD + rule("x", effect="approve", approvals="3", approvers='["alice", "bob"]')
    assert refusal(text) == (f'policy.toml line {line_of(text, "approvals")}: rules[0] ("x") field "approvals": '
                             "asks for 3 approvals but names only 2 approvers; lower approvals or name more approvers")


def test_approver_not_defined():
    deploy = rule("deploy-prod", effect="approve", approvals="1", approvers='["alice", "dave"]')
    text = HEAD + rule("a") + rule("b") + deploy
    assert refusal(text) == ('policy.toml line 4: [approvers] "dave" is named by rules[2] ("deploy-prod") '
                             'but not defined; add dave = "<key name>" under [approvers]')


def test_approver_named_without_any_approvers_table():
    text = '[policy]\nname = "t"\n' + rule("x", effect="vote", voters='["alice"]', quorum="1", deadline='"1h"')
    assert refusal(text).startswith(f'policy.toml line {line_of(text, "voters")}: [approvers] "alice" is named by '
                                    'rules[0] ("x") but not defined')


def test_approver_named_twice_in_a_rule():
    text = HEAD + rule("x", effect="approve", approvals="2", approvers='["alice", "alice"]')
    assert 'field "approvers" names "alice" twice' in refusal(text)


def test_two_approvers_cannot_share_a_key():
    text = HEAD.replace('bob = "bob"', 'bob = "alice"')
    assert refusal(text) == ('policy.toml line 6: [approvers] "bob" uses key "alice", as "alice" does; '
                             "each approver needs a key of their own")


def test_bad_approver_and_key_names():
    assert '[approvers] "Dave": "Dave" is not an approver name' in refusal(HEAD + 'Dave = "dave"\n')
    assert '[approvers] "dave": "../dave" is not a key name' in refusal(HEAD + 'dave = "../dave"\n')


def test_vote_without_quorum():
    text = HEAD + rule("x", effect="vote", voters='["alice", "bob"]', deadline='"24h"')
    assert refusal(text) == (f'policy.toml line {line_of(text, "[[rules]]")}: rules[0] ("x") field "quorum" '
                             'is missing: a "vote" rule needs it (how many votes decide)')


def test_vote_quorum_above_voters_and_bad_deadline():
    text = HEAD + rule("x", effect="vote", voters='["alice"]', quorum="2", deadline='"24h"')
    assert 'field "quorum": asks for 2 votes but names only 1 voters' in refusal(text)
    text = HEAD + rule("x", effect="vote", voters='["alice"]', quorum="1", deadline="0")
    assert 'field "deadline": must be a positive' in refusal(text)


def test_fields_of_another_effect_are_refused():
    text = HEAD + rule("x", approvals="2")
    assert refusal(text) == (f'policy.toml line {line_of(text, "approvals")}: rules[0] ("x") field "approvals": '
                             'only an "approve" rule takes approvals; remove it or set effect = "approve"')
    text = HEAD + rule("x", effect="approve", approvals="1", approvers='["alice"]', quorum="1")
    assert 'field "quorum": only a "vote" rule takes quorum' in refusal(text)


def test_required_rule_fields_and_empty_lists():
    text = HEAD + "\n[[rules]]\nname = \"x\"\nactions = []\neffect = \"allow\"\n"
    message = refusal(text)
    assert message.startswith(f'policy.toml line {line_of(text, "[[rules]]")}: rules[0] ("x") field "roles" is missing')
    assert message.endswith("(and 1 more problem)")
    text = HEAD + rule("x", resources="[]")
    assert 'field "resources": must list at least one item' in refusal(text)


def test_missing_policy_table_and_name():
    assert refusal(rule("x")) == "policy.toml: [policy] is missing; add it"
    assert refusal('[policy]\ndescription = "d"\n') == 'policy.toml line 1: [policy] field "name" is missing; add it'


def test_a_policy_name_empty_or_too_long_is_refused_in_words():
    text = HEAD.replace('name = "test"', 'name = ""')
    assert refusal(text) == 'policy.toml line 2: [policy] field "name": must not be empty'
    text = HEAD.replace('name = "test"', f'name = "{"n" * 201}"')
    assert refusal(text) == 'policy.toml line 2: [policy] field "name": is too long (at most 200 characters)'


def test_a_policy_file_missing_or_unreadable_says_what_to_give(tmp_path: Path):
    with pytest.raises(PolicyError, match=r"^there is no policy file .*nope\.toml; give the path of one \(see "
                                          r"examples/policy\.toml\)$"):
        load_policy(tmp_path / "nope.toml")
    (tmp_path / "latin1.toml").write_bytes(b'[policy]\nname = "caf\xe9"\n')
    with pytest.raises(PolicyError, match=r"^cannot read policy file .*latin1\.toml: .*; check it is a readable UTF-8 "
                                          r"text file$"):
        load_policy(tmp_path / "latin1.toml")


def test_toml_syntax_errors_report_tomllib_line_and_column():
    message = refusal(HEAD + "\nname = \n")
    assert message.startswith("policy.toml: TOML syntax error: ")
    assert "line 9, column" in message


def test_several_problems_report_the_first_by_line_and_count_the_rest():
    text = HEAD + rule("a", bogus="1") + rule("b", effect="nope") + rule("a")
    message = refusal(text)
    assert message.startswith(f'policy.toml line {line_of(text, "bogus")}: rules[0] ("a") has an unknown field "bogus"')
    assert message.endswith("(and 2 more problems)")


def test_lines_are_found_inside_multi_line_values():
    text = HEAD + ('\n[[rules]]\nname = "x"\ndescription = """\nrole = "not a key"\n"""\nactions = [\n'
                   '  "file.write",\n  "FILE",  # a comment ]\n]\nroles = ["coder"]\neffect = "allow"\n')
    assert refusal(text).startswith(f'policy.toml line {line_of(text, "actions")}: rules[0] ("x") field "actions"[1]')


def test_typed_values_are_not_coerced():
    text = HEAD + rule("x", effect="approve", approvals='"2"', approvers='["alice", "bob"]')
    assert 'field "approvals": must be a whole number, not a string ("2")' in refusal(text)
    text = HEAD + rule("x", actions='"file.write"')
    assert 'field "actions": must be a list, not a string' in refusal(text)


# -- decisions ---------------------------------------------------------------------------------


def policy_of(*rules: str):
    return parse_policy(HEAD + "".join(rules), "test.toml")


def test_deny_wins_over_allow_whatever_the_order():
    allow = rule("write-anything", roles='["*"]')
    deny = rule("no-git", effect="deny", roles='["*"]', resources='[".git/**"]')
    for policy in (policy_of(allow, deny), policy_of(deny, allow)):
        decision = policy.decide("file.write", "coder", ".git/config")
        assert (decision.effect, decision.rule) == ("deny", "no-git")
        assert decision.reason == 'rule "no-git" denies file.write on ".git/config" for role "coder"'
        assert policy.decide("file.write", "coder", "src/a.py").effect == "allow"


def test_approve_wins_over_allow_and_the_largest_k_wins():
    policy = policy_of(
        rule("ship", actions='["deploy"]', roles='["deployer"]'),
        rule("one-signs", effect="approve", actions='["deploy"]', roles='["*"]', approvals="1", approvers='["alice"]'),
        rule("two-sign", effect="approve", actions='["deploy"]', roles='["deployer"]', environments='["production"]',
             approvals="2", approvers='["alice", "bob", "carol"]'),
        rule("two-again", effect="approve", actions='["deploy"]', roles='["deployer"]', approvals="2",
             approvers='["bob", "carol"]'))
    decision = policy.decide("deploy", "deployer", environment="production")
    assert decision == PolicyDecision("approve", "two-sign", decision.reason, approvals=2,
                                      approvers=("alice", "bob", "carol"))
    assert "2 of alice, bob, carol approve" in decision.reason
    assert policy.decide("deploy", "deployer", environment="staging").rule == "two-again"  # first of the largest k
    assert policy.decide("deploy", "monitor").rule == "one-signs"
    assert not decision.allowed


def test_vote_wins_over_approve_and_allow():
    policy = policy_of(
        rule("ok", actions='["deploy"]', roles='["*"]'),
        rule("sign", effect="approve", actions='["deploy"]', roles='["*"]', approvals="3",
             approvers='["alice", "bob", "carol"]'),
        rule("ask", effect="vote", actions='["deploy"]', roles='["monitor"]', voters='["alice", "bob"]', quorum="2",
             deadline='"90m"'))
    decision = policy.decide("deploy", "monitor")
    assert (decision.effect, decision.rule, decision.voters, decision.quorum, decision.deadline_s) == \
        ("vote", "ask", ("alice", "bob"), 2, 5400.0)
    assert policy.decide("deploy", "deployer").effect == "approve"


def test_deny_by_default():
    policy = policy_of(rule("coders-write-source", resources='["src/**"]'))
    decision = policy.decide("file.write", "coder", "tests/a.py")
    reason = 'no rule allows file.write on "tests/a.py" for role "coder" (deny by default)'
    assert decision == PolicyDecision("deny", None, reason)
    assert policy.decide("file.write", "tester", "src/a.py").effect == "deny"
    assert policy.decide("file.read", "coder", "src/a.py").effect == "deny"
    assert policy.decide("file.write", "coder", "src/a.py").allowed


def test_action_and_role_patterns():
    policy = policy_of(rule("files", actions='["file.*"]', roles='["coder", "tester"]'), rule("all", actions='["*"]',
                                                                                             roles='["orchestrator"]'))
    assert policy.decide("file.read", "tester").rule == "files"
    assert policy.decide("filex.read", "tester").effect == "deny"
    assert policy.decide("git.push", "orchestrator").rule == "all"
    assert policy.decide("git.push", "Orchestrator").effect == "deny"


def test_resources_are_normalised_and_required_when_a_rule_names_them():
    policy = policy_of(rule("src", resources='["src/**"]'))
    decision = policy.decide("file.write", "coder", "./src//lib/../a.py")
    assert decision.effect == "allow" and '"src/a.py"' in decision.reason
    assert policy.decide("file.write", "coder").effect == "deny"  # the rule names resources: one must be given
    escape = policy.decide("file.write", "coder", "src/../../etc/passwd")
    assert (escape.effect, escape.rule) == ("deny", None)
    assert "escapes the workspace" in escape.reason
    assert "absolute" in policy.decide("file.write", "coder", "/src/a.py").reason


def test_a_rule_without_resources_or_environments_applies_to_any():
    policy = policy_of(rule("any", actions='["command.run"]'))
    assert policy.decide("command.run", "coder").allowed
    assert policy.decide("command.run", "coder", "src", "production").allowed


def test_environments_are_required_when_a_rule_names_them():
    policy = policy_of(rule("staging", actions='["deploy"]', roles='["deployer"]', environments='["staging", "qa-*"]'))
    assert policy.decide("deploy", "deployer", environment="staging").allowed
    assert policy.decide("deploy", "deployer", environment="qa-eu").allowed
    assert policy.decide("deploy", "deployer", environment="production").effect == "deny"
    assert policy.decide("deploy", "deployer").effect == "deny"
    assert 'in "production"' in policy.decide("deploy", "deployer", environment="production").reason


def test_decide_never_raises_and_fails_closed(monkeypatch):
    policy = policy_of(rule("anything", actions='["*"]', roles='["*"]', resources='["**"]'))
    for odd in [(None, "coder"), ("file.write", 5), ("file.write", "coder", 3), ("file.write", "coder", "a", ["x"])]:
        assert policy.decide(*odd).effect == "deny"

    def broken(path, pattern):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(globs, "match", broken)
    decision = policy.decide("file.write", "coder", "src/a.py")
    assert (decision.effect, decision.rule) == ("deny", None)
    assert "RuntimeError: disk on fire" in decision.reason and "failing closed" in decision.reason


# -- hash, text, model -------------------------------------------------------------------------


def test_hash_ignores_comments_and_layout_but_not_content():
    text = HEAD + rule("x", resources='["src/**"]', description='"writes"')
    relaid = "# our policy\n\n" + text.replace("\n", "   # note\n").replace(" = ", "=")
    relaid = relaid.replace('["src/**"]', '[\n "src/**",\n]')
    relaid = relaid.replace("[policy]   # note", "[policy]")
    assert parse_policy(relaid).hash == parse_policy(text).hash
    assert re.fullmatch("[0-9a-f]{64}", parse_policy(text).hash)
    assert parse_policy(text.replace('"src/**"', '"src/*"')).hash != parse_policy(text).hash
    assert parse_policy(text.replace('effect = "allow"', 'effect = "deny"')).hash != parse_policy(text).hash
    assert parse_policy(text + rule("y")).hash != parse_policy(text).hash


def test_hash_is_of_meaning_so_equal_durations_hash_alike():
    one = HEAD + '\n[budgets.agent]\nwall_time = "1h"\n'
    assert parse_policy(one).hash == parse_policy(one.replace('"1h"', "3600")).hash == \
        parse_policy(one.replace('"1h"', '"60m"')).hash


def test_text_is_kept_but_is_not_part_of_the_hash():
    text = HEAD + rule("x")
    policy = parse_policy("# hello\n" + text)
    assert policy.text == "# hello\n" + text
    assert policy.hash == parse_policy(text).hash
    assert "text" not in policy.model_dump()


def test_policy_is_frozen_and_checked_even_when_built_directly():
    policy = parse_policy(HEAD + rule("x"))
    with pytest.raises(ValidationError):
        policy.rules[0].effect = "deny"
    data = policy.model_dump()
    data["rules"][0].update(effect="approve")
    with pytest.raises(ValidationError, match='field "approvals" is missing'):
        type(policy).model_validate(data)


@pytest.mark.parametrize(("given", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1.5h", 5400),
                                                (30, 30), (2.5, 2.5)])
def test_durations(given, seconds):
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["", "2", "1w", "h", "-1h", 0, -5, True, float("nan"), [1]])
def test_bad_durations(given):
    with pytest.raises(ValueError):
        parse_duration(given)


# -- budgets, approvers, summary ---------------------------------------------------------------


def test_budget_for():
    policy = parse_policy(HEAD + '\n[budgets.request]\ntokens = 1000\nmoney = 5\nwall_time = "2h"\n')
    assert policy.budget_for("request") == Budget(tokens=1000, money=5.0, wall_time_s=7200.0, actions=None)
    assert isinstance(policy.budget_for("request").money, float)
    assert policy.budget_for("agent") == Budget()
    with pytest.raises(PolicyError, match='use "request", "agent" or "extension"'):
        policy.budget_for("team")


def test_approver_and_key_names():
    policy = parse_policy(HEAD.replace('carol = "carol"', 'carol = "carol-yubikey"'))
    assert policy.approver_names() == ("alice", "bob", "carol")
    assert policy.key_names() == {"alice": "alice", "bob": "bob", "carol": "carol-yubikey"}
    policy.key_names()["alice"] = "mallory"
    assert policy.key_names()["alice"] == "alice"


def test_summary_groups_rules_by_effect():
    policy = policy_of(
        rule("sign", effect="approve", actions='["deploy"]', roles='["deployer"]', environments='["production"]',
             approvals="2", approvers='["alice", "bob"]'),
        rule("no-secrets", effect="deny", actions='["file.*"]', roles='["*"]', resources='["secrets/**"]'),
        rule("write", resources='["src/**", "tests/**"]'),
        rule("ask", effect="vote", actions='["deploy"]', roles='["monitor"]', voters='["alice", "bob"]', quorum="1",
             deadline='"1h"'))
    assert policy.summary() == [
        ("allow", "write", "coder may file.write on src/**, tests/**"),
        ("deny", "no-secrets", "no role may file.* on secrets/**"),
        ("approve", "sign", "deployer may deploy in production once 2 of alice, bob approve"),
        ("vote", "ask", "monitor may deploy if alice, bob vote for it (quorum 1, within 1h)"),
    ]


# -- loading, and the example ------------------------------------------------------------------


def test_load_policy_names_the_file(tmp_path):
    with pytest.raises(PolicyError, match="there is no policy file"):
        load_policy(tmp_path / "missing.toml")
    path = tmp_path / "policy.toml"
    path.write_text(HEAD + rule("x", effect="maybe"))
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(path))} line 13: "):
        load_policy(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(path)


def test_example_policy_loads_and_its_summary_names_every_rule():
    policy = load_policy(EXAMPLE)
    assert policy.name == "default"
    names = [r.name for r in policy.rules]
    assert len(names) >= 10
    assert sorted(row[1] for row in policy.summary()) == sorted(names)
    assert {row[0] for row in policy.summary()} == {"allow", "deny", "approve", "vote"}
    assert policy.approver_names() == ("alice", "bob", "carol")
    assert policy.budget_for("request").tokens and policy.budget_for("agent").wall_time_s


def test_example_policy_decisions():
    policy = load_policy(EXAMPLE)
    change = policy.decide("policy.change", "orchestrator")
    assert (change.effect, change.approvals, change.approvers) == ("approve", 2, ("alice", "bob", "carol"))
    prod = policy.decide("deploy", "deployer", environment="prod")
    assert prod.effect == "approve" and prod.approvals >= 2
    assert policy.decide("deploy", "deployer", environment="staging").allowed
    assert policy.tool_table("pipeline") == {"review_block_at": "high"}
    assert policy.decide("command.run", "tester", environment="staging").allowed
    assert policy.decide("command.run", "tester", environment="prod").effect == "deny"
    assert policy.decide("file.write", "reviewer", "src/app.py").allowed and policy.decide("build", "builder").allowed
    assert policy.decide("deploy", "coder", environment="staging").effect == "deny"
    assert policy.decide("file.write", "coder", "src/app.py").allowed
    assert policy.decide("file.write", "coder", ".git/config").effect == "deny"
    assert policy.decide("file.write", "coder", "secrets/prod.env").effect == "deny"
    assert policy.decide("file.read", "reviewer", "config/.env").effect == "deny"
    assert policy.decide("llm.call", "coder").allowed
    assert policy.decide("llm.call", "reviewer").allowed
    assert policy.decide("llm.call", "builder").effect == "deny"


def test_every_effect_says_which_fields_it_takes():
    assert set(EFFECT_FIELDS) == set(EFFECTS)


# -- [tool.*] tables, and the legacy [review] table ----------------------------------------------


TOOLS = HEAD + """
[tool.pipeline]
review_block_at = "severe"   # not a severity: governance does not read it, the pipeline refuses it

[tool.dashboards]
panels = ["queue", {name = "costs", rows = 3}]
since = 2025-01-01
ratio = nan
"""


def test_tool_tables_are_opaque_copies_and_part_of_the_hash():
    policy = parse_policy(TOOLS)
    assert policy.tool_table("pipeline") == {"review_block_at": "severe"}
    assert policy.tool_table("dashboards")["panels"] == ["queue", {"name": "costs", "rows": 3}]
    assert policy.tool_table("nobody") == {}
    policy.tool_table("pipeline")["review_block_at"] = "info"
    policy.tool_table("dashboards")["panels"][1]["rows"] = 9
    assert policy.tool_table("pipeline") == {"review_block_at": "severe"}
    assert policy.tool_table("dashboards")["panels"][1]["rows"] == 3
    assert policy.hash != parse_policy(TOOLS.replace('"severe"', '"high"')).hash
    assert policy.hash != parse_policy(TOOLS.replace("rows = 3", "rows = 4")).hash
    assert policy.hash != parse_policy(TOOLS.replace("ratio = nan", "ratio = inf")).hash
    assert policy.hash == parse_policy(TOOLS.replace("ratio = nan", "ratio=nan  # not a number")).hash
    assert policy.hash != parse_policy(HEAD).hash


def test_a_tool_entry_must_be_a_table_of_toml_values():
    text = HEAD + "\n[tool]\npipeline = 3\n"
    assert refusal(text) == f'policy.toml line {line_of(text, "pipeline")}: [tool.pipeline]: must be a table, not a ' \
                            "whole number (3)"
    text = 'tool = "pipeline"\n' + HEAD
    assert refusal(text).endswith('[tool]: must be a table, not a string ("pipeline")')
    data = parse_policy(HEAD).model_dump()
    data["tool"] = {"pipeline": {"review_block_at": {"high", "low"}}}
    with pytest.raises(ValidationError, match="must be a TOML value"):
        Policy.model_validate(data)


LEGACY = HEAD + '\n[review]\nblock_at = "medium"\n' + rule("x")


def test_a_legacy_review_table_is_read_as_the_pipelines_tool_table():
    policy = parse_policy(LEGACY)
    assert policy.tool_table("pipeline") == {"review_block_at": "medium"}
    modern = LEGACY.replace('[review]\nblock_at = "medium"', '[tool.pipeline]\nreview_block_at = "medium"')
    assert policy.hash == parse_policy(modern).hash
    assert policy.text == LEGACY
    beside = parse_policy(LEGACY + '\n[tool.pipeline]\nretries = 2\n')
    assert beside.tool_table("pipeline") == {"retries": 2, "review_block_at": "medium"}


def test_a_legacy_review_table_with_its_replacement_or_other_fields_is_refused():
    both = LEGACY + '\n[tool.pipeline]\nreview_block_at = "high"\n'
    assert refusal(both) == (f'policy.toml line {line_of(both, "block_at =")}: [review] block_at and [tool.pipeline] '
                             "review_block_at both set the pipeline's review threshold; keep only [tool.pipeline] "
                             "review_block_at")
    other = LEGACY.replace('block_at = "medium"', 'block_at = "medium"\nstrict = true')
    assert refusal(other) == (f'policy.toml line {line_of(other, "strict")}: [review] has an unknown field "strict"; '
                              'it takes only "block_at" (write [tool.pipeline] review_block_at instead)')
    assert refusal('review = "high"\n' + HEAD).endswith('[review]: must be a table, not a string ("high")')


def test_the_policy_in_force_is_known_by_the_hash_its_adoption_recorded():
    recorded = "0123456789abcdef" * 4
    assert parse_policy(LEGACY).hash != recorded
    adopted = PolicyAdopted(policy_hash=recorded, name="test", text=LEGACY, adopted_by="test")
    policy = in_force(adopted)
    assert policy.hash == recorded and policy.text == LEGACY
    assert policy.tool_table("pipeline") == {"review_block_at": "medium"}
    with pytest.raises(PolicyError, match=r"^the policy in force \(0123456789ab\) line "):
        in_force(PolicyAdopted(policy_hash=recorded, name="test", text=HEAD + rule("x", effect="maybe"),
                               adopted_by="test"))
