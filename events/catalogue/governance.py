"""The council's events: policies, warrants, the gate's decisions, approvals, votes, checkpoints.

Streams::

    policy                    policy.adopted (each policy in force, in order)
    policy-<hash>             policy.proposed (a candidate, by its hash, with its full text)
    warrant-<warrant id>      warrant.issued, warrant.revoked, then the gate's record of every
                              action under it: action.authorized | action.denied, action.completed
    gate-<agent id>           action.denied for an action tried with no usable warrant at all
    approval-<approval id>    approval.requested, approval.signed | approval.rejected,
                              approval.granted | approval.refused
    vote-<vote id>            vote.proposed, vote.cast, vote.decided
    checkpoints               checkpoint.signed (signed tree heads of the ledger)

Signed objects travel as their canonical bytes with the signature beside them, so anyone can
check a signature against exactly what was signed without this package knowing its type. Keys
are named by fingerprint (see ``governance.keys``). Times are UTC epoch seconds.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from events.catalogue.fields import Count, Id, Seconds, Text
from events.registry import Event, event_type

Fingerprint = Annotated[str, Meta(min_length=1, max_length=64)]
"""A key's fingerprint (32 hex digits), or an agent's identity."""

Digest = Annotated[str, Meta(min_length=64, max_length=64)]
"""A SHA-256 digest in hex."""

Signature = Annotated[bytes, Meta(min_length=64, max_length=64)]
"""An Ed25519 signature."""

RawKey = Annotated[bytes, Meta(min_length=32, max_length=32)]
"""A raw Ed25519 public key, carried beside a signature so it can be checked offline against its fingerprint."""

Name = Annotated[str, Meta(min_length=1, max_length=200)]
"""An action (``file.write``), a rule name, a role, an environment."""

Target = Annotated[str, Meta(max_length=4096)]
"""What an action acts on: a path, a command line as text, an environment, a model."""


LimitName = Literal["cpu", "wall_time", "address_space", "processes", "file_size", "open_files"]
"""A resource limit a command runs under (see :class:`Confinement`)."""


class Confinement(msgspec.Struct, frozen=True, kw_only=True):
    """The terms a command runs under, decided by the policy: in a sandbox or not, network or not, its limits.

    ``sandbox = "off"`` is the policy's explicit choice to run commands as plain processes; it is
    recorded on every action it affects. The limits apply per process (CPU seconds, address space,
    largest file, open files) or to the whole command (wall time, number of processes).
    """

    sandbox: Literal["bubblewrap", "off"]
    network: bool = False
    cpu_s: Annotated[int, Meta(ge=1)]
    wall_time_s: Annotated[float, Meta(gt=0)]
    address_space: Annotated[int, Meta(ge=1 << 20)]
    """Bytes of virtual memory one process may map."""
    processes: Annotated[int, Meta(ge=1)]
    file_size: Annotated[int, Meta(ge=1)]
    """Bytes: the largest file a command may write."""
    open_files: Annotated[int, Meta(ge=16)]


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one action, as an approval request names it; approvers sign the digest of these fields.

    Any change to the action — another target, other arguments, another artifact, another
    warrant or policy — gives another digest, so a signature never carries over to it.
    """

    action: Name
    target: Target
    environment: Name | None = None
    artifacts: dict[str, Digest] = {}
    arguments_digest: Digest
    warrant_id: Id
    policy_hash: Digest
    nonce: Annotated[str, Meta(min_length=16, max_length=64)]
    expires_at: Seconds
    requester: Fingerprint


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """Limits (a warrant's or a policy's) or amounts used; None is "no limit"."""

    tokens: Count | None = None
    money: Annotated[float, Meta(ge=0)] | None = None
    wall_time_s: Seconds | None = None
    actions: Count | None = None


# -- policies ----------------------------------------------------------------------------------


@event_type("policy.proposed")
class PolicyProposed(Event, frozen=True, kw_only=True):
    """A policy text was put forward; it is in force only once ``policy.adopted`` names its hash."""

    policy_hash: Digest
    text: Text
    proposed_by: Fingerprint


@event_type("policy.adopted")
class PolicyAdopted(Event, frozen=True, kw_only=True):
    """The policy with this hash is in force from here on; ``approvers`` pins each named approver's key."""

    policy_hash: Digest
    name: Name
    text: Text
    approvers: dict[str, Fingerprint] = {}
    adopted_by: Text
    authority: Text = ""
    """Why it could be adopted: "first policy", "approval <id>", "vote <id>"."""


