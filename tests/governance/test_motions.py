"""Motions decided into intents over an in-memory log: what each appends, every refusal, and racing writers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from governance_support import POLICY, Council, make_council

from events import ANY, NO_STREAM, AppendResult, Intent
from events.catalogue import (
    ApprovalRejected,
    ApprovalRequested,
    ApprovalSigned,
    PolicyAdopted,
    PolicyProposed,
    VoteCast,
    VoteProposed,
    WarrantRevoked,
)
from events.errors import ConcurrencyError
from governance import motions
from governance.authority import Authority
from governance.errors import ApprovalError, GovernanceError, VoteError, WarrantError
from governance.policy import Policy, parse_policy

CHANGE_BY_APPROVAL = """name = "policy-change"
actions = ["policy.change"]
roles = ["*"]
effect = "approve"
approvals = 2
approvers = ["alice", "bob", "carol"]"""


VOTE = 'effect = "vote"\nvoters = ["alice", "bob", "carol"]\nquorum = 2\ndeadline = "1h"'
ALLOW = 'effect = "allow"'


def changed_by(effect: str, name: str) -> str:
    """The test policy, named ``name``, with its ``policy-change`` rule's effect (and its fields) replaced."""
    assert CHANGE_BY_APPROVAL in POLICY
    rule = CHANGE_BY_APPROVAL.split('effect = "approve"')[0] + effect
    return POLICY.replace(CHANGE_BY_APPROVAL, rule).replace('name = "test"', f'name = "{name}"')


@pytest.fixture
def council(tmp_path: Path) -> Council:
    return make_council(tmp_path)


def fingerprint(council: Council, name: str) -> str:
    return council.keyring.public(name).fingerprint


def land(council: Council, intents: Sequence[Intent]) -> Authority:
    """Append ``intents`` as the log's writer would; every one must be accepted. The authority after."""
    results = council.store.append_many(intents)
    assert all(isinstance(r, AppendResult) for r in results), results
    return council.fold()


def candidate(name: str = "test 2") -> Policy:
    return parse_policy(POLICY.replace('name = "test"', f'name = "{name}"'))


def propose(council: Council, proposer: str = "alice") -> str:
    """Put a new policy up for approval (the test policy's rule); return the approval's id."""
    intents = motions.propose_policy(council.fold(), candidate(), fingerprint(council, proposer), council.clock(), {})
    requested = intents[-1].events[0]
    assert isinstance(requested, ApprovalRequested)
    land(council, intents)
    return requested.approval_id


# -- policies ---------------------------------------------------------------------------------


def test_a_policy_change_under_an_approve_rule_records_the_text_and_asks_for_the_approvals(council: Council) -> None:
    new = candidate()
    intents = motions.propose_policy(council.fold(), new, fingerprint(council, "alice"), council.clock(), {},
                                     motion_id="pc-1")
    assert [(i.stream, i.expected) for i in intents] == [(f"policy-{new.hash}", NO_STREAM),
                                                         ("approval-pc-1", NO_STREAM)]
    proposed, requested = intents[0].events[0], intents[1].events[0]
    assert isinstance(proposed, PolicyProposed) and proposed.text == new.text
    assert isinstance(requested, ApprovalRequested) and requested.needed == 2 and requested.rule == "policy-change"
    assert set(requested.approvers) == {"alice", "bob", "carol"}
    spec = requested.spec
    assert (spec.action, spec.target, spec.requester) == ("policy.change", new.hash, fingerprint(council, "alice"))
    assert spec.policy_hash == council.fold().policy.adopted.policy_hash  # type: ignore[union-attr]
    authority = land(council, intents)
    assert authority.proposals[new.hash] == new.text and authority.approvals["pc-1"].open
    again = motions.propose_policy(authority, new, fingerprint(council, "bob"), council.clock(), {})
    assert len(again) == 1 and again[0].stream.startswith("approval-pc-")  # the text is in the log already


