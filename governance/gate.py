"""The enforcement gate: the one decision every side-effecting action passes before it happens.

:func:`check` takes what the log says — the warrant's ledger and its ancestors', the policy in
force, the approval or vote the action may need — and one :class:`ActionRequest`, and returns a
:class:`Verdict`: authorized (with the ``action.authorized`` event to append *before* acting),
denied (with the ``action.denied`` event and the reason), pending (an approval or a vote must be
asked for or waited on), or done (this very action, by its idempotency key, already ran: its
recorded outcome is returned and it must not run again).

Fail closed: anything missing, expired, forged, revoked, out of scope or over budget is a denial
with its reason, and so is any error raised while deciding. The checks, in order: a warrant
exists → its chain verifies (signatures, narrowing, validity, revocation) → it is held by this
agent → it covers the action, resource and environment → the action has not run already → the
policy allows it (or its approval / vote has been granted, for exactly this action) → the budget
holds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActionDenied,
    ActionSpec,
    ApprovalRequested,
    Budget,
    VoteProposed,
)
from governance import budget, votes, warrant
from governance.approvals import ApprovalLedger, arguments_digest, new_nonce, spec_digest
from governance.errors import GovernanceError
from governance.keys import PublicKey
from governance.ledgers import WarrantLedger
from governance.signing import digest
from governance.votes import VoteLedger

APPROVAL_TTL = 7 * 24 * 3600.0
"""How long an approval request stays open before it expires (seconds)."""


class ActionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One action an agent wants to take, described completely enough to be approved exactly."""

    agent_id: str
    action: str
    target: str
    """What it acts on, as people read it: a path, a command line, an environment, a model."""
    resource: str | None = None
    """The workspace path checked against scopes and policy globs (None for actions without one)."""
    environment: str | None = None
    key: str
    """The idempotency key: the same key under the same warrant is never run twice."""
    arguments: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    cost: Budget = Budget()


class Decision(Protocol):
    """What a policy says about an action (``governance.policy.PolicyDecision`` has these fields)."""

    effect: str
    rule: str | None
    reason: str


class PolicyView(Protocol):
    """The policy in force, as the gate needs it."""

    hash: str

    def decide(self, action: str, role: str, resource: str | None = None, environment: str | None = None) -> Any:
        """The policy's decision for one action (see ``governance.policy.Policy.decide``)."""


@dataclass(frozen=True)
class Verdict:
    """The gate's answer. ``stream``/``expected``/``events`` are what to append before acting (if anything)."""

    outcome: Literal["authorized", "denied", "pending", "done"]
    reason: str
    stream: str | None = None
    expected: int | None = None
    events: tuple[Any, ...] = ()
    """Events to append to ``stream`` at version ``expected`` (the decision's record)."""
    ask: tuple[str, Any] | None = None
    """For ``pending``: the (stream, event) that asks for the approval or vote, if it is not asked yet."""
    authority_id: str | None = None
    """The approval or vote this verdict waits on or used."""
    completed: ActionCompleted | None = None
    """For ``done``: the recorded outcome of the action that already ran."""


@dataclass(frozen=True)
class Context:
    """What the log says, as :func:`check` needs it."""

    council: PublicKey
    now: float
    ledger: WarrantLedger | None
    """The fold of the warrant's stream (None: no such warrant)."""
    ancestor: Callable[[str], WarrantLedger | None]
    """The ledger of another warrant, for the chain."""
    policy: PolicyView | None
    approvers: dict[str, str]
    """Approver name → key fingerprint, as pinned when the policy was adopted."""
    requester: str
    """The acting agent's identity (its key fingerprint)."""
    approval: Callable[[str], ApprovalLedger | None]
    vote: Callable[[str], VoteLedger | None]


def authority_id(warrant_id: str, key: str) -> str:
    """The id of the approval (or vote) that gates the action ``key`` under ``warrant_id``: one per action."""
    return "ap-" + hashlib.sha256(f"{warrant_id}\0{key}".encode()).hexdigest()[:24]


def check(request: ActionRequest, warrant_id: str | None, ctx: Context) -> Verdict:
    """Decide ``request`` under ``warrant_id``; never raises (any error is a denial that says what went wrong)."""
    try:
        return _check(request, warrant_id, ctx)
    except GovernanceError as exc:
        return _deny(request, warrant_id, ctx, str(exc))
    except Exception as exc:  # fail closed: a bug in a decision denies, and says so
        return _deny(request, warrant_id, ctx, f"internal error while deciding ({type(exc).__name__}: {exc})")


