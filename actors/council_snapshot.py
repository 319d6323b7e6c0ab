"""The council's state as snapshot bytes, and back (the hooks of :class:`actors.snapshots.Snapshotting`).

What is encoded is everything :class:`actors.council_actor.CouncilProcess` folds: the
:class:`governance.authority.Authority` — the policy stream's ledger, the proposals, every held warrant's
ledger (its actions, what it spent, its extensions, its revocation), the warrant tree, approvals,
votes, reviews, budgets, phases, the last checkpoint, the finished tasks whose warrants are still to be
forgotten and what forgotten warrants spent — and the ledger's Merkle frontier: the peaks of its compact
range, one 32-byte root per set bit of the log's size. With them, the log's origin and what its
checkpoints are due from, a recovered council signs the same root as one that replayed the log, without
hashing the log again. Its key and checkpoint interval are not state: they come from the keyring and
the settings, as on a full replay; nor is the parse of the policy in force (it is parsed again from
the adopted text when first asked). How long it keeps a finished task's warrants is recorded, and a
council that keeps them for another number of positions replays instead (it would have forgotten others).

Exact and never executable: msgpack of msgspec Structs and the governance ledgers' own dataclasses,
decoded into those types only — never pickle, for a blob anyone can point a snapshot at must not run
code. Where the council's decisions walk a mapping in order (approvals, votes and reviews; a vote's
ballots, which name who adopted a policy; a review's answers, which its reason lists) that order is
kept: mappings are encoded in insertion order. Sets are encoded sorted, so equal states encode to the
same bytes.

:data:`SHAPE` digests msgspec's own description of every encoded type, fields and types down to the
events, and a snapshot of another shape is refused: a field added to a ledger without raising
:data:`VERSION` is never decoded into its default silently.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TypeVar

import msgspec

from actors.snapshots import SnapshotInvalid, opened, shape_of
from events.catalogue import Budget, PolicyAdopted
from events.merkle import CompactRange
from governance.approvals import ApprovalLedger
from governance.authority import Authority
from governance.errors import GovernanceError
from governance.ledgers import PolicyLedger, Retired, WarrantLedger
from governance.reviews import ReviewBook, ReviewLedger
from governance.votes import VoteLedger

SCHEMA = "council"
VERSION = 2

L = TypeVar("L")


class AuthoritySnapshot(msgspec.Struct, array_like=True):
    """An :class:`~governance.authority.Authority`, field for field (the policy ledger without its parse)."""

    adopted: PolicyAdopted | None
    history: list[str]
    policy_version: int
    proposals: dict[str, str]
    warrants: dict[str, WarrantLedger]
    children: dict[str, list[str]]
    by_task: dict[str, list[str]]
    approvals: dict[str, ApprovalLedger]
    votes: dict[str, VoteLedger]
    reviews: dict[str, ReviewLedger]
    budgets: dict[str, Budget]
    phases: dict[str, str]
    last_checkpoint: int
    position: int
    finished: dict[str, int]
    retired: dict[str, Retired]
    remember: int | None


class CouncilSnapshot(msgspec.Struct, array_like=True):
    """One council's fold, encoded (msgpack)."""

    shape: str
    position: int
    authority: AuthoritySnapshot
    ledger_size: int
    peaks: list[bytes]
    origin: bytes | None
    signed_at: float
    changed_at: int


SHAPE = shape_of(CouncilSnapshot)
"""The encoded types' shape: it changes with any field of the snapshot, the ledgers or the events they hold."""


@dataclasses.dataclass(frozen=True)
class CouncilState:
    """What a snapshot gives back: the council's fold at ``position``."""

    position: int
    authority: Authority
    ledger: CompactRange
    origin: bytes | None
    signed_at: float
    changed_at: int


_encoder = msgspec.msgpack.Encoder()  # mappings in insertion order: decisions walk them so
_decoder = msgspec.msgpack.Decoder(CouncilSnapshot)


def encode(state: CouncilState) -> bytes:
    """``state`` as bytes :func:`decode` gives back equal, in every mapping's order."""
    a = state.authority
    return _encoder.encode(CouncilSnapshot(
        SHAPE, state.position,
        AuthoritySnapshot(a.policy.adopted, a.policy.history, a.policy.version, a.proposals,
                          {k: _sets_sorted(v) for k, v in a.warrants.items()}, a.children, a.by_task, a.approvals,
                          a.votes, {k: _sets_sorted(v) for k, v in a.reviews.reviews.items()}, a.budgets, a.phases,
                          a.last_checkpoint, a.position, a.finished, a.retired, a.remember),
        state.ledger.size, state.ledger.peaks, state.origin, state.signed_at, state.changed_at))


def decode(data: bytes, position: int, version: int) -> CouncilState:
    """The fold ``data`` encodes, recorded as the state at ``position`` by encoding ``version``;
    :class:`SnapshotInvalid` if it is not one this release reads."""
    snap = opened(data, _decoder, what="council", version=version, writes=VERSION, position=position, shape=SHAPE)
    if snap.authority.position != position:
        raise SnapshotInvalid(f"the snapshot's authority is at position {snap.authority.position}, its record says "
                              f"{position}")
    try:
        ledger = CompactRange.resume(snap.ledger_size, snap.peaks)
    except ValueError as exc:
        raise SnapshotInvalid(f"the snapshot's Merkle frontier is broken: {exc}") from None
    if ledger.size != position:
        raise SnapshotInvalid(f"the snapshot's Merkle frontier covers {ledger.size} events, not the {position} "
                              "it was taken at")
    s = snap.authority
    try:
        authority = Authority(policy=PolicyLedger(adopted=s.adopted, history=s.history, version=s.policy_version),
                              proposals=s.proposals, warrants=s.warrants, children=s.children, by_task=s.by_task,
                              approvals=s.approvals, votes=s.votes, reviews=ReviewBook(s.reviews), budgets=s.budgets,
                              phases=s.phases, last_checkpoint=s.last_checkpoint, position=s.position,
                              finished=s.finished, retired=s.retired, remember=s.remember)
    except GovernanceError as exc:
        raise SnapshotInvalid(f"the snapshot's council state is not one: {exc}") from None
    return CouncilState(snap.position, authority, ledger, snap.origin, snap.signed_at, snap.changed_at)


def _sets_sorted(ledger: L) -> L:
    """``ledger`` (a dataclass), or a shallow copy of it whose sets of more than one item are sorted lists: encoded
    the same whatever order they were filled in, and decoded back into sets."""
    sets = [f.name for f in dataclasses.fields(ledger)  # type: ignore[arg-type]
            if isinstance(v := getattr(ledger, f.name), set) and len(v) > 1]
    if not sets:
        return ledger
    out = copy.copy(ledger)
    for name in sets:
        setattr(out, name, sorted(getattr(ledger, name)))
    return out
