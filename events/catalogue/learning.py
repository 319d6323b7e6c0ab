"""Learning: people's ratings of outcomes, and the strategies the council changed from evidence.

::

    feedback.given                       in ``feedback-<request_id>`` (a rating, or a rating changed)
    strategy.changed → strategy.reverted in the one stream ``strategies``, in order

A rating weighs the lessons drawn from its request (:mod:`projections.knowledge` ranks a lesson of
a request rated bad below the others). A strategy is a change of behaviour the learner made once
the evidence crossed a threshold — a model swapped for a capability, a longer lease, a test retried
as flaky — with the log positions of that evidence and its reason; a person reverts it
(``council strategy revert ID --reason``). All strategies share one stream, so a revert and a new
strategy about the same thing are ordered: the learner appends at the version it decided from.
"""

from __future__ import annotations

from typing import Literal, get_args

from events.catalogue.fields import Count, Id, Text
from events.registry import Event, event_type

Rating = Literal["good", "bad"]
RATINGS: tuple[Rating, ...] = get_args(Rating)

StrategyKind = Literal["model-swap", "lease", "flaky-retry"]
"""What a strategy changes:

* ``model-swap``: calls by ``subject`` (a capability) that would use ``model`` use ``value`` (a model of ``model``'s
  fallback chain) instead;
* ``lease``: tasks of ``subject`` (a capability) are leased for ``value`` seconds;
* ``flaky-retry``: a run whose only failing tests are recognised flaky ones (``subject``: a test id as the JUnit
  report names it) is run once more before it counts as failed (``value``: the runs added, ``"1"``).
"""
STRATEGY_KINDS: tuple[StrategyKind, ...] = get_args(StrategyKind)


@event_type("feedback.given")
class FeedbackGiven(Event, frozen=True, kw_only=True):
    """A person rated how a request turned out, and why; ``revision`` counts the ratings of the request (1: the
    first, 2 and on: a rating changed)."""

    request_id: Id
    rating: Rating
    reason: Text
    by: Id
    revision: Count = 1


@event_type("strategy.changed")
class StrategyChanged(Event, frozen=True, kw_only=True):
    """The council changes how it works (see :data:`StrategyKind`), from ``evidence`` (log positions), for
    ``reason``. A later strategy of the same kind about the same ``subject`` (and ``model``) takes its place."""

    strategy_id: Id
    kind: StrategyKind
    subject: Text
    model: Text = ""
    """``model-swap`` only: the model that is replaced."""
    value: Text
    evidence: list[Count] = []
    reason: Text
    by: Id = "learner"


@event_type("strategy.reverted")
class StrategyReverted(Event, frozen=True, kw_only=True):
    """A person undid a strategy: the one it had taken the place of (if any, and not reverted) holds again."""

    strategy_id: Id
    by: Id
    reason: Text
