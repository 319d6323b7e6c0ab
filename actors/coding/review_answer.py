"""The reviewer agent's answer to a review (``review.answer``): each question answered, and a verdict.

The council submits one ``review.answer`` task per agent reviewer (``role:<role>``) a review names
(:mod:`governance.reviews`). The agent reads the review from the log, asks its model once — the
change as a data block, the questions numbered — for an answer per question and a verdict that fit
:class:`ReviewerAnswer`, and appends ``review.answered`` at the review stream's version. Run again
after a crash, the model's answer comes from the log and an answer already recorded is not recorded
twice; a review decided before the agent got to it is left as it is.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.coding import context
from actors.coding.skill_io import validated
from actors.llm.calls import Answer
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.gated import Tools
from events import NewEvent, streams
from events.catalogue import ReviewAnswered
from events.errors import ConcurrencyError
from governance import reviews
from governance.review_rules import ROLE
from governance.reviews import ReviewLedger

ANSWERER = (
    "You are a security reviewer on a software team. A teammate asks you questions about a change before it is "
    "committed. Read the change, answer every question in order, concretely and briefly (what is right, what is "
    "wrong, at which line, and what to do), and give a verdict: approve (it may be committed as it is), changes (it "
    "must change first: say what in your answers), or comment (neither). Judge only what the change shows. Answer "
    "with JSON that fits the schema, and nothing else.")
UNANSWERED = "(the reviewer gave no answer to this question)"


class ReviewerAnswer(BaseModel):
    """The model's answer: one text per question, in order, and the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answers: list[Annotated[str, Field(max_length=4000)]] = Field(max_length=20)
    verdict: Literal["approve", "changes", "comment"]


class AnswerTask(BaseModel):
    """What ``review.answer`` is asked: which review, as which reviewer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review_id: Annotated[str, Field(min_length=1, max_length=200)]
    reviewer: Annotated[str, Field(min_length=len(ROLE) + 1, max_length=200, pattern=r"^role:")]
    max_tokens: Annotated[int, Field(ge=256, le=64_000)] = 2048


@skill("review.answer", toolset=Toolset.GATED, actions=("llm.call",))
def answer_review(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Answer review ``review_id`` as ``reviewer`` (see the module); what was answered, or why nothing was."""
    task = validated(AnswerTask, inputs, "review.answer")
    ledger = _read(tools, task.review_id)
    requested = ledger.requested
    if requested is None:
        raise PermanentFailure(f"there is no review {task.review_id} in the log; nothing to answer")
    models = tools.models
    role = task.reviewer.removeprefix(ROLE)
    if models.role != role:
        raise PermanentFailure(f"review {task.review_id} asks {task.reviewer}, but this agent's role is "
                               f"{models.role!r}; give the capability review.answer to that role's agents only")
    settled = _settled(ledger, task.reviewer)
    if settled is not None:
        return settled
    asked: Answer[ReviewerAnswer] = models.ask(
        context.messages(ANSWERER, _question(requested.questions, requested.artefact.paths,
                                             requested.artefact.diff, requested.artefact.cut, requested.reason)),
        name="review.answer", schema=ReviewerAnswer, max_tokens=task.max_tokens, temperature=0.0)
    given = asked.answer or ReviewerAnswer(answers=[], verdict="comment")
    texts = [*given.answers[:len(requested.questions)]]
    texts += [UNANSWERED] * (len(requested.questions) - len(texts))
    # A verdict that leaves a question unanswered cannot approve: the requester would act on answers never given.
    verdict = "comment" if given.verdict == "approve" and UNANSWERED in texts else given.verdict
    answered = ReviewAnswered(review_id=task.review_id, reviewer=task.reviewer, by=tools.gatekeeper.agent_id,
                              verdict=verdict, answers=texts, task_id=tools.task_id)
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"council:review:{task.review_id}:{task.reviewer}:{tools.task_id}")
    for _ in range(5):
        reason = reviews.check_answer(ledger, answered)
        if reason is not None:
            done = _settled(ledger, task.reviewer)
            if done is not None:
                return done
            raise PermanentFailure(reason)
        try:
            tools.gatekeeper.log.append(streams.review(task.review_id), [NewEvent(payload=answered,
                                                                                    event_id=event_id)],
                                        ledger.version)
        except ConcurrencyError:
            ledger = _read(tools, task.review_id)  # another answer or a decision landed: judge again
            continue
        return {"review_id": task.review_id, "reviewer": task.reviewer, "verdict": verdict, "answers": texts,
                "model": asked.model, "cost": round(asked.cost, 6), "calls": asked.calls}
    raise PermanentFailure(f"review {task.review_id} kept changing while the answer was recorded; run the task again")


def _read(tools: Tools, review_id: str) -> ReviewLedger:
    return reviews.fold(e.payload for e in tools.gatekeeper.log.read_stream(streams.review(review_id)))


def _settled(ledger: ReviewLedger, reviewer: str) -> dict[str, Any] | None:
    """What there is to report without answering: the answer ``reviewer`` recorded already, or the review's
    decision; None if the answer is still to give."""
    mine = ledger.answers.get(reviewer)
    rid = ledger.requested.review_id if ledger.requested is not None else ""
    if mine is not None:
        return {"review_id": rid, "reviewer": reviewer, "verdict": mine.verdict, "answers": list(mine.answers),
                "already": True}
    if ledger.decided is not None:
        return {"review_id": rid, "reviewer": reviewer, "verdict": None,
                "skipped": f"decided before this reviewer answered ({ledger.decided.outcome})"}
    if reviewer not in ledger.reviewers:  # replaced by an escalation: its model is not asked for nothing
        return {"review_id": rid, "reviewer": reviewer, "verdict": None,
                "skipped": f"{reviewer} is no longer a reviewer of {rid} (reviewers now: "
                           f"{', '.join(ledger.reviewers)})"}
    return None


def _question(questions: list[str], paths: list[str], diff: str, cut: bool, reason: str) -> str:
    """What the model is asked: the change as data, why it is reviewed, and the questions, numbered."""
    numbered = "\n".join(f"{i}. {q}" for i, q in enumerate(questions, 1))
    parts = [f"Review this change to {', '.join(paths)} before it is committed."
             + (f" It is reviewed because {reason}." if reason else ""),
             "The change, as a unified diff" + (" (cut: only its beginning)" if cut else "") + ":\n"
             + context.data_block("CHANGE", diff),
             f"Answer these {len(questions)} question(s), one answer each, in this order:\n"
             + context.data_block("QUESTIONS", numbered)]
    return "\n\n".join(parts)
