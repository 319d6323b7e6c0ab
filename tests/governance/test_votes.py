"""Votes: signed ballots, quorum, deadline, ties; and budget votes deciding a request's budget."""

from __future__ import annotations

import time

import msgspec
import pytest

from events.catalogue import VoteDecided
from governance import votes
from governance.errors import VoteError
from governance.keys import SigningKey

KEYS = {name: SigningKey.generate(name) for name in ("alice", "bob", "carol", "mallory")}
VOTERS = {n: KEYS[n].public.fingerprint for n in ("alice", "bob", "carol")}
NOW = time.time()


def ledger_with(quorum: int = 2, deadline: float = NOW + 3600) -> votes.VoteLedger:
    ledger = votes.VoteLedger()
    ledger.evolve(votes.propose(vote_id="v1", subject="adopt policy X", kind="policy.change",
                                options=["adopt", "reject"], quorum=quorum, deadline=deadline, voters=VOTERS,
                                proposer=KEYS["alice"].public.fingerprint, payload={"policy": "f" * 64}))
    return ledger


def vote(ledger: votes.VoteLedger, name: str, option: str, at: float = NOW) -> None:
    ballot = votes.cast(KEYS[name], ledger.proposed, option)  # type: ignore[arg-type]
    votes.admit(ledger, ballot, now=at)
    ledger.evolve(ballot, at)


def test_the_vote_is_decided_at_quorum_by_the_most_votes() -> None:
    ledger = ledger_with()
    vote(ledger, "alice", "adopt")
    assert votes.tally(ledger, now=NOW) is None
    vote(ledger, "bob", "adopt")
    decided = votes.tally(ledger, now=NOW)
    assert isinstance(decided, VoteDecided)
    assert decided.outcome == "adopt" and decided.tally == {"adopt": 2, "reject": 0}


def test_a_tie_or_a_deadline_without_quorum_decides_nothing() -> None:
    ledger = ledger_with()
    vote(ledger, "alice", "adopt")
    vote(ledger, "bob", "reject")
    assert votes.tally(ledger, now=NOW).outcome == votes.NO_DECISION  # type: ignore[union-attr]
    lonely = ledger_with(quorum=3)
    vote(lonely, "alice", "adopt")
    assert votes.tally(lonely, now=NOW) is None
    assert "deadline passed with 1 of 3" in votes.tally(lonely, now=NOW + 7200).reason  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "option", "at", "why"), [
    ("mallory", "adopt", NOW, "not one of the voters"),
    ("alice", "maybe", NOW, "not an option"),
    ("bob", "adopt", NOW + 7200, "closed"),
])
def test_bad_ballots_are_refused(name: str, option: str, at: float, why: str) -> None:
    ledger = ledger_with()
    with pytest.raises(VoteError, match=why):
        vote(ledger, name, option, at)


def test_a_key_votes_once_and_a_ballot_cannot_be_moved() -> None:
    ledger = ledger_with(quorum=3)
    vote(ledger, "alice", "adopt")
    with pytest.raises(VoteError, match="already voted"):
        vote(ledger, "alice", "reject")
    moved = msgspec.structs.replace(votes.cast(KEYS["bob"], ledger.proposed, "adopt"), option="reject")  # type: ignore[arg-type]
    with pytest.raises(VoteError, match="does not verify"):
        votes.admit(ledger, moved, now=NOW)
    ledger.evolve(moved, NOW)  # appended behind the checks' back: it does not count
    assert ledger.ballots == {KEYS["alice"].public.fingerprint: "adopt"} and ledger.ignored


def test_a_proposal_that_could_never_be_decided_is_refused() -> None:
    with pytest.raises(VoteError, match="quorum 4 cannot be reached by 3"):
        votes.propose(vote_id="v", subject="s", kind="k", options=["a", "b"], quorum=4, deadline=NOW, voters=VOTERS,
                      proposer="p")
    with pytest.raises(VoteError, match="two distinct options"):
        votes.propose(vote_id="v", subject="s", kind="k", options=["a", "a"], quorum=1, deadline=NOW, voters=VOTERS,
                      proposer="p")
