"""The enforcement gate: the one decision every side-effecting action passes before it happens.

:func:`check` takes what the log says — the warrant's ledger and its ancestors', the policy in
force, the approval or vote the action may need — and one :class:`ActionRequest`, and returns a
:class:`Verdict`: authorized (with the ``action.authorized`` event to append *before* acting),
denied (with the ``action.denied`` event, the reason and its :data:`DenialKind`), pending (an
approval or a vote must be asked for or waited on), or done (this very action, by its idempotency
key, already ran: its recorded outcome is returned and it must not run again).

Fail closed: anything missing, expired, forged, revoked, out of scope or over budget is a denial
with its reason, and so is any error raised while deciding. The checks, in order: a warrant
exists → its chain verifies (signatures, narrowing, validity, revocation) → it is held by this
agent → it covers the action, resource and environment → the key has not named another action →
the action has not run already → the policy allows it (or its approval / vote has been granted,
for exactly this action) → the budget holds it.

Idempotency keys and digests. An action is named twice: by its idempotency key, what the skill
calls it (the task and the call's place in the skill, or a name given with ``tools.named``), and
by its digest, what it does (action, target, resource, environment, arguments and artifacts; not
who asks, nor what it is estimated to cost). The first authorisation under a key records the
digest, and from then on the key means that action and no other:

* the same key with the same digest, completed: done, with the recorded outcome (never run twice);
* the same key with the same digest, authorised but not finished: authorized again (resume it);
* the same key with another digest: denied, ``nondeterministic``. The skill took another path on
  this attempt than on its first; answering "done" would report the first action's success for
  work that never ran.

Calls whose place in a skill is not fixed — model calls above all — are keyed by their content:
the key is the digest of the call's inputs. The same inputs give the same key, so the recorded
result is replayed and never paid for again; other inputs give another key, so they are new work,
authorised and run on their own — never a silent replay of something else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from events import streams
from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActionDenied,
    ActionSpec,
    Budget,
    WarrantIssued,
)
from events.catalogue.governance import DenialKind
from governance import approvals, budget, votes, warrant
from governance.approvals import ApprovalLedger, arguments_digest, new_nonce, spec_digest
from governance.confinement import SandboxTable
from governance.errors import ApprovalError, GovernanceError, PolicyError, VoteError, WarrantError
from governance.keys import PublicKey
from governance.ledgers import WarrantLedger
from governance.policy import PolicyDecision
from governance.signing import digest
from governance.votes import VoteLedger

APPROVAL_TTL = 7 * 24 * 3600.0
"""How long an approval request stays open before it expires (seconds)."""

__all__ = ["APPROVAL_TTL", "ActionRequest", "Context", "DenialKind", "PolicyView", "Verdict", "authority_id", "check",
           "permitted"]


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
    """The idempotency key: under one warrant, a key names one action, which never runs twice."""
    arguments: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    cost: Budget = Budget()


class PolicyView(Protocol):
    """The policy in force, as the gate needs it (``governance.policy.Policy`` is one)."""

    @property
    def hash(self) -> str:
        """The hash the policy in force is known by."""

    @property
    def sandbox(self) -> SandboxTable:
        """How commands are confined under the policy (its ``[sandbox]`` table)."""

    def decide(self, action: str, role: str, resource: str | None = None,
               environment: str | None = None) -> PolicyDecision:
        """The policy's decision for one action (see ``governance.policy.Policy.decide``)."""

    def budget_for(self, scope: Literal["request", "agent", "extension"]) -> Budget:
        """The policy's ``[budgets.<scope>]`` as a Budget (see ``governance.policy.Policy.budget_for``)."""


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
    denial: DenialKind | None = None
    """For ``denied``: what kind of denial it is (the ``kind`` of the ``action.denied`` event)."""
    network: bool = False
    """For ``authorized`` and ``done``: whether the rule that let the action through grants its commands the network."""
    sandbox: SandboxTable | None = None
    """For ``authorized`` and ``done``: how the policy in force confines commands (None: no policy is in force)."""


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
        return _deny(request, warrant_id, ctx, "error", str(exc))
    except Exception as exc:  # noqa: BLE001 - fail closed: a bug in a decision denies, and says so
        return _deny(request, warrant_id, ctx, "error", f"internal error while deciding ({type(exc).__name__}: {exc})")


