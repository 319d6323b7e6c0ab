"""A warrant that runs out of budget waits for an extension the policy's ``budget.extend`` rule grants — approvals or
a vote — instead of failing; a refused extension denies the action; without the rule, running out is a denial."""

from __future__ import annotations

from pathlib import Path

import pytest
from governance_support import POLICY, Council, make_council

from actors.tools.gated import ActionRefused, AwaitingAuthority
from events.catalogue import Budget, BudgetExtended
from governance import approvals, budget, votes

BY_APPROVAL = POLICY + """
[[rules]]
name = "extend-coders"
actions = ["budget.extend"]
roles = ["coder"]
effect = "approve"
approvals = 1
approvers = ["alice", "bob"]
"""

BY_VOTE = POLICY + """
[[rules]]
name = "extend-coders-by-vote"
actions = ["budget.extend"]
roles = ["coder"]
effect = "vote"
voters = ["alice", "bob", "carol"]
quorum = 2
deadline = "1h"
"""


def council_with(tmp_path: Path, policy: str) -> Council:
    council = make_council(tmp_path)
    council.adopt(policy)
    return council


def decide(council: Council) -> None:
    for append in council.fold().decisions(council.clock()):
        council.store.append(append.stream, list(append.events), append.expected)
    council.fold()


def sign(council: Council, name: str, aid: str, *, reject: str | None = None) -> None:
    ledger = council.fold().approvals[aid]
    signer = council.keyring.signer(name)
    event = (approvals.sign_approval(signer, ledger.requested) if reject is None
             else approvals.sign_rejection(signer, ledger.requested, reject))
    approvals.admit(ledger, event, now=council.clock(), policy_hash=council.authority.policy.adopted.policy_hash)
    council.store.append(f"approval-{aid}", [event])


def spend_two(council: Council, task: str = "t-spend"):  # type: ignore[no-untyped-def]
    """A coder's warrant for two actions, both spent; the third write waits. Returns (grant, tools, the wait)."""
    grant = council.warrant("a1", "coder", task=task, request="r-1", budget=Budget(actions=2))
    tools = council.tools("a1", grant.warrant_id, task)
    tools.write_file("src/1.py", "1")
    tools.write_file("src/2.py", "2")
    with pytest.raises(AwaitingAuthority) as waiting:
        tools.write_file("src/3.py", "3")
    return grant, tools, waiting.value


def extensions(council: Council, warrant_id: str) -> list[BudgetExtended]:
    return [e for e in council.events(f"warrant-{warrant_id}") if isinstance(e, BudgetExtended)]


def test_without_a_budget_extend_rule_running_out_is_a_denial(tmp_path: Path) -> None:
    council = make_council(tmp_path)
    grant = council.warrant("a1", "coder", budget=Budget(actions=1))
    tools = council.tools("a1", grant.warrant_id, "t-none")
    tools.write_file("src/1.py", "1")
    with pytest.raises(ActionRefused, match="budget exhausted: actions 1 used"):
        tools.write_file("src/2.py", "2")
    assert not council.fold().approvals  # nothing was asked


