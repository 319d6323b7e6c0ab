"""Reviews: an agent asks reviewers (agents, people) questions about an artefact, each answers, the council decides.

Stream ``review-<review id>``::

    review.requested → review.answered … → (review.escalated → review.answered …) → review.decided

A requester (the coder, for a security-sensitive change) names the artefact (paths, a digest of the
whole change, the change itself, bounded), the questions, who reviews (``role:<role>`` — an agent of
that role answers a ``review.answer`` task — or ``person:<approver>``, who answers with a signed
``council answer``), how many approvals it needs and by when. Each reviewer answers once, every
question, with a verdict. The council decides by the rule the request carries
(:mod:`governance.reviews`): enough approvals → approved; approval no longer possible → changes;
the deadline passed → escalated once to whom the policy names, then expired. Times are UTC epoch
seconds.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from events.catalogue.fields import Count, Id, Positive, Seconds, Text
from events.catalogue.governance import Digest, Fingerprint, RawKey, Signature, Target
from events.registry import Event, event_type

Verdict = Literal["approve", "changes", "comment"]
"""A reviewer's verdict: the artefact may go as it is; it must change first; a remark that neither approves nor
blocks."""
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
ReviewOutcome = Literal["approved", "changes", "expired"]
"""How a review was decided: enough approvals; approval no longer possible; the deadline passed (after escalating,
if the policy names someone) without enough answers — which is never an approval (fail closed)."""

Reviewer = Annotated[str, Meta(min_length=3, max_length=200)]
"""``role:<role>`` (any agent of the role answers) or ``person:<approver>`` (an approver of the policy, signing)."""
Question = Annotated[str, Meta(min_length=1, max_length=2000)]
MAX_ANSWER = 8000
"""The most characters of one answer to one question."""
AnswerText = Annotated[str, Meta(max_length=MAX_ANSWER)]

MAX_DIFF = 48 * 1024
"""The most characters of a change a request carries; past it the change is cut (and says so)."""


class ReviewArtefact(msgspec.Struct, frozen=True, kw_only=True):
    """What is reviewed: the paths, the SHA-256 of the whole change, and the change as a unified diff (cut at
    :data:`MAX_DIFF` characters, ``cut`` then true)."""

    paths: Annotated[list[Target], Meta(max_length=200)]
    digest: Digest
    diff: Text
    cut: bool = False


@event_type("review.requested")
class ReviewRequested(Event, frozen=True, kw_only=True):
    """A review asked for: by whom (``requester``, an agent, working on ``task_id``), of what, which questions, by
    whom, how many approvals decide it, by when, and whom it goes to if the deadline passes."""

    review_id: Id
    request_id: Id | None = None
    task_id: Id
    requester: Id
    artefact: ReviewArtefact
    questions: Annotated[list[Question], Meta(min_length=1, max_length=20)]
    reviewers: Annotated[list[Reviewer], Meta(min_length=1, max_length=20)]
    people: dict[str, Fingerprint] = {}
    """The key each ``person:`` reviewer answers with, as the policy in force pinned it when the review was asked."""
    needed: Positive
    """How many approvals decide it (all the reviewers, or k of them, as the policy says)."""
    deadline: Seconds
    extension_s: Seconds
    """How long an escalation gives the reviewer it adds."""
    escalate_to: Reviewer | None = None
    reason: Text = ""
    """Why the review was asked (which paths or words made the change sensitive)."""


@event_type("review.answered")
class ReviewAnswered(Event, frozen=True, kw_only=True):
    """One reviewer's answer: a verdict, and one answer per question (or one for all). A person's answer is signed
    with the key the request pinned (``key``, ``public_key``, ``signature`` over :func:`governance.reviews.statement`);
    an agent's is recorded by the agent holding the ``review.answer`` task (``by``, ``task_id``)."""

    review_id: Id
    reviewer: Reviewer
    by: Id
    verdict: Verdict
    answers: Annotated[list[AnswerText], Meta(min_length=1, max_length=20)]
    task_id: Id | None = None
    key: Fingerprint | None = None
    public_key: RawKey | None = None
    signature: Signature | None = None


@event_type("review.escalated")
class ReviewEscalated(Event, frozen=True, kw_only=True):
    """The deadline passed without enough answers: ``to`` reviews in place of those who did not answer
    (``replaced``), until ``deadline``; ``needed`` is the approvals given so far plus the one ``to`` may give."""

    review_id: Id
    to: Reviewer
    replaced: list[Reviewer]
    needed: Positive
    deadline: Seconds
    key: Fingerprint | None = None
    """The key ``to`` answers with, if it is a person (pinned by the policy in force)."""
    reason: Text = ""


@event_type("review.decided")
class ReviewDecided(Event, frozen=True, kw_only=True):
    """How the review ended, the answers counted, and why in words."""

    review_id: Id
    outcome: ReviewOutcome
    approvals: Count
    changes: Count
    comments: Count
    needed: Positive
    reason: Text


__all__ = ["MAX_ANSWER", "MAX_DIFF", "VERDICTS", "ReviewAnswered", "ReviewArtefact", "ReviewDecided", "ReviewEscalated",
           "ReviewOutcome", "ReviewRequested", "Verdict"]