def test_a_policy_change_under_a_vote_rule_opens_a_vote_and_under_an_allow_rule_is_adopted(council: Council) -> None:
    council.adopt(changed_by(VOTE, "changed by vote"))
    new = candidate()
    voted = motions.propose_policy(council.fold(), new, fingerprint(council, "alice"), council.clock(), {})
    proposal = voted[-1].events[0]
    assert isinstance(proposal, VoteProposed) and proposal.kind == "policy.change"
    assert proposal.options == ["adopt", "reject"] and proposal.payload == {"policy": new.hash}
    assert proposal.deadline == pytest.approx(council.clock() + 3600) and voted[-1].expected == NO_STREAM

    council.adopt(changed_by(ALLOW, "changed at will"))
    pinned = {"alice": fingerprint(council, "alice")}
    allowed = motions.propose_policy(council.fold(), new, fingerprint(council, "bob"), council.clock(), pinned)
    adoption = allowed[-1]
    assert adoption.stream == "policy" and adoption.expected == council.fold().policy.version
    adopted = adoption.events[0]
    assert isinstance(adopted, PolicyAdopted) and adopted.authority == "rule policy-change"
    assert adopted.approvers == pinned
    assert land(council, allowed).policy.adopted.policy_hash == new.hash  # type: ignore[union-attr]


def test_a_policy_change_is_refused_without_a_policy_the_same_policy_or_a_rule_that_allows_it(council: Council) -> None:
    new, me, now = candidate(), fingerprint(council, "alice"), council.clock()
    with pytest.raises(GovernanceError, match="no policy is in force yet"):
        motions.propose_policy(Authority(), new, me, now, {})
    in_force = parse_policy(POLICY)
    with pytest.raises(GovernanceError, match=r"^policy\.toml is the policy already in force \("):
        motions.propose_policy(council.fold(), in_force, me, now, {}, source="policy.toml")
    council.adopt(POLICY.replace(CHANGE_BY_APPROVAL, CHANGE_BY_APPROVAL.replace('"policy.change"', '"policy.read"')))
    head = council.store.head()
    with pytest.raises(GovernanceError, match="does not allow changing it"):
        motions.propose_policy(council.fold(), new, me, now, {})
    assert council.store.head() == head


def adopt_pinning(council: Council, names: tuple[str, ...]) -> None:
    """Put the test policy in force again with only ``names``' keys pinned (the others' were not in the keyring)."""
    pinned = {name: fingerprint(council, name) for name in names}
    land(council, [council.fold().adopt(parse_policy(POLICY), pinned, by="test", authority="test")])


def test_a_policy_change_too_few_approvers_can_sign_is_refused_before_anything_is_asked(council: Council) -> None:
    adopt_pinning(council, ("alice",))  # the policy-change rule needs 2 of alice, bob, carol
    head, now = council.store.head(), council.clock()
    with pytest.raises(ApprovalError, match=r"^rule 'policy-change' needs 2 approvals but only 1 of its approvers "
                                            r"\(alice, bob, carol\) have pinned keys, so it could never be granted; "
                                            "adopt a policy whose approvers' keys are in the council's keyring"):
        motions.propose_policy(council.fold(), candidate(), fingerprint(council, "bob"), now, {})
    assert council.store.head() == head  # nothing was written
    adopt_pinning(council, ("alice", "bob"))
    head = council.store.head()
    with pytest.raises(ApprovalError, match=r"only 1 of its approvers .* have pinned keys other than the requester"):
        motions.propose_policy(council.fold(), candidate(), fingerprint(council, "alice"), now, {})  # can't sign it
    assert council.store.head() == head
    asked = motions.propose_policy(council.fold(), candidate(), fingerprint(council, "carol"), now, {})[-1].events[0]
    assert isinstance(asked, ApprovalRequested) and asked.approvers == {n: fingerprint(council, n) for n in
                                                                        ("alice", "bob")}


# -- approvals --------------------------------------------------------------------------------


