"""Motions: what people bring before the council, decided into intents for the log.

A person proposes a policy, signs or rejects an approval request, casts a ballot, or puts a budget
allocation to a vote. (Revoking a warrant is the council's own act:
:meth:`~governance.authority.Authority.revocations`, asked of the council actor.) Each motion is decided here, from the
:class:`~governance.authority.Authority` folded from the log, by a plain function — no I/O, no
Ray — as intents (:class:`events.Intent`) that whoever holds the log appends: the store actor
when a council runs, the log file itself when none does. A motion the log does not allow raises the
reason (an :class:`~governance.errors.GovernanceError`) before any intent exists, so a refused
motion writes nothing.

Every intent carries the version of the stream it was decided from (``NO_STREAM`` for a stream it
starts): if anything landed on that stream between the decision and the append — another
signature, another ballot, another adoption — the append is refused, not duplicated, and the
motion must be decided again from the log as it is then.
"""

from __future__ import annotations

import secrets

from events import NO_STREAM, Intent, streams
from events.catalogue import ActionSpec, PolicyProposed
from governance import approvals, budget, votes
from governance.authority import Authority
from governance.errors import ApprovalError, GovernanceError, VoteError
from governance.keys import SigningKey
from governance.policy import Policy

PROPOSER_ROLE = "human"
"""The role a person bringing a motion acts in, as policy rules see it."""

POLICY_CHANGE_TTL = 7 * 24 * 3600.0
"""How long a policy change's approval request stays open (seconds)."""


def new_id(prefix: str) -> str:
    """A fresh motion id: ``prefix``, a dash and 64 random bits (hex)."""
    return f"{prefix}-{secrets.token_hex(8)}"


# -- policies ---------------------------------------------------------------------------------


def policy_change_spec(new_hash: str, current_hash: str, requester: str, now: float) -> ActionSpec:
    """The exact action a policy change is — adopt ``new_hash`` in place of ``current_hash`` — as approvers sign it."""
    return ActionSpec(action="policy.change", target=new_hash, environment=None, artifacts={"policy": new_hash},
                      arguments_digest=approvals.arguments_digest({"policy": new_hash}), warrant_id="policy",
                      policy_hash=current_hash, nonce=approvals.new_nonce(), expires_at=now + POLICY_CHANGE_TTL,
                      requester=requester)


def propose_policy(authority: Authority, candidate: Policy, proposer: str, now: float, pinned: dict[str, str], *,
                   source: str | None = None, motion_id: str | None = None) -> list[Intent]:
    """What proposing ``candidate`` appends, as the policy in force's ``policy.change`` rule decides.

    ``proposer`` is the proposer's key fingerprint; ``pinned`` maps the candidate's approvers to
    their key fingerprints (pinned if the candidate is adopted outright); ``source`` names the
    candidate in refusals (its file). The candidate's text is recorded first unless it was
    proposed before. Then, by the rule's effect: ``approve`` asks for an approval
    (``pc-<id>``), ``vote`` opens a vote (``pv-<id>``), ``allow`` adopts it now; ``motion_id``
    overrides the fresh id. Refused with :class:`GovernanceError` when no policy is in force,
    the candidate is the policy in force, or the rule denies changing it; with
    :class:`ApprovalError` or :class:`VoteError` when the approval or vote it would open could
    never be decided (too few of the rule's approvers or voters have pinned keys).
    """
    current = authority.current()
    if current is None:
        raise GovernanceError("no policy is in force yet; `council up --policy FILE` adopts the first one")
    if candidate.hash == current.hash:
        raise GovernanceError(f"{source or f'policy {candidate.name!r}'} is the policy already in force "
                              f"({current.hash[:12]}…)")
    decision = current.decide("policy.change", PROPOSER_ROLE)
    if decision.effect not in ("approve", "vote", "allow"):
        raise GovernanceError(f"the policy in force does not allow changing it: {decision.reason}")
    intents = [] if candidate.hash in authority.proposals else [Intent(
        streams.proposal(candidate.hash),
        [PolicyProposed(policy_hash=candidate.hash, text=candidate.text, proposed_by=proposer)], NO_STREAM)]
    approvers = authority.policy.approvers
    if decision.effect == "approve":
        aid = motion_id or new_id("pc")
        spec = policy_change_spec(candidate.hash, current.hash, proposer, now)
        requested = approvals.request(approval_id=aid, spec=spec, needed=decision.approvals,
                                      approvers=decision.approvers, keys=approvers, rule=decision.rule or "")
        return [*intents, Intent(streams.approval(aid), [requested], NO_STREAM)]
    if decision.effect == "vote":
        vid = motion_id or new_id("pv")
        proposal = votes.propose(vote_id=vid, subject=f"adopt policy {candidate.name!r} ({candidate.hash[:12]}…)",
                                 kind="policy.change", options=["adopt", "reject"], quorum=decision.quorum,
                                 deadline=now + decision.deadline_s,
                                 voters=approvals.pinned(decision.voters, approvers),
                                 proposer=proposer, payload={"policy": candidate.hash})
        return [*intents, Intent(streams.vote(vid), [proposal], NO_STREAM)]
    return [*intents, authority.adopt(candidate, pinned, by=proposer, authority=f"rule {decision.rule}")]