def _check(request: ActionRequest, warrant_id: str | None, ctx: Context) -> Verdict:
    ledger = ctx.ledger
    if warrant_id is None or ledger is None or ledger.issued is None:
        return _deny(request, warrant_id, ctx, "no-warrant", f"no warrant{f' {warrant_id}' if warrant_id else ''} "
                     "is in the log: an agent acts only under a warrant the council issued")

    def revoked(wid: str) -> str | None:
        found = ledger if wid == warrant_id else ctx.ancestor(wid)
        return None if found is None or found.revoked is None else found.revoked.reason

    def lookup(wid: str) -> WarrantIssued | None:
        found = ctx.ancestor(wid)
        return None if found is None else found.issued

    try:
        grant = warrant.verify_chain(ledger.issued, lookup, ctx.council, ctx.now, revoked)[0]
    except WarrantError as exc:
        return _deny(request, warrant_id, ctx, "warrant", str(exc))
    if grant.holder != request.agent_id:
        return _deny(request, warrant_id, ctx, "holder",
                     f"warrant {warrant_id} is held by {grant.holder}, not {request.agent_id}")
    try:
        outside = warrant.covers_action(grant, request.action, request.resource, request.environment)
    except PolicyError as exc:  # a resource that is not a path inside the workspace
        return _deny(request, warrant_id, ctx, "scope", str(exc))
    if outside is not None:
        return _deny(request, warrant_id, ctx, "scope", outside)
    # A key names one action: compared before "done" or "resume" is answered. Every completed key is also an
    # authorised one (WarrantLedger folds a completion only after its authorisation), so this covers both.
    earlier = ledger.authorized.get(request.key)
    if earlier is not None and earlier.digest != _digest(request):
        return _another_path(request, warrant_id, ctx, earlier, finished=request.key in ledger.completed)
    table = ctx.policy.sandbox if ctx.policy is not None else None
    if request.key in ledger.completed:
        return Verdict("done", f"action {request.key} already ran under {warrant_id}; not running it again",
                       completed=ledger.completed[request.key], network=bool(earlier and earlier.network),
                       sandbox=table)
    if earlier is not None:
        return Verdict("authorized", f"action {request.key} was authorised before and has not finished; resuming it",
                       network=earlier.network, sandbox=table)
    policy = ctx.policy
    if policy is None:
        return _deny(request, warrant_id, ctx, "policy", "no policy is in force; adopt one with `council policy adopt`")
    decision = policy.decide(request.action, grant.role, request.resource, request.environment)
    approval_id: str | None = None
    if decision.effect in ("approve", "vote"):
        gated = (_approval_verdict if decision.effect == "approve" else _vote_verdict)(
            request, grant, decision, ctx, policy.hash)
        if isinstance(gated, Verdict):
            return gated
        approval_id = gated
    elif decision.effect != "allow":
        return _deny(request, warrant_id, ctx, "policy", decision.reason, rule=decision.rule or "")
    cost = budget.add(request.cost, Budget(actions=1))
    limit = budget.widen(grant.budget, ledger.extended)
    if budget.over(ledger.used, cost, limit) is not None:
        extended = _extended(request, grant, ledger, cost, limit, policy, ctx)
        if isinstance(extended, Verdict):
            return extended
    event = ActionAuthorized(warrant_id=warrant_id, agent_id=request.agent_id, action=request.action,
                             target=request.target, environment=request.environment, key=request.key,
                             digest=_digest(request), policy_hash=policy.hash, rule=decision.rule or "",
                             cost=request.cost, approval_id=approval_id, network=decision.network)
    return Verdict("authorized", decision.reason, streams.warrant(warrant_id), ledger.version, (event,),
                   authority_id=approval_id, network=decision.network, sandbox=policy.sandbox)


def permitted(action: str, paths: Iterable[str], grant: warrant.Warrant, policy: PolicyView) -> list[str]:
    """Those of ``paths`` that ``grant`` covers for ``action`` and the policy allows outright — not a path a rule
    denies, or would put to approvals or a vote.

    How one action over many files (reading a tree) leaves out what the gate would refuse for a
    single one of them, such as secrets. It filters; it authorises nothing: the action over the
    files passes :func:`check` itself.
    """
    chosen = []
    for path in paths:
        try:
            if warrant.covers_action(grant, action, path, None) is None and \
                    policy.decide(action, grant.role, path).effect == "allow":
                chosen.append(path)
        except PolicyError:  # not a path inside the workspace: never permitted
            continue
    return chosen


