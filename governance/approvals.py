"""Multi-signature approvals: an exact action, k distinct authorised keys, once.

An action that a policy gates behind approvals is written down as an :class:`ActionSpec` — the
action, its target, environment, artifact digests, arguments digest, warrant, policy hash, a
fresh nonce, an expiry and who asked — and approvers sign its SHA-256 digest. Because every field
is inside the digest, a signature is worth nothing for any other action, any other request (the
nonce), after the policy changed, or after the expiry. The rules a signature must meet, and the
tally, are here as plain functions over an :class:`ApprovalLedger` (the fold of one approval's
stream); the council actor appends what they decide.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events.catalogue import (
    ActionSpec,
    ApprovalGranted,
    ApprovalRefused,
    ApprovalRejected,
    ApprovalRequested,
    ApprovalSigned,
)
from events.registry import Event
from governance.errors import ApprovalError
from governance.keys import PublicKey, SigningKey, fingerprint
from governance.signing import digest, sign, verify

APPROVE, REJECT = "approval", "rejection"


def new_nonce() -> str:
    """A fresh random nonce for an action spec (128 bits, hex)."""
    return secrets.token_hex(16)


def spec_digest(spec: ActionSpec) -> str:
    """The digest approvers sign: SHA-256 of the spec's canonical bytes."""
    return digest(spec)


def arguments_digest(arguments: Any) -> str:
    """The digest of an action's arguments (any plain data), as a spec records it."""
    return digest(arguments)


def pinned(names: Iterable[str], keys: Mapping[str, str]) -> dict[str, str]:
    """Those of ``names`` (a rule's approvers or voters) whose keys are pinned in ``keys`` (name → fingerprint, as the
    policy in force's adoption pinned them): name → fingerprint, in the order named. Only a pinned key can sign."""
    return {name: keys[name] for name in names if name in keys}


def request(*, approval_id: str, spec: ActionSpec, needed: int, approvers: Iterable[str], keys: Mapping[str, str],
            rule: str, task_id: str | None = None) -> ApprovalRequested:
    """The request for ``needed`` approvals of exactly ``spec``, by those of ``approvers`` whose keys are pinned in
    ``keys`` (the counterpart of :func:`governance.votes.propose`).

    Raises :class:`ApprovalError` for a request that could never be granted: fewer than ``needed``
    of the approvers can sign (their key is pinned, and is not the requester's own, which never
    counts). Nothing is asked then.
    """
    named = tuple(approvers)
    signers = pinned(named, keys)
    able = [name for name, key in signers.items() if key != spec.requester]
    if len(able) < needed:
        requester = " other than the requester" if len(able) < len(signers) else ""
        raise ApprovalError(f"rule {rule!r} needs {needed} approvals but only {len(able)} of its approvers "
                            f"({', '.join(named) or 'none'}) have pinned keys{requester}, so it could never be "
                            "granted; adopt a policy whose approvers' keys are in the council's keyring, or ask for "
                            "fewer approvals")
    return ApprovalRequested(approval_id=approval_id, digest=spec_digest(spec), spec=spec, needed=needed,
                             approvers=signers, rule=rule, task_id=task_id)


def _statement(approval_id: str, spec_hash: str, reason: str = "") -> dict[str, str]:
    return {"approval_id": approval_id, "digest": spec_hash, "reason": reason}


def sign_approval(key: SigningKey, requested: ApprovalRequested) -> ApprovalSigned:
    """``key``'s approval of exactly the action ``requested`` names."""
    signature = sign(key, APPROVE, _statement(requested.approval_id, requested.digest))
    return ApprovalSigned(approval_id=requested.approval_id, digest=requested.digest, key=key.public.fingerprint,
                          public_key=key.public.raw, signature=signature)


def sign_rejection(key: SigningKey, requested: ApprovalRequested, reason: str = "") -> ApprovalRejected:
    """``key``'s rejection of the action ``requested`` names."""
    signature = sign(key, REJECT, _statement(requested.approval_id, requested.digest, reason))
    return ApprovalRejected(approval_id=requested.approval_id, digest=requested.digest, key=key.public.fingerprint,
                            public_key=key.public.raw, signature=signature, reason=reason)