# -- approvals --------------------------------------------------------------------------------


def sign(authority: Authority, approval_id: str, signer: SigningKey, now: float,
         reject_reason: str | None = None) -> Intent:
    """``signer``'s approval of request ``approval_id`` — or, with a ``reject_reason``, its rejection.

    Refused with :class:`ApprovalError` and the reason if the request does not exist or the
    signature could not count now (:func:`governance.approvals.admit`: decided already, expired,
    the policy changed, the requester's own key, a key twice, not an approver). The intent is at
    the version of the request's stream it was decided from.
    """
    ledger = authority.approvals.get(approval_id)
    if ledger is None or ledger.requested is None:
        raise ApprovalError(f"there is no approval request {approval_id}; list them with `council approvals`")
    event = (approvals.sign_approval(signer, ledger.requested) if reject_reason is None
             else approvals.sign_rejection(signer, ledger.requested, reject_reason))
    adopted = authority.policy.adopted
    approvals.admit(ledger, event, now=now, policy_hash=adopted.policy_hash if adopted else "")
    return Intent(streams.approval(approval_id), [event], ledger.version)


# -- votes ------------------------------------------------------------------------------------


def cast_ballot(authority: Authority, vote_id: str, option: str, signer: SigningKey, now: float) -> Intent:
    """``signer``'s signed ballot for ``option`` in vote ``vote_id``, at the version of the vote's stream.

    Refused with :class:`VoteError` and the reason if there is no such vote or the ballot could
    not count now (:func:`governance.votes.admit`: decided, closed, not an option, not a voter,
    voted already).
    """
    ledger = authority.votes.get(vote_id)
    if ledger is None or ledger.proposed is None:
        raise VoteError(f"there is no vote {vote_id}; list them with `council vote list`")
    ballot = votes.cast(signer, ledger.proposed, option)
    votes.admit(ledger, ballot, now=now)
    return Intent(streams.vote(vote_id), [ballot], ledger.version)


def budget_options(allocation: list[str]) -> dict[str, str]:
    """The options of a budget vote from ``REQUEST_ID:field=value,...`` items: request id → the item.

    Refused with :class:`GovernanceError` for an item of another shape, a request named twice, an
    unknown budget field or an amount that is not a number.
    """
    options: dict[str, str] = {}
    for item in allocation:
        request_id, sep, amounts = item.partition(":")
        if not sep or not request_id:
            raise GovernanceError(f"{item!r} is not REQUEST_ID:field=value,...; e.g. r-1:tokens=5000,money=2")
        if request_id in options:
            raise GovernanceError(f"request {request_id} is named twice; give each request one option")
        try:
            budget.parse(amounts)
        except ValueError:
            raise GovernanceError(f"{item!r} has an amount that is not a number; "
                                  "e.g. r-1:tokens=5000,money=2") from None
        options[request_id] = f"{request_id}:{amounts}"
    return options


def propose_budget_vote(authority: Authority, options: dict[str, str], proposer: str, now: float, *,
                        subject: str = "", motion_id: str | None = None) -> Intent:
    """A vote (``bv-<id>``, or ``motion_id``) between budget allocations, as the ``budget.allocate`` rule sets it.

    ``options`` come from :func:`budget_options`; the winner's allocation becomes its request's
    budget. Refused with :class:`GovernanceError` when no policy is in force or it does not put
    budget allocation to a vote, and :class:`VoteError` when the vote could never be decided.
    """
    policy = authority.current()
    if policy is None:
        raise GovernanceError("no policy is in force in this log")
    decision = policy.decide("budget.allocate", PROPOSER_ROLE)
    if decision.effect != "vote":
        raise GovernanceError(f"the policy in force does not put budget allocation to a vote: {decision.reason}")
    vid = motion_id or new_id("bv")
    proposal = votes.propose(vote_id=vid, subject=subject or f"budget for {', '.join(options)}",
                             kind="budget.allocate", options=list(options), quorum=decision.quorum,
                             deadline=now + decision.deadline_s,
                             voters=approvals.pinned(decision.voters, authority.policy.approvers),
                             proposer=proposer, payload=options)
    return Intent(streams.vote(vid), [proposal], NO_STREAM)