def _another_path(request: ActionRequest, warrant_id: str, ctx: Context, recorded: ActionAuthorized, *,
                  finished: bool) -> Verdict:
    """The denial for a key that names another action already: which one, which one now, and what to change."""
    state = "ran" if finished else "was authorised for (and has not finished)"
    same = (" (the same action and target, but other arguments, resource, environment or artifacts)"
            if (recorded.action, recorded.target) == (request.action, request.target) else "")
    return _deny(request, warrant_id, ctx, "nondeterministic",
                 f"idempotency key {request.key} names another action under warrant {warrant_id}: the first attempt "
                 f"{state} {recorded.action} {_short(recorded.target)}, this one asks for {request.action} "
                 f"{_short(request.target)}{same}; the skill took another path on this attempt than on the first; "
                 "make the calls it makes only sometimes named (`with tools.named(...)`) or keyed by their content")


def _approval_verdict(request: ActionRequest, grant: warrant.Warrant, decision: PolicyDecision, ctx: Context,
                      policy_hash: str) -> Verdict | str:
    """For an action the policy lets run once approved: ask, wait or deny (a Verdict), or the granted approval's id."""
    wid = grant.warrant_id
    aid = authority_id(wid, request.key)
    found = ctx.approval(aid)
    if found is None or found.requested is None:
        spec = _spec(request, wid, ctx, policy_hash, new_nonce(), min(ctx.now + APPROVAL_TTL, grant.expires_at))
        try:
            ask = approvals.request(approval_id=aid, spec=spec, needed=decision.approvals,
                                    approvers=decision.approvers, keys=ctx.approvers, rule=decision.rule or "",
                                    task_id=grant.task_id)
        except ApprovalError as exc:  # too few pinned approvers: no request that could never be granted
            return _deny(request, wid, ctx, "approval", str(exc), rule=decision.rule)
        return Verdict("pending", f"{decision.reason}: waiting for {decision.approvals} approval(s) ({aid})",
                       ask=(streams.approval(aid), ask), authority_id=aid)
    requested = found.requested
    spec = _spec(request, wid, ctx, policy_hash, requested.spec.nonce, requested.spec.expires_at)
    if spec_digest(spec) != requested.digest:
        return _deny(request, wid, ctx, "approval", f"the action is not the one {aid} asked approval for (its digest "
                     "differs: another target, arguments, artifact or policy)", rule=decision.rule)
    if found.refused is not None:
        return _deny(request, wid, ctx, "approval", f"approval {aid} was refused: {found.refused.reason}",
                     rule=decision.rule)
    if found.granted is None:
        return Verdict("pending", f"waiting for approvals: {len(found.approvals)} of {requested.needed} ({aid})",
                       authority_id=aid)
    if requested.spec.policy_hash != policy_hash:
        return _deny(request, wid, ctx, "approval", f"the policy changed since approval {aid} was granted; ask again",
                     rule=decision.rule)
    if ctx.now >= requested.spec.expires_at:
        return _deny(request, wid, ctx, "approval", f"approval {aid} expired at {requested.spec.expires_at:.0f}",
                     rule=decision.rule)
    if ctx.ledger is not None and aid in ctx.ledger.approvals_used:
        return _deny(request, wid, ctx, "approval", f"approval {aid} was used already; an approval lets one action "
                     "run once", rule=decision.rule)
    return aid


