"""What a person tells the learner: a request's outcome rated, a strategy reverted — decided from the log, plain.

Each function reads what it needs from ``log`` (anything with ``read_stream``: the file, or the
running council's store client) and returns the one :class:`events.Intent` to append, appended at
the version it was decided from; or it raises a :class:`LearningError` that says what was wrong
and what to do, and nothing is appended. ``council feedback`` and ``council strategy`` call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from events import NO_STREAM, CouncilError, Intent, RecordedEvent, streams
from events.catalogue import FeedbackGiven, Rating, StrategyReverted
from projections.strategies import StrategyBook

REASON_CHARS = 4000
"""The longest reason kept."""


class LearningError(CouncilError):
    """A rating or a revert cannot be recorded as asked."""


class Reads(Protocol):
    """What these functions need of the log."""

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]: ...


def rate(log: Reads, request_id: str, rating: Rating, reason: str, by: str, *, change: bool = False) -> Intent:
    """The ``feedback.given`` of ``by`` rating request ``request_id`` ``rating`` for ``reason``.

    Refused: an empty reason; a request the log does not hold; a request rated before, unless
    ``change`` (then the new rating takes the old one's place, and both stay in the log); a change
    of a request never rated.
    """
    why = reason.strip()
    if not why:
        raise LearningError(f"say why the outcome of {request_id} was {rating}: --{rating} \"why\"")
    if not log.read_stream(streams.request(request_id), 1, 1):
        raise LearningError(f"request {request_id!r} is not in the log; `council status` lists the requests "
                            "(check the id, or --store)")
    before: Sequence[RecordedEvent] = log.read_stream(streams.feedback(request_id))
    rated = [e.payload for e in before if isinstance(e.payload, FeedbackGiven)]
    if rated and not change:
        last = rated[-1]
        raise LearningError(f"request {request_id} was rated {last.rating} already by {last.by} ({last.reason!r}); "
                            "to change the rating, run the command again with --change")
    if change and not rated:
        raise LearningError(f"request {request_id} was never rated, so there is no rating to change; run the command "
                            "without --change")
    return Intent(streams.feedback(request_id), [FeedbackGiven(
        request_id=request_id, rating=rating, reason=why[:REASON_CHARS], by=by, revision=len(rated) + 1)],
        before[-1].stream_version if before else NO_STREAM)


def revert(log: Reads, strategy_id: str, by: str, reason: str) -> Intent:
    """The ``strategy.reverted`` of ``strategy_id`` by ``by`` for ``reason``.

    Refused: an empty reason, a strategy the log does not hold, one reverted already.
    """
    why = reason.strip()
    if not why:
        raise LearningError("say why the strategy is wrong: --reason \"…\" (it is kept in the log, and the learner "
                            "needs new evidence to change it again)")
    book = StrategyBook.of(log.read_stream(streams.STRATEGIES))
    found = book.strategies.get(strategy_id)
    if found is None:
        raise LearningError(f"strategy {strategy_id!r} is not in the log; `council strategy list --all` shows every "
                            "strategy and its id")
    if found.reverted is not None:
        raise LearningError(f"strategy {strategy_id} was reverted already by {found.reverted.by} "
                            f"({found.reverted.reason!r}); nothing to do")
    return Intent(streams.STRATEGIES, [StrategyReverted(strategy_id=strategy_id, by=by, reason=why[:REASON_CHARS])],
                  book.version)
