"""People's side of learning: ratings weigh lessons in search, strategies in effect and reverted as a fold, and every
bad input refused with what to do — in plain functions (tests/cluster/test_cli_learning.py runs the commands)."""

from __future__ import annotations

import pytest

from cluster.learning import LearningError, rate, revert
from events import EventStore, open_store, streams
from events.catalogue import FeedbackGiven, KnowledgeAdded, RequestSubmitted, StrategyChanged, StrategyReverted
from projections.knowledge import TYPES, KnowledgeBase
from projections.strategies import StrategyBook


def strategy(strategy_id: str, kind: str = "lease", subject: str = "ci.build", value: str = "120",
             model: str = "") -> StrategyChanged:
    return StrategyChanged(strategy_id=strategy_id, kind=kind, subject=subject, model=model, value=value,  # type: ignore[arg-type]
                           evidence=[1, 2], reason="because")


def requested(log: EventStore, *request_ids: str) -> None:
    for request_id in request_ids:
        log.append(streams.request(request_id), [RequestSubmitted(request_id=request_id, title=request_id)])


# -- the strategies in effect ----------------------------------------------------------------------


def test_the_latest_strategy_about_a_thing_holds_and_reverting_it_brings_back_the_one_before() -> None:
    log = open_store("memory://")
    log.append(streams.STRATEGIES, [strategy("lease:ci.build#1"), strategy("lease:ci.build#2", value="240"),
                                    strategy("model-swap:code.write:openai:a#1", "model-swap", "code.write",
                                             "openai:b", "openai:a"),
                                    strategy("flaky-retry:t::x#1", "flaky-retry", "t::x", "1")])
    book = StrategyBook.of(log.read_all(1, None))
    assert book.leases() == {"ci.build": 240.0}
    assert book.swaps("code.write") == {"openai:a": "openai:b"} and book.swaps("ci.test") == {}
    assert book.flaky() == {"t::x"}
    assert [book.status(s) for s in book.strategies] == ["superseded", "in effect", "in effect", "in effect"]
    log.append_many([revert(log, "lease:ci.build#2", "alice", "too long")])
    book = StrategyBook.of(log.read_all(1, None))
    assert book.leases() == {"ci.build": 120.0}
    assert book.status("lease:ci.build#2") == "reverted" and book.status("lease:ci.build#1") == "in effect"
    log.append_many([revert(log, "lease:ci.build#1", "alice", "not needed at all")])
    assert StrategyBook.of(log.read_all(1, None)).leases() == {}


def test_a_lease_that_is_not_a_number_of_seconds_is_passed_over() -> None:
    log = open_store("memory://")
    log.append(streams.STRATEGIES, [strategy("lease:x#1", value="forever")])
    assert StrategyBook.of(log.read_all(1, None)).leases() == {}


@pytest.mark.parametrize(("strategy_id", "reason", "said"), [
    ("lease:nope#1", "why", "is not in the log; `council strategy list --all` shows every strategy"),
    ("lease:ci.build#1", "  ", "say why the strategy is wrong: --reason"),
])
def test_reverting_an_unknown_strategy_or_without_a_reason_is_refused(strategy_id: str, reason: str,
                                                                      said: str) -> None:
    log = open_store("memory://")
    log.append(streams.STRATEGIES, [strategy("lease:ci.build#1")])
    with pytest.raises(LearningError, match=said.replace("(", r"\(").replace("`", ".")):
        revert(log, strategy_id, "alice", reason)


def test_reverting_a_strategy_twice_is_refused_and_says_who_reverted_it() -> None:
    log = open_store("memory://")
    log.append(streams.STRATEGIES, [strategy("lease:ci.build#1")])
    log.append_many([revert(log, "lease:ci.build#1", "alice", "the mirror was slow")])
    with pytest.raises(LearningError, match=r"reverted already by alice \('the mirror was slow'\); nothing to do"):
        revert(log, "lease:ci.build#1", "bob", "again")
    assert [type(e.payload) for e in log.read_stream(streams.STRATEGIES)] == [StrategyChanged, StrategyReverted]


# -- ratings ---------------------------------------------------------------------------------------


def test_a_rating_is_an_event_and_rating_twice_needs_change() -> None:
    log = open_store("memory://")
    requested(log, "r-1")
    log.append_many([rate(log, "r-1", "good", " it shipped ", "alice")])
    with pytest.raises(LearningError, match=r"rated good already by alice \('it shipped'\); to change the rating, "
                                            r"run the command again with --change"):
        rate(log, "r-1", "bad", "broke prod", "bob")
    log.append_many([rate(log, "r-1", "bad", "broke prod", "bob", change=True)])
    ratings = [e.payload for e in log.read_stream(streams.feedback("r-1"))]
    assert ratings == [FeedbackGiven(request_id="r-1", rating="good", reason="it shipped", by="alice"),
                       FeedbackGiven(request_id="r-1", rating="bad", reason="broke prod", by="bob", revision=2)]


@pytest.mark.parametrize(("request_id", "reason", "change", "said"), [
    ("r-404", "why", False, "request 'r-404' is not in the log; `council status` lists the requests"),
    ("r-1", "", False, "say why the outcome of r-1 was bad: --bad \"why\""),
    ("r-1", "why", True, "r-1 was never rated, so there is no rating to change; run the command without --change"),
])
def test_bad_ratings_are_refused_with_what_to_do(request_id: str, reason: str, change: bool, said: str) -> None:
    log = open_store("memory://")
    requested(log, "r-1")
    with pytest.raises(LearningError) as refused:
        rate(log, request_id, "bad", reason, "alice", change=change)
    assert str(refused.value) == said or said in str(refused.value)
    assert log.read_stream(streams.feedback(request_id)) == []


def lesson(entry_id: str, origin: str) -> KnowledgeAdded:
    return KnowledgeAdded(entry_id=entry_id, kind="lesson", title=f"password hashing in {origin}",
                          body="PBKDF2 with a per-user salt worked", source="request", origin=origin)


def test_lessons_of_a_request_rated_bad_rank_last_and_rated_good_first_whatever_bm25_says() -> None:
    log = open_store("memory://")
    requested(log, "r-good", "r-bad", "r-none")
    for request_id in ("r-bad", "r-none", "r-good"):
        log.append(streams.knowledge(f"l-{request_id}"), [lesson(f"l-{request_id}", request_id)])
    before = [f.entry.entry_id for f in KnowledgeBase.of(log.read_all(1, None, list(TYPES))).search("password")]
    assert sorted(before) == ["l-r-bad", "l-r-good", "l-r-none"]
    log.append_many([rate(log, "r-bad", "bad", "it leaked", "alice"), rate(log, "r-good", "good", "solid", "alice")])
    base = KnowledgeBase.of(log.read_all(1, None, list(TYPES)))
    ranked = [f.entry.entry_id for f in base.search("password hashing")]
    assert ranked == ["l-r-good", "l-r-none", "l-r-bad"]
    assert base.rating(base.entries["l-r-bad"]) is not None and base.weight(base.entries["l-r-none"]) == 0