@dataclass
class ApprovalLedger:
    """The fold of one ``approval-<id>`` stream: the request, valid signatures by key, and how it ended."""

    requested: ApprovalRequested | None = None
    approvals: dict[str, ApprovalSigned] = field(default_factory=dict)
    rejections: dict[str, ApprovalRejected] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    """Why signatures in the log did not count (someone appended them without the checks)."""
    granted: ApprovalGranted | None = None
    refused: ApprovalRefused | None = None
    version: int = 0

    def evolve(self, event: Event, at: float | None = None) -> None:
        """Fold one event of the stream, recorded at ``at``; a signature counts only if :func:`check_signature`
        accepts it then."""
        self.version += 1
        if isinstance(event, ApprovalRequested):
            self.requested = event
        elif isinstance(event, ApprovalSigned | ApprovalRejected):
            reason = check_signature(self, event, now=at, policy_hash=None)
            if reason is not None:
                self.ignored.append(reason)
            elif isinstance(event, ApprovalSigned):
                self.approvals[event.key] = event
            else:
                self.rejections[event.key] = event
        elif isinstance(event, ApprovalGranted):
            self.granted = event
        elif isinstance(event, ApprovalRefused):
            self.refused = event

    @property
    def open(self) -> bool:
        """Whether the request still waits for a decision."""
        return self.requested is not None and self.granted is None and self.refused is None


def check_signature(ledger: ApprovalLedger, event: ApprovalSigned | ApprovalRejected, *, now: float | None,
                    policy_hash: str | None) -> str | None:
    """Why ``event`` cannot count towards ``ledger``'s request, or None if it can.

    ``now`` and ``policy_hash`` (when given) also refuse a signature after the request expired or
    after the policy in force changed. The reasons are sentences for the person who signed.
    """
    requested = ledger.requested
    what = "approval" if isinstance(event, ApprovalSigned) else "rejection"
    if requested is None:
        return f"there is no approval request {event.approval_id}"
    if ledger.granted is not None:
        return f"approval {event.approval_id} is already granted"
    if ledger.refused is not None:
        return f"approval {event.approval_id} is already refused ({ledger.refused.reason})"
    if event.digest != requested.digest:
        return (f"the {what} signs digest {event.digest[:16]}…, but request {event.approval_id} is for "
                f"{requested.digest[:16]}…: it is for a different action, request or nonce")
    if fingerprint(event.public_key) != event.key:
        return f"the {what}'s public key does not have the fingerprint {event.key} it claims"
    names = {fp: name for name, fp in requested.approvers.items()}
    if event.key == requested.spec.requester:
        return "the requester's own key never counts towards its approval"
    if event.key not in names:
        return (f"key {event.key} is not one of the approvers of {event.approval_id} "
                f"({', '.join(requested.approvers)})")
    if event.key in ledger.approvals or event.key in ledger.rejections:
        return f"{names[event.key]} ({event.key}) has already signed {event.approval_id}; a key counts once"
    purpose = APPROVE if isinstance(event, ApprovalSigned) else REJECT
    statement = _statement(event.approval_id, event.digest, getattr(event, "reason", ""))
    if not verify(PublicKey(names[event.key], event.public_key), purpose, statement, event.signature):
        return f"the {what} signature of {names[event.key]} does not verify"
    if now is not None and now >= requested.spec.expires_at:
        return f"approval request {event.approval_id} expired at {requested.spec.expires_at:.0f}"
    if policy_hash is not None and policy_hash != requested.spec.policy_hash:
        return (f"the policy changed since {event.approval_id} was requested (was {requested.spec.policy_hash[:12]}…, "
                f"now {policy_hash[:12]}…): its approvals no longer count; the action must be asked for again")
    return None


def admit(ledger: ApprovalLedger, event: ApprovalSigned | ApprovalRejected, *, now: float, policy_hash: str) -> None:
    """Raise :class:`ApprovalError` with the reason if ``event`` cannot count; used before appending it."""
    reason = check_signature(ledger, event, now=now, policy_hash=policy_hash)
    if reason is not None:
        raise ApprovalError(reason)


def tally(ledger: ApprovalLedger, *, now: float, policy_hash: str) -> ApprovalGranted | ApprovalRefused | None:
    """What the council should record for an open request now: granted, refused, or None (still waiting)."""
    requested = ledger.requested
    if requested is None or not ledger.open:
        return None
    if policy_hash != requested.spec.policy_hash:
        return ApprovalRefused(approval_id=requested.approval_id, digest=requested.digest,
                               reason=f"the policy changed to {policy_hash[:12]}… after the request; ask again")
    if len(ledger.approvals) >= requested.needed:
        return ApprovalGranted(approval_id=requested.approval_id, digest=requested.digest,
                               keys=sorted(ledger.approvals)[: max(requested.needed, len(ledger.approvals))])
    if now >= requested.spec.expires_at:
        return ApprovalRefused(approval_id=requested.approval_id, digest=requested.digest,
                               reason=f"expired with {len(ledger.approvals)} of {requested.needed} approvals")
    possible = len([fp for fp in requested.approvers.values() if fp != requested.spec.requester])
    if possible - len(ledger.rejections) < requested.needed:
        who = ", ".join(sorted(r.reason or "no reason" for r in ledger.rejections.values()))
        return ApprovalRefused(approval_id=requested.approval_id, digest=requested.digest,
                               reason=f"rejected by {len(ledger.rejections)} approver(s): {who}")
    return None