def test_a_warrant_out_of_budget_waits_for_an_approved_extension_then_acts(tmp_path: Path) -> None:
    council = council_with(tmp_path, BY_APPROVAL)
    grant, tools, wait = spend_two(council)
    assert "budget exhausted: actions 2 used + 1 asked > 2" in str(wait) and "extend-coders" in str(wait)
    asked = council.fold().approvals[wait.authority_id].requested
    # What the approvers sign: this warrant, one more allotment of what ran out, under the policy in force.
    assert (asked.spec.action, asked.spec.target, asked.spec.warrant_id) == ("budget.extend", "actions=2",
                                                                            grant.warrant_id)
    assert asked.needed == 1 and asked.task_id == "t-spend"
    assert not (council.home / "workspace" / "src" / "3.py").exists()
    with pytest.raises(AwaitingAuthority):  # asked once: the retry waits on the same request
        tools.write_file("src/3.py", "3")
    assert len(council.fold().approvals) == 1

    sign(council, "alice", wait.authority_id)
    decide(council)  # granted: the extension counts at once, before the council records it
    assert council.authority.approvals[wait.authority_id].granted is not None
    assert extensions(council, grant.warrant_id) == []
    tools.write_file("src/3.py", "3")
    decide(council)  # and is recorded in the warrant's stream, once
    decide(council)
    [recorded] = extensions(council, grant.warrant_id)
    assert recorded.extension == Budget(actions=2) and recorded.authority == wait.authority_id
    assert recorded.request_id == "r-1" and recorded.task_id == "t-spend"
    tools.write_file("src/4.py", "4")

    with pytest.raises(AwaitingAuthority) as again:  # four of four spent: the next extension is another request
        tools.write_file("src/5.py", "5")
    assert again.value.authority_id != wait.authority_id
    assert council.fold().approvals[again.value.authority_id].requested.spec.target == "actions=2"


def test_a_refused_extension_denies_the_action(tmp_path: Path) -> None:
    council = council_with(tmp_path, BY_APPROVAL)
    grant, tools, wait = spend_two(council)
    for name in ("alice", "bob"):
        sign(council, name, wait.authority_id, reject="two files are enough")
    decide(council)
    with pytest.raises(ActionRefused) as refused:
        tools.write_file("src/3.py", "3")
    assert refused.value.denial == "budget" and "was refused" in str(refused.value)
    assert "two files are enough" in str(refused.value)
    assert extensions(council, grant.warrant_id) == []


def test_an_extension_put_to_a_vote(tmp_path: Path) -> None:
    council = council_with(tmp_path, BY_VOTE)
    grant, tools, wait = spend_two(council)
    proposal = council.fold().votes[wait.authority_id].proposed
    assert proposal.kind == "budget.extend" and proposal.payload["extension"] == "actions=2"
    assert grant.warrant_id in proposal.subject
    for name in ("alice", "carol"):
        ballot = votes.cast(council.keyring.signer(name), proposal, "approve")
        votes.admit(council.fold().votes[wait.authority_id], ballot, now=council.clock())
        council.store.append(f"vote-{wait.authority_id}", [ballot])
    decide(council)
    decide(council)
    assert [e.extension for e in extensions(council, grant.warrant_id)] == [Budget(actions=2)]
    tools.write_file("src/3.py", "3")


def test_the_policy_can_fix_what_one_extension_grants_never_less_than_what_is_lacking(tmp_path: Path) -> None:
    council = council_with(tmp_path, BY_APPROVAL.replace("[budgets.agent]\nactions = 50",
                                                         "[budgets.agent]\nactions = 50\n\n"
                                                         "[budgets.extension]\nactions = 5\nmoney = 0.01"))
    _, _, wait = spend_two(council)
    assert council.fold().approvals[wait.authority_id].requested.spec.target == "actions=5"  # money did not run out
    assert budget.extension(Budget(money=0.5), Budget(money=0.1), Budget(money=0.01)) == Budget(money=0.5)
    assert budget.extension(Budget(money=0.05), Budget(money=1.0), Budget()) == Budget(money=1.0)


def test_later_warrants_of_the_request_keep_the_extension(tmp_path: Path) -> None:
    council = council_with(tmp_path, BY_APPROVAL.replace("[budgets.agent]\nactions = 50",
                                                         "[budgets.agent]\nactions = 2"))
    grant, tools, wait = spend_two(council)
    assert grant.budget.actions == 2
    sign(council, "bob", wait.authority_id)
    decide(council)
    decide(council)
    tools.write_file("src/3.py", "3")
    later = council.warrant("a1", "coder", task="t-later", request="r-1")
    assert later.budget.actions == 1  # 2 allowed + 2 extended - 3 spent