def test_a_signature_is_appended_at_the_version_of_the_request_it_was_decided_from(council: Council) -> None:
    aid = propose(council)
    signed = motions.sign(council.fold(), aid, council.keyring.signer("bob"), council.clock())
    assert signed.stream == f"approval-{aid}" and signed.expected == 1
    assert isinstance(signed.events[0], ApprovalSigned)
    land(council, [signed])
    rejected = motions.sign(council.fold(), aid, council.keyring.signer("carol"), council.clock(), "not today")
    assert rejected.expected == 2
    event = rejected.events[0]
    assert isinstance(event, ApprovalRejected) and event.reason == "not today"
    assert set(land(council, [rejected]).approvals[aid].rejections) == {fingerprint(council, "carol")}


@pytest.mark.parametrize(("signer", "later", "why"), [
    ("bob", 0.0, "a key counts once"),
    ("mallory", 0.0, "is not one of the approvers"),
    ("alice", 0.0, "the requester's own key never counts"),
    ("carol", 8 * 24 * 3600.0, "expired at"),
])
def test_a_signature_that_cannot_count_is_refused_with_the_reason(council: Council, signer: str, later: float,
                                                                   why: str) -> None:
    aid = propose(council, proposer="alice")
    land(council, [motions.sign(council.fold(), aid, council.keyring.signer("bob"), council.clock())])
    with pytest.raises(ApprovalError, match=why):
        motions.sign(council.fold(), aid, council.keyring.signer(signer), council.clock() + later)


def test_signing_a_request_that_is_not_in_the_log_is_refused(council: Council) -> None:
    with pytest.raises(ApprovalError, match="there is no approval request ap-nope; list them with `council approvals`"):
        motions.sign(council.fold(), "ap-nope", council.keyring.signer("bob"), council.clock())


# -- votes ------------------------------------------------------------------------------------


def budget_vote(council: Council) -> str:
    options = motions.budget_options(["r-1:tokens=100", "r-2:actions=3,money=2.5"])
    intent = motions.propose_budget_vote(council.fold(), options, fingerprint(council, "alice"), council.clock(),
                                         motion_id="bv-1")
    assert intent.stream == "vote-bv-1" and intent.expected == NO_STREAM
    proposal = intent.events[0]
    assert isinstance(proposal, VoteProposed) and proposal.kind == "budget.allocate"
    assert proposal.options == ["r-1", "r-2"] and proposal.payload == {"r-1": "r-1:tokens=100",
                                                                        "r-2": "r-2:actions=3,money=2.5"}
    assert proposal.subject == "budget for r-1, r-2" and proposal.quorum == 2
    land(council, [intent])
    return "bv-1"


def test_a_ballot_is_signed_and_appended_at_the_vote_stream_version(council: Council) -> None:
    vid = budget_vote(council)
    ballot = motions.cast_ballot(council.fold(), vid, "r-2", council.keyring.signer("bob"), council.clock())
    assert ballot.stream == f"vote-{vid}" and ballot.expected == 1
    assert isinstance(ballot.events[0], VoteCast) and ballot.events[0].option == "r-2"
    assert land(council, [ballot]).votes[vid].ballots == {fingerprint(council, "bob"): "r-2"}


@pytest.mark.parametrize(("voter", "option", "later", "why"), [
    ("bob", "r-1", 0.0, "has already voted"),
    ("mallory", "r-1", 0.0, "is not one of the voters"),
    ("carol", "r-9", 0.0, "'r-9' is not an option"),
    ("carol", "r-1", 7200.0, "closed at"),
])
def test_a_ballot_that_cannot_count_is_refused_with_the_reason(council: Council, voter: str, option: str, later: float,
                                                               why: str) -> None:
    vid = budget_vote(council)
    land(council, [motions.cast_ballot(council.fold(), vid, "r-2", council.keyring.signer("bob"), council.clock())])
    with pytest.raises(VoteError, match=why):
        motions.cast_ballot(council.fold(), vid, option, council.keyring.signer(voter), council.clock() + later)
    with pytest.raises(VoteError, match="there is no vote v-nope"):
        motions.cast_ballot(council.fold(), "v-nope", "r-1", council.keyring.signer("carol"), council.clock())