def _check(request: ActionRequest, warrant_id: str | None, ctx: Context) -> Verdict:
    ledger = ctx.ledger
    if warrant_id is None or ledger is None or ledger.issued is None:
        return _deny(request, warrant_id, ctx, f"no warrant{f' {warrant_id}' if warrant_id else ''} is in the log: "
                                               "an agent acts only under a warrant the council issued")

    def revoked(wid: str) -> str | None:
        found = ledger if wid == warrant_id else ctx.ancestor(wid)
        return None if found is None or found.revoked is None else found.revoked.reason

    def lookup(wid: str):  # type: ignore[no-untyped-def]
        found = ctx.ancestor(wid)
        return None if found is None else found.issued

    chain = warrant.verify_chain(ledger.issued, lookup, ctx.council, ctx.now, revoked)
    grant = chain[0]
    if grant.holder != request.agent_id:
        return _deny(request, warrant_id, ctx, f"warrant {warrant_id} is held by {grant.holder}, not {request.agent_id}")
    outside = warrant.covers_action(grant, request.action, request.resource, request.environment)
    if outside is not None:
        return _deny(request, warrant_id, ctx, outside)
    if request.key in ledger.completed:
        return Verdict("done", f"action {request.key} already ran under {warrant_id}; not running it again",
                       completed=ledger.completed[request.key])
    if request.key in ledger.authorized:
        earlier = ledger.authorized[request.key]
        if earlier.digest != _digest(request):
            return _deny(request, warrant_id, ctx, f"action {request.key} was authorised for different arguments or "
                                                   "target; an idempotency key names one action")
        return Verdict("authorized", f"action {request.key} was authorised before and has not finished; resuming it")
    if ctx.policy is None:
        return _deny(request, warrant_id, ctx, "no policy is in force; adopt one with `council policy adopt`")
    decision = ctx.policy.decide(request.action, grant.role, request.resource, request.environment)
    approval_id: str | None = None
    if decision.effect in ("approve", "vote"):
        gated = _gated(request, grant, decision, ctx)
        if isinstance(gated, Verdict):
            return gated
        approval_id = gated
    elif decision.effect != "allow":
        return _deny(request, warrant_id, ctx, decision.reason, rule=decision.rule or "")
    over = budget.over(ledger.used, budget.add(request.cost, Budget(actions=1)), grant.budget)
    if over is not None:
        return _deny(request, warrant_id, ctx, f"{over} (warrant {warrant_id})")
    event = ActionAuthorized(warrant_id=warrant_id, agent_id=request.agent_id, action=request.action,
                             target=request.target, environment=request.environment, key=request.key,
                             digest=_digest(request), policy_hash=ctx.policy.hash, rule=decision.rule or "",
                             cost=request.cost, approval_id=approval_id)
    return Verdict("authorized", decision.reason, f"warrant-{warrant_id}", ledger.version, (event,),
                   authority_id=approval_id)