# -- warrants ----------------------------------------------------------------------------------


@event_type("warrant.issued")
class WarrantIssued(Event, frozen=True, kw_only=True):
    """The council signed a warrant; ``warrant`` is its canonical bytes, ``signature`` covers them."""

    warrant_id: Id
    holder: Id
    task_id: Id | None = None
    request_id: Id | None = None
    parent_id: Id | None = None
    warrant: bytes
    signature: Signature
    issuer: Fingerprint


@event_type("warrant.revoked")
class WarrantRevoked(Event, frozen=True, kw_only=True):
    """The warrant stops working now; ``cause_id`` is the warrant whose revocation reached this one."""

    warrant_id: Id
    cause_id: Id
    reason: Text
    revoked_by: Text


# -- the gate ----------------------------------------------------------------------------------


@event_type("action.authorized")
class ActionAuthorized(Event, frozen=True, kw_only=True):
    """The gate let an action through; written before the action runs (its intent record)."""

    warrant_id: Id
    agent_id: Id
    action: Name
    target: Target
    environment: Name | None = None
    key: Id
    """The action's idempotency key: the same key is never run twice."""
    digest: Digest
    policy_hash: Digest
    rule: Text
    cost: Budget = Budget()
    """What the action is charged against its warrant's budget before it runs (estimates)."""
    approval_id: Id | None = None
    network: bool = False
    """Whether the rule that allowed it grants the command it runs the network (the policy's ``network = true``)."""


DenialKind = Literal["no-warrant", "warrant", "holder", "scope", "policy", "approval", "vote", "budget",
                     "nondeterministic", "race", "error"]
"""Why the gate refused an action, as a kind a program can act on (the ``reason`` says it in words):

* ``no-warrant``: no warrant of that id is in the log;
* ``warrant``: the warrant or one of its ancestors does not verify: forged, widening its parent,
  not valid yet, expired or revoked;
* ``holder``: the warrant is held by another agent;
* ``scope``: the action, its resource or its environment is outside the warrant;
* ``policy``: no policy is in force, or the policy denies the action;
* ``approval``: the approval the action needs cannot be had or does not fit it: refused, expired,
  used already, asked for another action or under another policy, or not enough approvers' keys;
* ``vote``: the vote the action needs cannot be held, was decided against it, or is about another action;
* ``budget``: the warrant's budget cannot hold the action;
* ``nondeterministic``: the idempotency key names another action already (the skill took another
  path on this attempt than on its first);
* ``race``: the warrant's stream kept changing while the gate decided;
* ``error``: the decision itself failed (the gate fails closed).
"""


@event_type("action.denied")
class ActionDenied(Event, frozen=True, kw_only=True):
    """The gate refused an action, and why; nothing was done."""

    warrant_id: Id | None = None
    agent_id: Id
    action: Name
    target: Target
    environment: Name | None = None
    key: Id
    reason: Text
    policy_hash: Digest | None = None
    rule: Text = ""
    kind: DenialKind | None = None
    """What kind of denial it is; None for denials recorded before the gate named kinds."""


@event_type("action.completed")
class ActionCompleted(Event, frozen=True, kw_only=True):
    """An authorised action ran; its outcome and what it really cost (the outcome record)."""

    warrant_id: Id
    key: Id
    ok: bool
    cost: Budget = Budget()
    result_digest: Digest | None = None
    error: Text = ""
    output_digest: Digest | None = None
    """For a command: SHA-256 of all it printed (stdout, a NUL, stderr); the output itself is never stored."""
    confinement: Confinement | None = None
    """For an action that ran commands: the terms they ran under (sandboxed or not, network, limits)."""
    limits_hit: list[LimitName] = []
    """The limits a command broke, and was stopped for."""


# -- approvals ---------------------------------------------------------------------------------


@event_type("approval.requested")
class ApprovalRequested(Event, frozen=True, kw_only=True):
    """An action waits for ``needed`` signatures from ``approvers`` over ``digest`` (the digest of ``spec``)."""

    approval_id: Id
    digest: Digest
    spec: ActionSpec
    needed: Annotated[int, Meta(ge=1)]
    approvers: dict[str, Fingerprint]
    rule: Text
    task_id: Id | None = None