def _vote_verdict(request: ActionRequest, grant: warrant.Warrant, decision: PolicyDecision, ctx: Context,
                  policy_hash: str) -> Verdict | str:
    """For an action the policy puts to a vote: propose, wait or deny (a Verdict), or the approving vote's id."""
    wid = grant.warrant_id
    aid = authority_id(wid, request.key)
    found = ctx.vote(aid)
    if found is None or found.proposed is None:
        try:
            ask = votes.propose(vote_id=aid, subject=f"{request.action} {request.target}", kind="action",
                                options=["approve", "reject"], quorum=decision.quorum,
                                deadline=ctx.now + decision.deadline_s,
                                voters=approvals.pinned(decision.voters, ctx.approvers),
                                proposer=ctx.requester, payload={"digest": _digest(request), "warrant": wid,
                                                                  "policy": policy_hash})
        except VoteError as exc:
            return _deny(request, wid, ctx, "vote", f"rule {decision.rule!r} puts the action to a vote that cannot "
                         f"be held: {exc}", rule=decision.rule)
        return Verdict("pending", f"{decision.reason}: waiting for a vote ({aid})", ask=(streams.vote(aid), ask),
                       authority_id=aid)
    proposal = found.proposed
    if proposal.payload.get("digest") != _digest(request) or proposal.payload.get("policy") != policy_hash:
        return _deny(request, wid, ctx, "vote", f"the action is not the one vote {aid} is about, or the policy "
                     "changed since", rule=decision.rule)
    if found.decided is None:
        return Verdict("pending", f"waiting for the vote: {len(found.ballots)} of {proposal.quorum} ({aid})",
                       authority_id=aid)
    if found.decided.outcome != "approve":
        return _deny(request, wid, ctx, "vote", f"vote {aid} decided {found.decided.outcome}: {found.decided.reason}",
                     rule=decision.rule)
    return aid


def _extended(request: ActionRequest, grant: warrant.Warrant, ledger: WarrantLedger, cost: Budget, limit: Budget,
              policy: PolicyView, ctx: Context) -> Verdict | Budget:
    """For an action the warrant's budget (``limit``: as issued, with the extensions recorded) cannot hold: the limit
    with the extensions granted since, if it holds the action now; else the verdict.

    Without a ``budget.extend`` rule for the role, the action is denied (``budget``). With one,
    the next extension — ``budget.extend#<n>`` of the warrant, one at a time — is asked for as the
    rule says (approvals or a vote) and the action waits for it; a refused extension denies it.
    What an extension adds (:func:`governance.budget.extension`) is in what the approvers sign.
    """
    wid = grant.warrant_id
    for n in range(len(ledger.extensions) + 1, len(ledger.extensions) + 100):
        exhausted = f"{budget.over(ledger.used, cost, limit)} (warrant {wid})"
        decision = policy.decide(budget.EXTEND, grant.role)
        if decision.effect not in ("approve", "vote"):
            return _deny(request, wid, ctx, "budget", exhausted)
        aid = authority_id(wid, f"{budget.EXTEND}#{n}")
        amount = budget.extension(budget.shortfall(ledger.used, cost, limit), grant.budget,
                                  policy.budget_for("extension"))
        gated = (_extension_approval if decision.effect == "approve" else _extension_vote)(
            request, grant, decision, ctx, policy.hash, aid, amount, exhausted)
        if isinstance(gated, Verdict):
            return gated
        limit = budget.widen(limit, gated)  # granted, not yet recorded by the council: it counts already
        if budget.over(ledger.used, cost, limit) is None:
            return limit
    return _deny(request, wid, ctx, "budget", f"warrant {wid} asked for 100 extensions; ask for a larger one")


def _extension_approval(request: ActionRequest, grant: warrant.Warrant, decision: PolicyDecision, ctx: Context,
                        policy_hash: str, aid: str, amount: Budget, exhausted: str) -> Verdict | Budget:
    """Ask for, wait on or read the approval of one extension: a Verdict, or the extension it granted."""
    wid = grant.warrant_id
    found = ctx.approval(aid)
    if found is None or found.requested is None:
        spec = ActionSpec(action=budget.EXTEND, target=budget.render(amount), warrant_id=wid, policy_hash=policy_hash,
                          arguments_digest=arguments_digest({"exhausted": exhausted, "action": request.action,
                                                             "target": request.target}),
                          nonce=new_nonce(), expires_at=min(ctx.now + APPROVAL_TTL, grant.expires_at),
                          requester=ctx.requester)
        try:
            ask = approvals.request(approval_id=aid, spec=spec, needed=decision.approvals,
                                    approvers=decision.approvers, keys=ctx.approvers, rule=decision.rule or "",
                                    task_id=grant.task_id)
        except ApprovalError as exc:
            return _deny(request, wid, ctx, "budget", f"{exhausted}; no extension can be asked for: {exc}",
                         rule=decision.rule)
        return Verdict("pending", f"{exhausted}; asked for an extension of {spec.target} under rule "
                       f"{decision.rule!r}: waiting for {decision.approvals} approval(s) ({aid})",
                       ask=(streams.approval(aid), ask), authority_id=aid)
    if found.refused is not None:
        return _deny(request, wid, ctx, "budget", f"{exhausted}; the extension {aid} was refused: "
                     f"{found.refused.reason}", rule=decision.rule)
    if found.granted is None:
        return Verdict("pending", f"{exhausted}; waiting for the extension {found.requested.spec.target}: "
                       f"{len(found.approvals)} of {found.requested.needed} approval(s) ({aid})", authority_id=aid)
    return budget.parse(found.requested.spec.target)