def _gated(request: ActionRequest, grant: warrant.Warrant, decision: Any, ctx: Context) -> Verdict | str:
    """The approval's or vote's verdict for a gated action: a Verdict to return, or the approval id to record."""
    assert ctx.policy is not None
    wid = grant.warrant_id
    aid = authority_id(wid, request.key)
    if decision.effect == "approve":
        approvers = {name: ctx.approvers[name] for name in decision.approvers if name in ctx.approvers}
        if len(approvers) < decision.approvals:
            return _deny(request, wid, ctx, f"rule {decision.rule!r} needs {decision.approvals} approvals but only "
                                            f"{len(approvers)} of its approvers have pinned keys")
        found = ctx.approval(aid)
        if found is None or found.requested is None:
            spec = _spec(request, wid, ctx, new_nonce(), min(ctx.now + APPROVAL_TTL, grant.expires_at))
            ask = ApprovalRequested(approval_id=aid, digest=spec_digest(spec), spec=spec, needed=decision.approvals,
                                    approvers=approvers, rule=decision.rule or "", task_id=grant.task_id)
            return Verdict("pending", f"{decision.reason}: waiting for {decision.approvals} approval(s) ({aid})",
                           ask=(f"approval-{aid}", ask), authority_id=aid)
        spec = _spec(request, wid, ctx, found.requested.spec.nonce, found.requested.spec.expires_at)
        if spec_digest(spec) != found.requested.digest:
            return _deny(request, wid, ctx, f"the action is not the one {aid} asked approval for (its digest "
                                            "differs: another target, arguments, artifact or policy)", rule=decision.rule)
        if found.refused is not None:
            return _deny(request, wid, ctx, f"approval {aid} was refused: {found.refused.reason}", rule=decision.rule)
        if found.granted is None:
            have = len(found.approvals)
            return Verdict("pending", f"waiting for approvals: {have} of {found.requested.needed} ({aid})",
                           authority_id=aid)
    else:
        found_vote = ctx.vote(aid)
        if found_vote is None or found_vote.proposed is None:
            ask_vote = votes.propose(vote_id=aid, subject=f"{request.action} {request.target}", kind="action",
                                     options=["approve", "reject"], quorum=decision.quorum,
                                     deadline=ctx.now + decision.deadline_s,
                                     voters={n: ctx.approvers[n] for n in decision.voters if n in ctx.approvers},
                                     proposer=ctx.requester, payload={"digest": _digest(request), "warrant": wid,
                                                                       "policy": ctx.policy.hash})
            return Verdict("pending", f"{decision.reason}: waiting for a vote ({aid})", ask=(f"vote-{aid}", ask_vote),
                           authority_id=aid)
        proposal: VoteProposed = found_vote.proposed
        if proposal.payload.get("digest") != _digest(request) or proposal.payload.get("policy") != ctx.policy.hash:
            return _deny(request, wid, ctx, f"the action is not the one vote {aid} is about, or the policy changed since",
                         rule=decision.rule)
        if found_vote.decided is None:
            return Verdict("pending", f"waiting for the vote: {len(found_vote.ballots)} of {proposal.quorum} ({aid})",
                           authority_id=aid)
        if found_vote.decided.outcome != "approve":
            return _deny(request, wid, ctx, f"vote {aid} decided {found_vote.decided.outcome}: "
                                            f"{found_vote.decided.reason}", rule=decision.rule)
        return aid
    assert found is not None and found.requested is not None
    if found.requested.spec.policy_hash != ctx.policy.hash:
        return _deny(request, wid, ctx, f"the policy changed since approval {aid} was granted; ask again",
                     rule=decision.rule)
    if ctx.now >= found.requested.spec.expires_at:
        return _deny(request, wid, ctx, f"approval {aid} expired at {found.requested.spec.expires_at:.0f}",
                     rule=decision.rule)
    if aid in (ctx.ledger.approvals_used if ctx.ledger else set()):
        return _deny(request, wid, ctx, f"approval {aid} was used already; an approval lets one action run once",
                     rule=decision.rule)
    return aid


def _spec(request: ActionRequest, warrant_id: str, ctx: Context, nonce: str, expires_at: float) -> ActionSpec:
    assert ctx.policy is not None
    return ActionSpec(action=request.action, target=request.target, environment=request.environment,
                      artifacts=dict(request.artifacts), arguments_digest=arguments_digest(request.arguments),
                      warrant_id=warrant_id, policy_hash=ctx.policy.hash, nonce=nonce, expires_at=expires_at,
                      requester=ctx.requester)


def _digest(request: ActionRequest) -> str:
    """The digest of what the action does (not of who asks or how much it costs)."""
    return digest({"action": request.action, "target": request.target, "resource": request.resource,
                   "environment": request.environment, "arguments": request.arguments,
                   "artifacts": request.artifacts})


def _deny(request: ActionRequest, warrant_id: str | None, ctx: Context, reason: str, rule: str | None = "") -> Verdict:
    policy_hash = ctx.policy.hash if ctx.policy is not None else None
    event = ActionDenied(warrant_id=warrant_id, agent_id=request.agent_id, action=request.action, target=request.target,
                         environment=request.environment, key=request.key, reason=reason[:4000],
                         policy_hash=policy_hash, rule=rule or "")
    ledger = ctx.ledger
    if warrant_id is not None and ledger is not None and ledger.issued is not None:
        return Verdict("denied", reason, f"warrant-{warrant_id}", ledger.version, (event,))
    return Verdict("denied", reason, f"gate-{request.agent_id}", None, (event,))
