"""The gate over a real log: every refusal is an event with a reason, and nothing happens."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from governance_support import POLICY, Council, make_council

from actors.skills import failure_kind
from actors.tools.gated import ActionRefused, AwaitingAuthority, Nondeterministic, content_key
from events import VOCABULARY
from events.catalogue import ActionAuthorized, ActionDenied, PolicyAdopted, WarrantIssued
from governance import approvals, gate, warrant
from governance.policy import parse_policy


@pytest.fixture
def council(tmp_path: Path) -> Council:
    return make_council(tmp_path)


def denial(council: Council, stream: str) -> ActionDenied:
    """The last action.denied in ``stream``."""
    found = [e for e in council.events(stream) if isinstance(e, ActionDenied)]
    assert found, f"no action.denied in {stream}"
    return found[-1]


def denied(council: Council, stream: str, kind: str | None = None) -> str:
    """The reason of the last action.denied in ``stream`` (checking its kind, if given)."""
    event = denial(council, stream)
    if kind is not None:
        assert event.kind == kind, (event.kind, event.reason)
    return event.reason


def test_an_authorised_write_is_recorded_before_and_after_it_happens(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    result = council.tools("a1", grant.warrant_id, "t-write").write_file("src/app.py", "print('hi')\n")
    assert (council.home / "workspace" / "src" / "app.py").read_text() == "print('hi')\n"
    assert council.types(f"warrant-{grant.warrant_id}") == ["warrant.issued", "action.authorized", "action.completed",
                                                            "file.changed"]
    changed = council.events(f"warrant-{grant.warrant_id}")[-1]
    assert changed.before is None and changed.after == hashlib.sha256(b"print('hi')\n").hexdigest()
    authorized = council.events(f"warrant-{grant.warrant_id}")[1]
    assert authorized.rule == "coders-write-source"
    assert authorized.policy_hash == council.authority.policy.adopted.policy_hash
    assert result == {"path": "src/app.py", "sha256": hashlib.sha256(b"print('hi')\n").hexdigest()}


def test_a_completed_action_is_never_run_again(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    target = council.home / "workspace" / "src" / "once.py"
    council.tools("a1", grant.warrant_id, "t-once").write_file("src/once.py", "v1")
    target.write_text("changed by hand")
    again = council.tools("a1", grant.warrant_id, "t-once").write_file("src/once.py", "v1")  # the skill runs again
    assert again["already_done"] and target.read_text() == "changed by hand"
    assert council.types(f"warrant-{grant.warrant_id}").count("action.authorized") == 1


def test_a_retry_that_takes_another_path_is_denied_not_told_done(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    stream = f"warrant-{grant.warrant_id}"
    council.tools("a1", grant.warrant_id, "t-path").write_file("src/first.py", "v1")
    again = council.tools("a1", grant.warrant_id, "t-path").write_file("src/first.py", "v1")  # the same first call
    assert again["already_done"]
    with pytest.raises(Nondeterministic, match="took another path") as refused:  # a retry whose first call differs
        council.tools("a1", grant.warrant_id, "t-path").write_file("src/second.py", "v1")
    assert failure_kind(refused.value) == "permanent"  # the task stops: retrying can never succeed
    assert not (council.home / "workspace" / "src" / "second.py").exists()
    reason = denied(council, stream, "nondeterministic")
    assert reason.startswith(f"idempotency key t-path#1 names another action under warrant {grant.warrant_id}: "
                             "the first attempt ran file.write 'src/first.py', this one asks for file.write "
                             "'src/second.py'; the skill took another path on this attempt than on the first; ")
    assert "`with tools.named(...)`" in reason and "keyed by their content" in reason
    assert council.types(stream).count("action.authorized") == 1


def test_the_same_target_with_other_arguments_is_another_action(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    council.tools("a1", grant.warrant_id, "t-args").write_file("src/a.py", "v1")
    with pytest.raises(ActionRefused):
        council.tools("a1", grant.warrant_id, "t-args").write_file("src/a.py", "v2")
    reason = denied(council, f"warrant-{grant.warrant_id}", "nondeterministic")
    assert "(the same action and target, but other arguments, resource, environment or artifacts)" in reason
    assert (council.home / "workspace" / "src" / "a.py").read_text() == "v1"


def test_a_call_made_only_sometimes_in_a_named_scope_leaves_the_others_keys_alone(council: Council) -> None:
    grant = council.warrant("a1", "coder")

    def skill(fix: bool) -> None:  # a skill whose first attempt applies a fix and whose retry finds none to apply
        tools = council.tools("a1", grant.warrant_id, "t-named")
        with tools.named("fix"):
            if fix:
                tools.write_file("src/fixed.py", "fixed")
        tools.write_file("src/always.py", "v1")

    skill(fix=True)
    skill(fix=False)  # not refused: the unnamed call is still the first of its scope
    assert council.types(f"warrant-{grant.warrant_id}").count("action.authorized") == 2


def test_a_call_keyed_by_its_content_is_replayed_for_the_same_inputs_and_new_work_for_others(
        council: Council) -> None:
    grant = council.warrant("a1", "coder")
    keeper = council.gatekeeper("a1")

    def ask(content: str) -> gate.Verdict:
        digest = hashlib.sha256(content.encode()).hexdigest()
        verdict = keeper.authorize(_write("a1", content_key("t-model", "answer", digest), "src/a.py", content),
                                   grant.warrant_id)
        if verdict.outcome == "authorized":
            keeper.completed(grant.warrant_id, content_key("t-model", "answer", digest), ok=True)
        return verdict

    assert ask("the same inputs").outcome == "authorized"
    assert ask("the same inputs").outcome == "done"  # recorded: never done (or paid for) twice
    assert ask("other inputs").outcome == "authorized"  # another key: new work, not a replay of something else


def _write(agent: str, key: str, path: str, content: str = "x") -> gate.ActionRequest:
    return gate.ActionRequest(agent_id=agent, action="file.write", target=path, resource=path, key=key,
                              arguments={"sha256": hashlib.sha256(content.encode()).hexdigest()})


def test_the_gatekeeper_records_each_verdict_with_its_kind(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    keeper = council.gatekeeper("a1")
    first = keeper.authorize(_write("a1", "k-1", "src/a.py"), grant.warrant_id)
    assert (first.outcome, first.denial) == ("authorized", None)
    resumed = keeper.authorize(_write("a1", "k-1", "src/a.py"), grant.warrant_id)  # authorised, not finished
    assert resumed.outcome == "authorized" and "resuming" in resumed.reason
    other = keeper.authorize(_write("a1", "k-1", "src/b.py"), grant.warrant_id)
    assert (other.outcome, other.denial) == ("denied", "nondeterministic")
    assert "the first attempt was authorised for (and has not finished) file.write 'src/a.py'" in other.reason
    assert "this one asks for file.write 'src/b.py'" in other.reason
    keeper.completed(grant.warrant_id, "k-1", ok=True)
    done = keeper.authorize(_write("a1", "k-1", "src/a.py"), grant.warrant_id)
    assert (done.outcome, done.denial) == ("done", None) and done.completed is not None and done.completed.ok
    after = keeper.authorize(_write("a1", "k-1", "src/b.py"), grant.warrant_id)
    assert (after.outcome, after.denial) == ("denied", "nondeterministic") and "the first attempt ran" in after.reason
    recorded = [e for e in council.events(f"warrant-{grant.warrant_id}") if isinstance(e, ActionDenied)]
    assert [(e.key, e.kind, e.reason) for e in recorded] == [("k-1", "nondeterministic", other.reason),
                                                           ("k-1", "nondeterministic", after.reason)]
    outside = keeper.authorize(_write("a1", "k-2", "docs/a.md"), grant.warrant_id)
    assert outside.denial == "scope" and denial(council, f"warrant-{grant.warrant_id}").kind == "scope"


def test_a_denial_recorded_before_kinds_existed_still_reads() -> None:
    payload = {"warrant_id": "w-1", "agent_id": "a1", "action": "file.write", "target": "x", "key": "k", "reason": "no"}
    event = VOCABULARY.decode("action.denied", 1, json.dumps(payload).encode())
    assert isinstance(event, ActionDenied) and event.kind is None


@pytest.mark.parametrize(("path", "why", "kind"), [
    ("docs/readme.md", "outside the scope", "scope"),
    (".git/config", 'rule "no-git" denies', "policy"),
    ("../outside.txt", "..", "scope"),
    ("/etc/passwd", "absolute", "scope"),
])
def test_out_of_scope_paths_are_denied_and_nothing_is_written(council: Council, path: str, why: str, kind: str) -> None:
    grant = council.warrant("a1", "coder")
    with pytest.raises(ActionRefused):
        council.tools("a1", grant.warrant_id, "t-scope").write_file(path, "x")
    assert why in denied(council, f"warrant-{grant.warrant_id}", kind)
    assert not any(p.is_file() for p in (council.home / "workspace").rglob("*"))
    assert not (council.home / "outside.txt").exists()


def test_a_forged_warrant_is_denied(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    mallory = council.keyring.signer("mallory")
    # Signed by another key, claiming the council as issuer.
    forged = warrant.Warrant(**{**{f: getattr(grant, f) for f in grant.__struct_fields__}, "warrant_id": "w-forged"})
    data = msgspec.msgpack.Encoder(order="deterministic").encode(forged)
    event = WarrantIssued(warrant_id="w-forged", holder="a1", task_id=forged.task_id, warrant=data,
                          signature=mallory.sign(warrant._signed(data)), issuer=council.key.public.fingerprint)
    council.store.append("warrant-w-forged", [event])
    with pytest.raises(ActionRefused):
        council.tools("a1", "w-forged", "t-forged").write_file("src/a.py", "x")
    assert "forged" in denied(council, "warrant-w-forged", "warrant")


def test_a_warrant_with_a_widened_scope_but_the_old_signature_is_denied(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    issued = council.events(f"warrant-{grant.warrant_id}")[0]
    wider = warrant.Warrant(**{**{f: getattr(grant, f) for f in grant.__struct_fields__}, "warrant_id": "w-wide",
                               "resources": ("**",)})
    data = msgspec.msgpack.Encoder(order="deterministic").encode(wider)
    council.store.append("warrant-w-wide", [msgspec.structs.replace(issued, warrant_id="w-wide", warrant=data)])
    with pytest.raises(ActionRefused):
        council.tools("a1", "w-wide", "t-wide").write_file("docs/x.md", "x")
    assert "forged" in denied(council, "warrant-w-wide", "warrant")


def test_an_expired_warrant_is_denied(council: Council) -> None:
    grant = council.warrant("a1", "coder", expires_at=council.clock() + 60)
    council.clock.now += 61
    with pytest.raises(ActionRefused):
        council.tools("a1", grant.warrant_id, "t-exp").write_file("src/a.py", "x")
    assert "expired" in denied(council, f"warrant-{grant.warrant_id}", "warrant")


def test_a_warrant_held_by_another_agent_is_denied(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    with pytest.raises(ActionRefused):
        council.tools("a2", grant.warrant_id, "t-other").write_file("src/a.py", "x")
    assert "held by a1, not a2" in denied(council, f"warrant-{grant.warrant_id}", "holder")


def test_no_warrant_is_denied_in_the_agents_gate_stream(council: Council) -> None:
    with pytest.raises(ActionRefused):
        council.tools("a1", None, "t-none").write_file("src/a.py", "x")
    assert "no warrant" in denied(council, "gate-a1", "no-warrant")


def test_revoking_a_parent_stops_its_children_at_once(council: Council) -> None:
    parent = council.warrant("a1", "coder")
    child = warrant.attenuate(council.key, parent, warrant_id="w-child", holder="a2", resources=("src/**",),
                              task_id="t-child")
    council.store.append("warrant-w-child", [child])
    council.tools("a2", "w-child", "t-child").write_file("src/ok.py", "fine")  # works before the revocation
    for append in council.fold().revocations(parent.warrant_id, "key compromise", "test"):
        council.store.append(append.stream, list(append.events), append.expected)
    with pytest.raises(ActionRefused):
        council.tools("a2", "w-child", "t-child-2").write_file("src/late.py", "x")
    reason = denied(council, "warrant-w-child", "warrant")
    assert "revoked" in reason and "key compromise" in reason
    assert not (council.home / "workspace" / "src" / "late.py").exists()


def test_a_revocation_that_lands_while_the_gate_decides_wins(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    gatekeeper = council.gatekeeper("a1")
    real_append = council.store.append
    raced = []

    def append_after_a_revocation(stream, events, expected=None):  # type: ignore[no-untyped-def]
        if not raced and stream == f"warrant-{grant.warrant_id}":
            raced.append(True)
            for revocation in council.fold().revocations(grant.warrant_id, "revoked mid-decision", "test"):
                real_append(revocation.stream, list(revocation.events), revocation.expected)
        return real_append(stream, events, expected)

    gatekeeper.log = type("RacingLog", (), {"read_stream": council.store.read_stream,
                                            "append": staticmethod(append_after_a_revocation)})()
    from actors.tools.gated import Tools
    from actors.tools.workspace import Workspace
    with pytest.raises(ActionRefused, match="revoked mid-decision"):
        Tools(gatekeeper, grant.warrant_id, "t-race", Workspace(council.home / "workspace")).write_file("src/a.py", "x")
    assert council.types(f"warrant-{grant.warrant_id}").count("action.authorized") == 0


def test_a_call_over_budget_is_denied(council: Council) -> None:
    from events.catalogue import Budget
    grant = council.warrant("a1", "coder", budget=Budget(actions=2))
    tools = council.tools("a1", grant.warrant_id, "t-budget")
    tools.write_file("src/1.py", "1")
    tools.write_file("src/2.py", "2")
    with pytest.raises(ActionRefused):
        tools.write_file("src/3.py", "3")
    assert "budget exhausted: actions 2 used + 1 asked > 2" in denied(council, f"warrant-{grant.warrant_id}", "budget")
    assert not (council.home / "workspace" / "src" / "3.py").exists()


# -- approvals --------------------------------------------------------------------------------


def deploy_request(council: Council, artifact: str = "dist/app.tar", content: str = "v1", task: str = "t-deploy"):  # type: ignore[no-untyped-def]
    (council.home / "workspace" / "dist").mkdir(exist_ok=True)
    (council.home / "workspace" / artifact).write_text(content)
    grant = council.warrant("d1", "deployer", task=task)
    with pytest.raises(AwaitingAuthority) as waiting:
        council.tools("d1", grant.warrant_id, task).deploy(artifact, "production")
    aid = waiting.value.authority_id
    ledger = council.fold().approvals[aid]
    return grant, aid, ledger


def sign(council: Council, name: str, aid: str) -> None:
    ledger = council.fold().approvals[aid]
    event = approvals.sign_approval(council.keyring.signer(name), ledger.requested)
    approvals.admit(ledger, event, now=council.clock(), policy_hash=council.authority.policy.adopted.policy_hash)
    council.store.append(f"approval-{aid}", [event])


def decide(council: Council) -> None:
    for append in council.fold().decisions(council.clock()):
        council.store.append(append.stream, list(append.events), append.expected)
    council.fold()


def test_a_production_deploy_waits_for_two_approvals_then_runs_once(council: Council) -> None:
    grant, aid, ledger = deploy_request(council)
    assert ledger.requested.spec.environment == "production" and ledger.requested.needed == 2
    assert ledger.requested.spec.artifacts == {"dist/app.tar": hashlib.sha256(b"v1").hexdigest()}
    assert ledger.requested.digest == approvals.spec_digest(ledger.requested.spec)
    sign(council, "alice", aid)
    decide(council)
    assert council.authority.approvals[aid].open  # one of two
    sign(council, "bob", aid)
    decide(council)
    assert council.authority.approvals[aid].granted is not None
    manifest = council.tools("d1", grant.warrant_id, "t-deploy").deploy("dist/app.tar", "production")
    assert manifest["environment"] == "production"
    authorized = [e for e in council.events(f"warrant-{grant.warrant_id}") if type(e).__name__ == "ActionAuthorized"]
    assert [a.approval_id for a in authorized] == [aid]


def test_self_approval_the_same_key_twice_and_an_unknown_key_are_refused(council: Council) -> None:
    _, aid, ledger = deploy_request(council)
    requester = council.keyring.signer("agent-d1")
    now, policy = council.clock(), council.authority.policy.adopted.policy_hash
    with pytest.raises(Exception, match="requester's own key never counts"):
        approvals.admit(ledger, approvals.sign_approval(requester, ledger.requested), now=now, policy_hash=policy)
    with pytest.raises(Exception, match="not one of the approvers"):
        approvals.admit(ledger, approvals.sign_approval(council.keyring.signer("mallory"), ledger.requested),
                        now=now, policy_hash=policy)
    sign(council, "alice", aid)
    with pytest.raises(Exception, match=r"has already signed .* a key counts once"):
        sign(council, "alice", aid)
    # even appended behind the checks' back, a second signature by the same key counts once
    again = approvals.sign_approval(council.keyring.signer("alice"), ledger.requested)
    council.store.append(f"approval-{aid}", [again])
    decide(council)
    assert council.authority.approvals[aid].open and len(council.authority.approvals[aid].approvals) == 1


def test_a_signature_for_another_request_expired_or_after_a_policy_change_is_refused(council: Council) -> None:
    _, aid, ledger = deploy_request(council, task="t-first")
    _, _other, other_ledger = deploy_request(council, artifact="dist/b.tar", task="t-second")
    replayed = approvals.sign_approval(council.keyring.signer("alice"), other_ledger.requested)  # other nonce, digest
    replayed = msgspec.structs.replace(replayed, approval_id=aid)
    now, policy = council.clock(), council.authority.policy.adopted.policy_hash
    with pytest.raises(Exception, match="different action, request or nonce"):
        approvals.admit(ledger, replayed, now=now, policy_hash=policy)
    with pytest.raises(Exception, match="expired"):
        approvals.admit(ledger, approvals.sign_approval(council.keyring.signer("bob"), ledger.requested),
                        now=ledger.requested.spec.expires_at + 1, policy_hash=policy)
    with pytest.raises(Exception, match="policy changed"):
        approvals.admit(ledger, approvals.sign_approval(council.keyring.signer("bob"), ledger.requested),
                        now=now, policy_hash="0" * 64)


def test_a_tampered_action_after_approval_is_denied(council: Council) -> None:
    grant, aid, _ = deploy_request(council)
    sign(council, "alice", aid)
    sign(council, "bob", aid)
    decide(council)
    (council.home / "workspace" / "dist" / "app.tar").write_text("v2, swapped after the approval")
    with pytest.raises(ActionRefused):
        council.tools("d1", grant.warrant_id, "t-deploy").deploy("dist/app.tar", "production")
    assert "digest differs" in denied(council, f"warrant-{grant.warrant_id}", "approval")
    assert not (council.home / "workspace" / ".deployments").exists()


def test_a_policy_change_after_the_request_invalidates_its_approvals(council: Council) -> None:
    grant, aid, _ = deploy_request(council)
    sign(council, "alice", aid)
    council.adopt(POLICY.replace('name = "test"', 'name = "test, revised"'))
    decide(council)
    assert "policy changed" in council.authority.approvals[aid].refused.reason
    with pytest.raises(ActionRefused):
        council.tools("d1", grant.warrant_id, "t-deploy").deploy("dist/app.tar", "production")


def test_a_rejection_by_enough_approvers_refuses_the_action(council: Council) -> None:
    grant, aid, ledger = deploy_request(council)
    for name in ("alice", "bob"):
        event = approvals.sign_rejection(council.keyring.signer(name), ledger.requested, reason="not today")
        council.store.append(f"approval-{aid}", [event])
    decide(council)
    assert "rejected by 2" in council.authority.approvals[aid].refused.reason
    with pytest.raises(ActionRefused, match="refused"):
        council.tools("d1", grant.warrant_id, "t-deploy").deploy("dist/app.tar", "production")


def test_an_approval_lets_one_action_run_once(council: Council) -> None:
    grant, aid, _ = deploy_request(council)
    sign(council, "alice", aid)
    sign(council, "bob", aid)
    decide(council)
    tools = council.tools("d1", grant.warrant_id, "t-deploy")
    tools.deploy("dist/app.tar", "production")
    with pytest.raises(AwaitingAuthority) as second:  # the next deploy is another action: it needs its own approval
        tools.deploy("dist/app.tar", "production")
    assert second.value.authority_id != aid


def test_a_vote_gated_deploy_runs_when_the_vote_approves(council: Council) -> None:
    from governance import votes
    (council.home / "workspace" / "dist").mkdir()
    (council.home / "workspace" / "dist" / "app.tar").write_text("v1")
    grant = council.warrant("d1", "deployer", task="t-canary")
    with pytest.raises(AwaitingAuthority) as waiting:
        council.tools("d1", grant.warrant_id, "t-canary").deploy("dist/app.tar", "canary")
    vid = waiting.value.authority_id
    proposal = council.fold().votes[vid].proposed
    for name in ("alice", "bob"):
        ballot = votes.cast(council.keyring.signer(name), proposal, "approve")
        votes.admit(council.fold().votes[vid], ballot, now=council.clock())
        council.store.append(f"vote-{vid}", [ballot])
    decide(council)
    assert council.authority.votes[vid].decided.outcome == "approve"
    assert council.tools("d1", grant.warrant_id, "t-canary").deploy("dist/app.tar", "canary")["environment"] == "canary"


# -- governed changes ------------------------------------------------------------------------


def test_a_policy_change_is_adopted_once_two_approvers_sign_it(council: Council) -> None:
    import time as _time

    from events.catalogue import ApprovalRequested, PolicyProposed
    from governance.motions import policy_change_spec as approvals_spec
    from governance.policy import parse_policy

    new = parse_policy(POLICY.replace('name = "test"', 'name = "test, second edition"'))
    council.store.append(f"policy-{new.hash}", [PolicyProposed(policy_hash=new.hash, text=new.text, proposed_by="x")])
    current = council.fold().policy.adopted
    spec = approvals_spec(new.hash, current.policy_hash, council.keyring.public("alice").fingerprint, _time.time())
    council.store.append("approval-pc-1", [ApprovalRequested(
        approval_id="pc-1", digest=approvals.spec_digest(spec), spec=spec, needed=2, approvers=dict(current.approvers),
        rule="policy-change")])
    sign(council, "bob", "pc-1")
    decide(council)
    assert council.authority.policy.adopted.policy_hash == current.policy_hash  # one signature is not enough
    sign(council, "carol", "pc-1")
    decide(council)
    adopted = council.authority.policy.adopted
    assert adopted.policy_hash == new.hash and adopted.authority == "approval pc-1"
    assert adopted.approvers == current.approvers  # the approvers' keys stay pinned


def test_a_budget_vote_sets_the_budget_of_the_winning_request(council: Council) -> None:
    from governance import votes

    proposal = votes.propose(vote_id="bv-1", subject="who gets the tokens", kind="budget.allocate",
                             options=["r-1", "r-2"], quorum=2, deadline=council.clock() + 3600,
                             voters=dict(council.fold().policy.adopted.approvers), proposer="x",
                             payload={"r-1": "r-1:actions=1", "r-2": "r-2:actions=7,money=2.5"})
    council.store.append("vote-bv-1", [proposal])
    for name in ("alice", "carol"):
        council.store.append("vote-bv-1", [votes.cast(council.keyring.signer(name), proposal, "r-2")])
    decide(council)
    assert council.authority.budgets["r-2"].actions == 7 and council.authority.budgets["r-2"].money == 2.5
    grant = council.warrant("a1", "coder", request="r-2")
    assert grant.budget.actions == 7  # the request's allocation bounds its warrants


def test_an_agents_budget_is_what_it_may_spend_on_one_request(council: Council) -> None:
    first = council.warrant("a1", "coder", request="r-1")
    tools = council.tools("a1", first.warrant_id, "t-spend")
    for i in range(3):
        tools.write_file(f"src/spent{i}.py", "x")
    same_request = council.warrant("a1", "coder", request="r-1")
    other_request = council.warrant("a1", "coder", request="r-2")
    assert first.budget.actions == 50  # the test policy's [budgets.agent]
    assert same_request.budget.actions == 47 and other_request.budget.actions == 50


def test_a_command_is_charged_the_time_it_took_not_its_timeout(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    council.tools("a1", grant.warrant_id, "t-time").run(["true"], ".", timeout=900)
    [ledger] = [w for wid, w in council.fold().warrants.items() if wid == grant.warrant_id]
    assert ledger.used.wall_time_s is not None and ledger.used.wall_time_s < 5


# -- the policy in force is the one its adoption recorded ----------------------------------------


def _hash_before_tool_tables(text: str) -> str:
    """The hash an earlier version gave this policy: its canonical form had ``review`` where ``tool`` is now."""
    form: dict[str, Any] = parse_policy(text).model_dump(mode="json")
    pipeline = form.pop("tool").get("pipeline", {})
    form["review"] = {"block_at": pipeline.get("review_block_at", "high")}
    return hashlib.sha256(json.dumps(form, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_a_policy_adopted_under_an_older_hash_is_in_force_under_that_hash(council: Council) -> None:
    legacy = POLICY + '\n[review]\nblock_at = "medium"\n'
    recorded = _hash_before_tool_tables(legacy)
    assert recorded != parse_policy(legacy).hash  # what this version alone would call it
    ledger = council.fold().policy
    council.store.append("policy", [PolicyAdopted(policy_hash=recorded, name="test", text=legacy,
                                                  approvers=dict(ledger.adopted.approvers), adopted_by="test",
                                                  authority="an earlier version")], ledger.version)
    in_force = council.fold().current()
    assert in_force is not None and in_force.hash == recorded
    assert in_force.tool_table("pipeline") == {"review_block_at": "medium"}

    writer = council.warrant("a1", "coder")
    assert writer.policy_hash == recorded
    council.tools("a1", writer.warrant_id, "t-legacy").write_file("src/a.py", "x")
    [authorized] = [e for e in council.events(f"warrant-{writer.warrant_id}") if isinstance(e, ActionAuthorized)]
    assert authorized.policy_hash == recorded

    grant, aid, ledger_ = deploy_request(council)
    assert ledger_.requested.spec.policy_hash == recorded
    sign(council, "alice", aid)
    sign(council, "bob", aid)
    decide(council)
    assert council.authority.approvals[aid].refused is None and council.authority.approvals[aid].granted is not None
    assert council.tools("d1", grant.warrant_id, "t-deploy").deploy("dist/app.tar", "production")["environment"] == \
        "production"


# -- approvals and votes that could never be decided ---------------------------------------------


def adopt_pinning(council: Council, names: tuple[str, ...], text: str = POLICY) -> None:
    """Put ``text`` in force with only ``names``' keys pinned (the others' keys were not in the keyring)."""
    pinned = {name: council.keyring.public(name).fingerprint for name in names}
    adoption = council.fold().adopt(parse_policy(text), pinned, by="test", authority="test")
    council.store.append(adoption.stream, list(adoption.events), adoption.expected)
    council.fold()


def test_an_approval_too_few_approvers_can_sign_is_denied_not_asked_for(council: Council) -> None:
    adopt_pinning(council, ("alice",))  # deploy-production needs 2 of alice, bob, carol
    (council.home / "workspace" / "dist").mkdir()
    (council.home / "workspace" / "dist" / "app.tar").write_text("v1")
    grant = council.warrant("d1", "deployer", task="t-unpinned")
    with pytest.raises(ActionRefused):
        council.tools("d1", grant.warrant_id, "t-unpinned").deploy("dist/app.tar", "production")
    reason = denied(council, f"warrant-{grant.warrant_id}", "approval")
    assert reason.startswith("rule 'deploy-production' needs 2 approvals but only 1 of its approvers "
                             "(alice, bob, carol) have pinned keys, so it could never be granted; ")
    assert not council.fold().approvals  # no request that could never be granted was recorded
    assert not (council.home / "workspace" / "environments").exists()


def test_a_vote_too_few_voters_can_cast_is_denied_as_a_vote_that_cannot_be_held(council: Council) -> None:
    adopt_pinning(council, ("alice",))  # deploy-canary needs a quorum of 2 of alice, bob, carol
    (council.home / "workspace" / "dist").mkdir()
    (council.home / "workspace" / "dist" / "app.tar").write_text("v1")
    grant = council.warrant("d1", "deployer", task="t-no-quorum")
    with pytest.raises(ActionRefused):
        council.tools("d1", grant.warrant_id, "t-no-quorum").deploy("dist/app.tar", "canary")
    reason = denied(council, f"warrant-{grant.warrant_id}", "vote")
    assert "puts the action to a vote that cannot be held: quorum 2 cannot be reached by 1 voter(s)" in reason
    assert not council.fold().votes


# -- what an action's digest covers ---------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"environment": "staging"},
    {"resource": "src/b.py"},
    {"artifacts": {"dist/app.tar": "0" * 64}},
    {"arguments": {"sha256": "0" * 64}},
])
def test_a_key_reused_for_the_same_target_with_anything_else_changed_is_nondeterministic(
        council: Council, change: dict[str, Any]) -> None:
    grant = council.warrant("a1", "coder")
    keeper = council.gatekeeper("a1")
    first = _write("a1", "k-same", "src/a.py")
    assert keeper.authorize(first, grant.warrant_id).outcome == "authorized"
    keeper.completed(grant.warrant_id, "k-same", ok=True)
    other = msgspec.structs.replace(first, **change)
    verdict = keeper.authorize(other, grant.warrant_id)
    assert (verdict.outcome, verdict.denial) == ("denied", "nondeterministic"), verdict.reason
    assert "(the same action and target, but other arguments, resource, environment or artifacts)" in verdict.reason


def test_a_key_reused_with_another_cost_estimate_is_the_same_action(council: Council) -> None:
    from events.catalogue import Budget
    grant = council.warrant("a1", "coder")
    keeper = council.gatekeeper("a1")
    first = msgspec.structs.replace(_write("a1", "k-cost", "src/a.py"), cost=Budget(tokens=10))
    assert keeper.authorize(first, grant.warrant_id).outcome == "authorized"
    dearer = msgspec.structs.replace(first, cost=Budget(tokens=99, money=1.5))
    resumed = keeper.authorize(dearer, grant.warrant_id)  # authorised, not finished: resumed, not refused
    assert resumed.outcome == "authorized" and "resuming" in resumed.reason
    keeper.completed(grant.warrant_id, "k-cost", ok=True)
    assert keeper.authorize(dearer, grant.warrant_id).outcome == "done"