@event_type("approval.signed")
class ApprovalSigned(Event, frozen=True, kw_only=True):
    """An approver signed the action's digest."""

    approval_id: Id
    digest: Digest
    key: Fingerprint
    public_key: RawKey
    signature: Signature


@event_type("approval.rejected")
class ApprovalRejected(Event, frozen=True, kw_only=True):
    """An approver signed a rejection of the action's digest."""

    approval_id: Id
    digest: Digest
    key: Fingerprint
    public_key: RawKey
    signature: Signature
    reason: Text = ""


@event_type("approval.granted")
class ApprovalGranted(Event, frozen=True, kw_only=True):
    """Enough distinct authorised keys signed: the action may run, once, until the request expires."""

    approval_id: Id
    digest: Digest
    keys: list[Fingerprint]


@event_type("approval.refused")
class ApprovalRefused(Event, frozen=True, kw_only=True):
    """The request can no longer be granted: rejected, expired, or the policy changed."""

    approval_id: Id
    digest: Digest
    reason: Text


# -- votes -------------------------------------------------------------------------------------


@event_type("vote.proposed")
class VoteProposed(Event, frozen=True, kw_only=True):
    """A question put to ``voters`` with ``options``; decided at ``quorum`` votes or at ``deadline``."""

    vote_id: Id
    subject: Text
    kind: Name
    """What the outcome does: ``policy.change`` adopts a policy, ``budget.allocate`` sets a request's budget."""
    options: list[Name]
    quorum: Annotated[int, Meta(ge=1)]
    deadline: Seconds
    voters: dict[str, Fingerprint]
    proposer: Fingerprint
    payload: dict[str, str] = {}
    """What the kind needs: the policy hash; the request ids by option."""
    digest: Digest
    """The digest of the proposal's signed fields; each vote signs it together with its option."""


@event_type("vote.cast")
class VoteCast(Event, frozen=True, kw_only=True):
    """A voter's signed choice."""

    vote_id: Id
    option: Name
    key: Fingerprint
    public_key: RawKey
    signature: Signature


@event_type("vote.decided")
class VoteDecided(Event, frozen=True, kw_only=True):
    """The tally: ``outcome`` is the winning option, or "no decision" without quorum or on a tie."""

    vote_id: Id
    outcome: Name
    tally: dict[str, Count]
    reason: Text


@event_type("budget.allocated")
class BudgetAllocated(Event, frozen=True, kw_only=True):
    """A request's budget was set (by a vote, or by the policy's default when it was submitted)."""

    request_id: Id
    budget: Budget
    authority: Text


@event_type("budget.extended")
class BudgetExtended(Event, frozen=True, kw_only=True):
    """A warrant's budget was widened by ``extension``, because the approval or vote ``authority`` granted it.

    Appended by the council to the warrant's own stream once the policy's ``budget.extend`` rule
    granted the extension the gate asked for when the warrant ran out; the gate then allows the
    warrant's limits plus every extension in its stream."""

    warrant_id: Id
    request_id: Id | None = None
    task_id: Id | None = None
    extension: Budget
    authority: Id
    """The approval or vote that granted it."""


# -- checkpoints -------------------------------------------------------------------------------


@event_type("checkpoint.signed")
class CheckpointSigned(Event, frozen=True, kw_only=True):
    """The council signed the ledger's Merkle root over the first ``tree_size`` events (a signed tree head)."""

    tree_size: Annotated[int, Meta(ge=1)]
    root: Annotated[bytes, Meta(min_length=32, max_length=32)]
    at: Seconds
    origin: Annotated[bytes, Meta(min_length=32, max_length=32)]
    """The hash of the log's first event: which log this is."""
    key: Fingerprint
    signature: Signature


__all__ = [
    "ActionAuthorized", "ActionCompleted", "ActionDenied", "ActionSpec", "ApprovalGranted", "ApprovalRefused",
    "ApprovalRejected", "ApprovalRequested", "ApprovalSigned", "Budget", "BudgetAllocated", "BudgetExtended",
    "CheckpointSigned", "DenialKind", "PolicyAdopted", "PolicyProposed", "VoteCast", "VoteDecided", "VoteProposed",
    "WarrantIssued", "WarrantRevoked",
]