@pytest.mark.parametrize(("items", "why"), [
    (["r-1", "r-2:actions=3"], "'r-1' is not REQUEST_ID:field=value"),
    ([":actions=3", "r-2:actions=3"], "is not REQUEST_ID:field=value"),
    (["r-1:tokens=100", "r-2:bananas=3"], "unknown budget field 'bananas'"),
    (["r-1:tokens=lots", "r-2:actions=3"], "has an amount that is not a number"),
    (["r-1:tokens=1", "r-1:tokens=2"], "request r-1 is named twice"),
])
def test_a_malformed_budget_allocation_is_refused(items: list[str], why: str) -> None:
    with pytest.raises(GovernanceError, match=why):
        motions.budget_options(items)


def test_a_budget_vote_needs_a_policy_that_puts_allocation_to_a_vote(council: Council) -> None:
    options = motions.budget_options(["r-1:tokens=1", "r-2:tokens=2"])
    with pytest.raises(GovernanceError, match="no policy is in force in this log"):
        motions.propose_budget_vote(Authority(), options, "x", council.clock())
    with pytest.raises(VoteError, match="at least two distinct options"):
        motions.propose_budget_vote(council.fold(), {"r-1": "r-1:tokens=1"}, "x", council.clock())
    council.adopt(POLICY.replace('actions = ["budget.allocate"]', 'actions = ["budget.read"]'))
    with pytest.raises(GovernanceError, match="does not put budget allocation to a vote"):
        motions.propose_budget_vote(council.fold(), options, "x", council.clock())


# -- warrants ---------------------------------------------------------------------------------


def test_a_revocation_reaches_every_warrant_carved_from_it_and_never_loses_a_race(council: Council) -> None:
    parent = council.warrant("d1", "deployer", task="deploy")
    child = council.warrant("d2", "deployer", task="deploy-child", parent_id=parent.warrant_id)
    intents = council.fold().revocations(parent.warrant_id, "rotating keys", "alice")
    assert sorted((i.stream, i.expected) for i in intents) == [(f"warrant-{parent.warrant_id}", ANY),
                                                               (f"warrant-{child.warrant_id}", ANY)]
    assert all(isinstance(i.events[0], WarrantRevoked) and i.events[0].cause_id == parent.warrant_id for i in intents)
    authority = land(council, intents)
    assert authority.warrants[child.warrant_id].revoked is not None
    assert authority.revocations(parent.warrant_id, "again", "bob") == []  # nothing left to revoke
    with pytest.raises(WarrantError, match="there is no warrant w-nope in the log"):
        authority.revocations("w-nope", "why", "bob")


# -- racing writers ---------------------------------------------------------------------------


def test_a_decision_whose_stream_moved_before_its_append_is_refused_not_duplicated(council: Council) -> None:
    aid = propose(council)
    before = council.fold()
    bobs = motions.sign(before, aid, council.keyring.signer("bob"), council.clock())
    carols = motions.sign(before, aid, council.keyring.signer("carol"), council.clock())
    land(council, [bobs])
    refused = council.store.append_many([carols])[0]
    assert isinstance(refused, ConcurrencyError) and refused.stream == f"approval-{aid}"
    assert council.types(f"approval-{aid}") == ["approval.requested", "approval.signed"]
    again = motions.sign(council.fold(), aid, council.keyring.signer("carol"), council.clock())  # decided again
    assert land(council, [again]).approvals[aid].version == 3


def test_two_adoptions_decided_from_the_same_log_cannot_both_land(council: Council) -> None:
    council.adopt(changed_by(ALLOW, "changed at will"))
    authority, now = council.fold(), council.clock()
    first = motions.propose_policy(authority, candidate("first"), fingerprint(council, "alice"), now, {})
    second = motions.propose_policy(authority, candidate("second"), fingerprint(council, "bob"), now, {})
    land(council, first)
    results = council.store.append_many(second)
    assert isinstance(results[-1], ConcurrencyError) and results[-1].stream == "policy"
    assert council.fold().policy.adopted.name == "first"  # type: ignore[union-attr]
