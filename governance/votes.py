"""Votes: a question, its options, who may vote, a quorum and a deadline; signed ballots; a tally.

Each ballot signs the proposal's digest together with the chosen option, so it cannot be moved
to another proposal or another option. The vote is decided by tally as soon as the quorum is
reached, or when the deadline passes: the option with the most votes wins; a tie, or a deadline
without quorum, decides nothing ("no decision").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import msgspec

from events.catalogue import VoteCast, VoteDecided, VoteProposed
from events.registry import Event
from governance.errors import VoteError
from governance.keys import PublicKey, SigningKey, fingerprint
from governance.signing import digest, sign, verify

PURPOSE = "vote"
NO_DECISION = "no decision"


def propose(*, vote_id: str, subject: str, kind: str, options: list[str], quorum: int, deadline: float,
            voters: dict[str, str], proposer: str, payload: dict[str, str] | None = None) -> VoteProposed:
    """A proposal, with the digest its ballots sign; :class:`VoteError` if it could never be decided."""
    if len(set(options)) != len(options) or len(options) < 2:
        raise VoteError(f"a vote needs at least two distinct options, got {options}")
    if NO_DECISION in options:
        raise VoteError(f"{NO_DECISION!r} is the tally's own outcome, not an option")
    if not voters or not 1 <= quorum <= len(voters):
        raise VoteError(f"quorum {quorum} cannot be reached by {len(voters)} voter(s)")
    draft = VoteProposed(vote_id=vote_id, subject=subject, kind=kind, options=list(options), quorum=quorum,
                         deadline=deadline, voters=dict(voters), proposer=proposer, payload=dict(payload or {}),
                         digest="")
    return msgspec.structs.replace(draft, digest=proposal_digest(draft))


def proposal_digest(proposed: VoteProposed) -> str:
    """The digest of every field of a proposal but ``digest`` itself: what its ballots sign (it must equal
    ``proposed.digest``)."""
    return digest({"vote_id": proposed.vote_id, "subject": proposed.subject, "kind": proposed.kind,
                   "options": list(proposed.options), "quorum": proposed.quorum, "deadline": proposed.deadline,
                   "voters": dict(proposed.voters), "proposer": proposed.proposer, "payload": dict(proposed.payload)})


def cast(key: SigningKey, proposed: VoteProposed, option: str) -> VoteCast:
    """``key``'s signed ballot for ``option``."""
    signature = sign(key, PURPOSE, {"vote_id": proposed.vote_id, "digest": proposed.digest, "option": option})
    return VoteCast(vote_id=proposed.vote_id, option=option, key=key.public.fingerprint, public_key=key.public.raw,
                    signature=signature)


@dataclass
class VoteLedger:
    """The fold of one ``vote-<id>`` stream."""

    proposed: VoteProposed | None = None
    ballots: dict[str, str] = field(default_factory=dict)
    """Valid ballots: voter fingerprint → option."""
    ignored: list[str] = field(default_factory=list)
    decided: VoteDecided | None = None
    version: int = 0

    def evolve(self, event: Event, at: float | None = None) -> None:
        """Fold one event recorded at ``at``; a ballot counts only if :func:`check_ballot` accepts it then."""
        self.version += 1
        if isinstance(event, VoteProposed):
            self.proposed = event
        elif isinstance(event, VoteCast):
            reason = check_ballot(self, event, now=at)
            if reason is None:
                self.ballots[event.key] = event.option
            else:
                self.ignored.append(reason)
        elif isinstance(event, VoteDecided):
            self.decided = event


def check_ballot(ledger: VoteLedger, ballot: VoteCast, *, now: float | None) -> str | None:
    """Why ``ballot`` cannot count, or None if it can."""
    proposed = ledger.proposed
    if proposed is None:
        return f"there is no vote {ballot.vote_id}"
    if ledger.decided is not None:
        return f"vote {ballot.vote_id} is already decided ({ledger.decided.outcome})"
    if proposal_digest(proposed) != proposed.digest:
        return f"vote {ballot.vote_id}'s proposal does not match its digest"
    if ballot.option not in proposed.options:
        return f"{ballot.option!r} is not an option of vote {ballot.vote_id} ({', '.join(proposed.options)})"
    names = {fp: name for name, fp in proposed.voters.items()}
    if fingerprint(ballot.public_key) != ballot.key:
        return f"the ballot's public key does not have the fingerprint {ballot.key} it claims"
    if ballot.key not in names:
        return f"key {ballot.key} is not one of the voters of {ballot.vote_id} ({', '.join(proposed.voters)})"
    if ballot.key in ledger.ballots:
        return f"{names[ballot.key]} has already voted in {ballot.vote_id}; a key votes once"
    statement = {"vote_id": ballot.vote_id, "digest": proposed.digest, "option": ballot.option}
    if not verify(PublicKey(names[ballot.key], ballot.public_key), PURPOSE, statement, ballot.signature):
        return f"the ballot of {names[ballot.key]} does not verify"
    if now is not None and now >= proposed.deadline:
        return f"vote {ballot.vote_id} closed at {proposed.deadline:.0f}"
    return None


def admit(ledger: VoteLedger, ballot: VoteCast, *, now: float) -> None:
    """Raise :class:`VoteError` with the reason if ``ballot`` cannot count; used before appending it."""
    reason = check_ballot(ledger, ballot, now=now)
    if reason is not None:
        raise VoteError(reason)


def tally(ledger: VoteLedger, *, now: float) -> VoteDecided | None:
    """The decision to record now — at quorum, or at the deadline — or None while the vote is still open."""
    proposed = ledger.proposed
    if proposed is None or ledger.decided is not None:
        return None
    counts = Counter(ledger.ballots.values())
    tally_ = {option: counts.get(option, 0) for option in proposed.options}
    reached = len(ledger.ballots) >= proposed.quorum
    if not reached and now < proposed.deadline:
        return None
    if not reached:
        return VoteDecided(vote_id=proposed.vote_id, outcome=NO_DECISION, tally=tally_,
                           reason=f"the deadline passed with {len(ledger.ballots)} of {proposed.quorum} votes needed")
    best = max(tally_.values())
    winners = [o for o, n in tally_.items() if n == best]
    if len(winners) > 1:
        return VoteDecided(vote_id=proposed.vote_id, outcome=NO_DECISION, tally=tally_,
                           reason=f"a tie between {', '.join(winners)}")
    return VoteDecided(vote_id=proposed.vote_id, outcome=winners[0], tally=tally_,
                       reason=f"{winners[0]} won {best} of {len(ledger.ballots)} votes (quorum {proposed.quorum})")