def _extension_vote(request: ActionRequest, grant: warrant.Warrant, decision: PolicyDecision, ctx: Context,
                    policy_hash: str, aid: str, amount: Budget, exhausted: str) -> Verdict | Budget:
    """Propose, wait on or read the vote on one extension: a Verdict, or the extension it granted."""
    wid = grant.warrant_id
    found = ctx.vote(aid)
    if found is None or found.proposed is None:
        try:
            ask = votes.propose(vote_id=aid, subject=f"extend warrant {wid} by {budget.render(amount)}: {exhausted}",
                                kind=budget.EXTEND, options=["approve", "reject"], quorum=decision.quorum,
                                deadline=ctx.now + decision.deadline_s,
                                voters=approvals.pinned(decision.voters, ctx.approvers), proposer=ctx.requester,
                                payload={"warrant": wid, "extension": budget.render(amount), "policy": policy_hash})
        except VoteError as exc:
            return _deny(request, wid, ctx, "budget", f"{exhausted}; no extension can be put to a vote: {exc}",
                         rule=decision.rule)
        return Verdict("pending", f"{exhausted}; asked for an extension of {budget.render(amount)} under rule "
                       f"{decision.rule!r}: waiting for a vote ({aid})", ask=(streams.vote(aid), ask),
                       authority_id=aid)
    if found.decided is None:
        return Verdict("pending", f"{exhausted}; waiting for the vote on the extension "
                       f"{found.proposed.payload.get('extension')}: {len(found.ballots)} of {found.proposed.quorum} "
                       f"({aid})", authority_id=aid)
    if found.decided.outcome != "approve":
        return _deny(request, wid, ctx, "budget", f"{exhausted}; the vote on extension {aid} decided "
                     f"{found.decided.outcome}: {found.decided.reason}", rule=decision.rule)
    return budget.parse(found.proposed.payload.get("extension", ""))


def _spec(request: ActionRequest, warrant_id: str, ctx: Context, policy_hash: str, nonce: str,
          expires_at: float) -> ActionSpec:
    return ActionSpec(action=request.action, target=request.target, environment=request.environment,
                      artifacts=dict(request.artifacts), arguments_digest=arguments_digest(request.arguments),
                      warrant_id=warrant_id, policy_hash=policy_hash, nonce=nonce, expires_at=expires_at,
                      requester=ctx.requester)


def _digest(request: ActionRequest) -> str:
    """The digest of what the action does (not of who asks or how much it costs)."""
    return digest({"action": request.action, "target": request.target, "resource": request.resource,
                   "environment": request.environment, "arguments": request.arguments,
                   "artifacts": request.artifacts})


def _short(target: str, limit: int = 200) -> str:
    return repr(target if len(target) <= limit else target[:limit] + "…")


def _deny(request: ActionRequest, warrant_id: str | None, ctx: Context, kind: DenialKind, reason: str,
          rule: str | None = "") -> Verdict:
    policy_hash = ctx.policy.hash if ctx.policy is not None else None
    event = ActionDenied(warrant_id=warrant_id, agent_id=request.agent_id, action=request.action, target=request.target,
                         environment=request.environment, key=request.key, reason=reason[:4000],
                         policy_hash=policy_hash, rule=rule or "", kind=kind)
    ledger = ctx.ledger
    if warrant_id is not None and ledger is not None and ledger.issued is not None:
        return Verdict("denied", reason, streams.warrant(warrant_id), ledger.version, (event,), denial=kind)
    return Verdict("denied", reason, streams.gate(request.agent_id), None, (event,), denial=kind)
