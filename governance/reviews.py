"""Reviews, decided: the fold of each ``review-<id>`` stream, which answers count, and what the council appends.

A review (:mod:`events.catalogue.reviews`) carries its own rule — the reviewers, how many approvals
decide it, its deadline, whom it escalates to — fixed when it was asked, so a policy changed later
never changes how an open review is decided. From the fold, :func:`tally` decides, in this order:

1. approvals >= needed → ``review.decided`` approved;
2. approvals + reviewers yet to answer < needed → ``review.decided`` changes (approval is no longer
   possible: enough reviewers asked for changes, or only commented);
3. the deadline passed: the first time, if the review names someone to escalate to,
   ``review.escalated`` — they review in place of every reviewer who has not answered, and their
   approval is the one still needed — else ``review.decided`` expired (never an approval).

An answer counts only if :func:`check_answer` accepts it where it stands in the log: a review that
exists and is not decided, a current reviewer who has not answered, one answer per question (or one
for all), and for a person a signature by the key the review pinned. Everything is decided from the
log alone and appended at the review stream's version, so two council incarnations, or a decision
racing an answer, never both land; reviewer tasks have deterministic ids, so each is submitted once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from events import NO_STREAM, Intent, NewEvent, streams
from events.catalogue import (
    ReviewAnswered,
    ReviewArtefact,
    ReviewDecided,
    ReviewEscalated,
    ReviewOutcome,
    ReviewRequested,
    TaskSubmitted,
    Verdict,
)
from events.catalogue.reviews import MAX_ANSWER, MAX_DIFF
from events.registry import Event
from governance.errors import ReviewError
from governance.keys import PublicKey, SigningKey, fingerprint
from governance.review_rules import PERSON, ROLE, ReviewsTable
from governance.signing import digest, sign, verify

PURPOSE = "review"
"""What a person's signature over an answer is for (see :mod:`governance.signing`)."""
ANSWER_CAPABILITY = "review.answer"
"""The capability of the task an agent reviewer answers a review with."""


# -- names ---------------------------------------------------------------------------------------


def review_id_for(task_id: str, change_digest: str, requeues: int = 0) -> str:
    """The id of the review task ``task_id`` asks of the change with SHA-256 ``change_digest`` (in its
    ``requeues``-th run): the same change asked again is the same review; another change, another review."""
    return "rv-" + hashlib.sha256(f"{task_id}\0{requeues}\0{change_digest}".encode()).hexdigest()[:20]


def reviewer_task_id(review_id: str, reviewer: str) -> str:
    """The id of the ``review.answer`` task that asks agent reviewer ``reviewer`` (``role:<role>``) to answer."""
    return f"{review_id}-{reviewer.removeprefix(ROLE)}"


def person(reviewer: str) -> str | None:
    """The approver's name of a ``person:<name>`` reviewer; None for an agent role."""
    return reviewer[len(PERSON):] if reviewer.startswith(PERSON) else None


def artefact(paths: Iterable[str], diff: str) -> ReviewArtefact:
    """The artefact of a change: its paths, the digest of the whole diff, and the diff cut at
    :data:`~events.catalogue.reviews.MAX_DIFF` characters."""
    return ReviewArtefact(paths=sorted(set(paths))[:200], digest=hashlib.sha256(diff.encode()).hexdigest(),
                          diff=diff[:MAX_DIFF], cut=len(diff) > MAX_DIFF)


# -- the fold ------------------------------------------------------------------------------------


@dataclass
class ReviewLedger:
    """The fold of one ``review-<id>`` stream (and of the ``review.answer`` tasks submitted for it)."""

    requested: ReviewRequested | None = None
    reviewers: list[str] = field(default_factory=list)
    """Who reviews now: those asked, less those an escalation replaced, plus whom it added."""
    keys: dict[str, str] = field(default_factory=dict)
    """Person reviewer's name → the fingerprint of the key their answer must be signed with."""
    needed: int = 0
    deadline: float = 0.0
    answers: dict[str, ReviewAnswered] = field(default_factory=dict)
    """The answers that count, by reviewer, in the order they came."""
    ignored: list[str] = field(default_factory=list)
    """Why each answer that does not count was refused."""
    escalated: ReviewEscalated | None = None
    decided: ReviewDecided | None = None
    tasks: set[str] = field(default_factory=set)
    """The agent reviewers a ``review.answer`` task was submitted for."""
    version: int = 0

    def evolve(self, event: Event) -> None:
        """Fold the next event of the review's stream; an answer counts only if :func:`check_answer` accepts it."""
        self.version += 1
        if isinstance(event, ReviewRequested) and self.requested is None:
            self.requested = event
            self.reviewers = list(event.reviewers)
            self.keys = dict(event.people)
            self.needed, self.deadline = event.needed, event.deadline
        elif isinstance(event, ReviewAnswered):
            reason = check_answer(self, event)
            if reason is None:
                self.answers[event.reviewer] = event
            else:
                self.ignored.append(reason)
        elif isinstance(event, ReviewEscalated) and self.escalated is None and self.decided is None:
            self.escalated = event
            self.reviewers = [r for r in self.reviewers if r not in event.replaced] + [event.to]
            name = person(event.to)
            if name is not None and event.key is not None:
                self.keys[name] = event.key
            self.needed, self.deadline = event.needed, event.deadline
        elif isinstance(event, ReviewDecided) and self.decided is None:
            self.decided = event

    @property
    def open(self) -> bool:
        """Whether the review was asked and is not decided yet."""
        return self.requested is not None and self.decided is None

    @property
    def pending(self) -> list[str]:
        """The reviewers who have not answered, in the order they were named."""
        return [r for r in self.reviewers if r not in self.answers]

    def count(self, verdict: Verdict) -> int:
        """How many answers that count have ``verdict``."""
        return sum(1 for a in self.answers.values() if a.verdict == verdict)

    def answers_to(self, question: int) -> list[tuple[str, Verdict, str]]:
        """Each reviewer's answer to question ``question`` (0-based): (reviewer, verdict, text)."""
        return [(who, a.verdict, a.answers[question] if len(a.answers) > 1 else a.answers[0])
                for who, a in self.answers.items()]


def fold(events: Iterable[Event]) -> ReviewLedger:
    """The ledger of one review from the payloads of its stream, in order (an empty ledger for no events)."""
    ledger = ReviewLedger()
    for event in events:
        ledger.evolve(event)
    return ledger


@dataclass
class ReviewBook:
    """Every review in the log, folded (the council's :class:`~governance.authority.Authority` keeps one)."""

    reviews: dict[str, ReviewLedger] = field(default_factory=dict)

    def evolve(self, review_id: str, event: Event) -> None:
        """Fold an event of stream ``review-<review_id>``."""
        self.reviews.setdefault(review_id, ReviewLedger()).evolve(event)

    def submitted(self, task: TaskSubmitted) -> None:
        """Fold a task submission: a ``review.answer`` task is remembered by its review, so it is asked for once."""
        if task.capability != ANSWER_CAPABILITY:
            return
        review_id, reviewer = task.inputs.get("review_id"), task.inputs.get("reviewer")
        if isinstance(review_id, str) and isinstance(reviewer, str):
            self.reviews.setdefault(review_id, ReviewLedger()).tasks.add(reviewer)

    def get(self, review_id: str) -> ReviewLedger | None:
        """The review ``review_id`` if it was asked."""
        found = self.reviews.get(review_id)
        return found if found is not None and found.requested is not None else None

    def decisions(self, now: float, pinned: Mapping[str, str]) -> list[Intent]:
        """What is due now: each open review's decision or escalation (at its stream's version), and a
        ``review.answer`` task for every agent reviewer who has none yet. ``pinned`` maps approver names to their
        keys' fingerprints as the policy in force pinned them (for a person an escalation adds)."""
        out: list[Intent] = []
        for rid, ledger in self.reviews.items():
            requested = ledger.requested
            if requested is None or ledger.decided is not None:
                continue
            due = tally(ledger, now=now, pinned=pinned)
            if due is not None:
                out.append(Intent(streams.review(rid), [due], ledger.version))
                continue
            for reviewer in ledger.reviewers:
                if reviewer.startswith(ROLE) and reviewer not in ledger.tasks:
                    out.append(_reviewer_task(requested, reviewer))
        return out


def _reviewer_task(requested: ReviewRequested, reviewer: str) -> Intent:
    task_id = reviewer_task_id(requested.review_id, reviewer)
    task = TaskSubmitted(task_id=task_id, capability=ANSWER_CAPABILITY, priority=1, request_id=requested.request_id,
                         inputs={"review_id": requested.review_id, "reviewer": reviewer}, max_attempts=3,
                         title=f"answer review {requested.review_id} as {reviewer}")
    recorded = NewEvent(payload=task, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:task:{task_id}"))
    return Intent(streams.task(task_id), [recorded], NO_STREAM)


# -- answers -------------------------------------------------------------------------------------


def statement(requested: ReviewRequested, reviewer: str, verdict: str, answers: Sequence[str]) -> dict[str, object]:
    """What a person's signature over an answer covers: the review (by the digest of its request, so the artefact
    and questions answered are exactly those asked), the reviewer, the verdict and the answers."""
    return {"review_id": requested.review_id, "request": digest(requested), "reviewer": reviewer, "verdict": verdict,
            "answers": list(answers)}


def sign_answer(key: SigningKey, requested: ReviewRequested, reviewer: str, verdict: Verdict,
                answers: Sequence[str], by: str) -> ReviewAnswered:
    """``key``'s signed answer as ``reviewer`` (a ``person:``) to the review ``requested`` asked."""
    signature = sign(key, PURPOSE, statement(requested, reviewer, verdict, answers))
    return ReviewAnswered(review_id=requested.review_id, reviewer=reviewer, by=by, verdict=verdict,
                          answers=list(answers), key=key.public.fingerprint, public_key=key.public.raw,
                          signature=signature)


def check_answer(ledger: ReviewLedger, answer: ReviewAnswered) -> str | None:
    """Why ``answer`` cannot count where it stands, or None if it can (each reason says what to do)."""
    requested = ledger.requested
    if requested is None:
        return f"there is no review {answer.review_id}; list the open ones with `council reviews`"
    if ledger.decided is not None:
        return (f"review {answer.review_id} is already decided ({ledger.decided.outcome}: {ledger.decided.reason}); "
                "an answer after that does not count")
    if answer.reviewer not in ledger.reviewers:
        if ledger.escalated is not None and answer.reviewer in ledger.escalated.replaced:
            return (f"{answer.reviewer} did not answer review {answer.review_id} by its deadline, and "
                    f"{ledger.escalated.to} reviews in their place now")
        return (f"{answer.reviewer} is not a reviewer of {answer.review_id} (its reviewers: "
                f"{', '.join(ledger.reviewers)})")
    if answer.reviewer in ledger.answers:
        return f"{answer.reviewer} has already answered review {answer.review_id}; a reviewer answers once"
    asked = len(requested.questions)
    if len(answer.answers) not in (1, asked):
        return (f"review {answer.review_id} asks {asked} question(s) but the answer gives {len(answer.answers)}; give "
                "one answer per question, or one for all")
    name = person(answer.reviewer)
    if name is None:
        return None
    expected = ledger.keys.get(name)
    if expected is None:
        return (f"{answer.reviewer} has no key pinned by the policy in force, so their answer cannot be checked; pin "
                f"it (`council keys new {name}` and adopt a policy naming it)")
    if answer.key is None or answer.public_key is None or answer.signature is None:
        return f"{answer.reviewer}'s answer is not signed; a person answers with `council answer REVIEW --key NAME`"
    if answer.key != expected or fingerprint(answer.public_key) != expected:
        return f"{answer.reviewer} answers with the key {expected}, not {answer.key}; use your own key"
    if not verify(PublicKey(name, answer.public_key), PURPOSE,
                  statement(requested, answer.reviewer, answer.verdict, answer.answers), answer.signature):
        return f"{answer.reviewer}'s signature over the answer does not verify"
    return None


def admit(ledger: ReviewLedger | None, answer: ReviewAnswered) -> None:
    """Raise :class:`ReviewError` with the reason if ``answer`` could not count now; used before appending it."""
    reason = check_answer(ledger or ReviewLedger(), answer)
    if reason is not None:
        raise ReviewError(reason)


def person_answer(book: ReviewBook, review_id: str, signer: SigningKey, verdict: Verdict,
                  texts: Sequence[str]) -> Intent:
    """A person's signed answer to ``review_id``, at the version of the review's stream it was decided from.

    The reviewer is the ``person:`` whose pinned key ``signer`` is. Refused with :class:`ReviewError` and what to
    do if there is no such review, it is decided, ``signer`` is no reviewer of it, they answered already, or the
    texts are not one per question (or one for all)."""
    ledger = book.get(review_id)
    if ledger is None:
        raise ReviewError(f"there is no review {review_id}; list the open ones with `council reviews`")
    requested = ledger.requested
    assert requested is not None
    mine = signer.public.fingerprint
    # The person the key is pinned for (check_answer then says if they are replaced, or answered already).
    reviewer = next((f"{PERSON}{name}" for name, key in ledger.keys.items() if key == mine), None)
    if reviewer is None and ledger.decided is None:
        raise ReviewError(f"key {signer.name} ({mine}) is not the key of any reviewer of {review_id} (its reviewers: "
                          f"{', '.join(ledger.reviewers)}); answer with the key the policy pins for one of them")
    long = next((t for t in texts if len(t.strip()) > MAX_ANSWER), None)
    if long is not None:
        raise ReviewError(f"an answer is at most {MAX_ANSWER} characters, and one of yours has {len(long.strip())}; "
                          "say it shorter, or put the details in a file the team can read and name it")
    answer = sign_answer(signer, requested, reviewer or f"{PERSON}{signer.name}", verdict, [t.strip() for t in texts],
                         by=signer.name)
    admit(ledger, answer)
    return Intent(streams.review(review_id), [answer], ledger.version)


# -- asking and deciding ---------------------------------------------------------------------------


def request(*, review_id: str, task_id: str, request_id: str | None, requester: str, artefact: ReviewArtefact,
            table: ReviewsTable, pinned: Mapping[str, str], now: float, reason: str = "",
            questions: Sequence[str] = ()) -> ReviewRequested:
    """The request for a review of ``artefact`` as the policy's ``[reviews]`` table says (its questions, or
    ``questions`` if given, then the table's). Raises :class:`ReviewError` for a review that could never be decided:
    fewer reviewers able to answer than approvals needed (a ``person:`` can answer only with a pinned key)."""
    people = {name: pinned[name] for name in (person(r) for r in table.reviewers) if name is not None
              and name in pinned}
    able = [r for r in table.reviewers if person(r) is None or person(r) in people]
    needed = table.approvals_needed()
    if len(able) < needed:
        missing = [r for r in table.reviewers if r not in able]
        raise ReviewError(f"the policy's [reviews] needs {needed} approval(s) but only {len(able)} of its reviewers "
                          f"can answer ({', '.join(missing)} have no pinned key), so the review could never be "
                          "decided; create their keys (`council keys new NAME`) and adopt the policy again, or ask "
                          "fewer approvals")
    return ReviewRequested(review_id=review_id, request_id=request_id, task_id=task_id, requester=requester,
                           artefact=artefact, questions=list(questions or table.questions)[:20],
                           reviewers=list(table.reviewers), people=people, needed=needed,
                           deadline=now + table.deadline, extension_s=table.deadline,
                           escalate_to=table.escalate_to, reason=reason[:4000])


def tally(ledger: ReviewLedger, *, now: float, pinned: Mapping[str, str]) -> ReviewDecided | ReviewEscalated | None:
    """The decision or escalation due now for an open review (see the module for the rule), or None."""
    requested = ledger.requested
    if requested is None or ledger.decided is not None:
        return None
    approvals, changes, comments = ledger.count("approve"), ledger.count("changes"), ledger.count("comment")
    pending = ledger.pending

    def decided(outcome: ReviewOutcome, reason: str) -> ReviewDecided:
        return ReviewDecided(review_id=requested.review_id, outcome=outcome, approvals=approvals, changes=changes,
                             comments=comments, needed=ledger.needed, reason=reason)

    if approvals >= ledger.needed:
        return decided("approved", f"{approvals} of {ledger.needed} approval(s) needed: "
                       f"{', '.join(w for w, a in ledger.answers.items() if a.verdict == 'approve')}")
    if approvals + len(pending) < ledger.needed:
        said = [f"{who} asked for changes" if a.verdict == "changes" else f"{who} commented"
                for who, a in ledger.answers.items() if a.verdict != "approve"]
        return decided("changes", f"{'; '.join(said)}: at most {approvals + len(pending)} of the {ledger.needed} "
                       "approval(s) needed can still come")
    if now < ledger.deadline:
        return None
    target = requested.escalate_to
    if ledger.escalated is None and target is not None:
        name = person(target)
        return ReviewEscalated(review_id=requested.review_id, to=target, replaced=pending, needed=approvals + 1,
                               deadline=now + requested.extension_s,
                               key=pinned.get(name) if name is not None else None,
                               reason=f"the deadline passed without an answer from {', '.join(pending)}; {target} "
                                      "reviews in their place")
    return decided("expired", f"the deadline passed with {approvals} of {ledger.needed} approval(s) needed and no "
                   f"answer from {', '.join(pending)}; not approved")


def feedback(ledger: ReviewLedger) -> str:
    """What the reviewers said, question by question, in words fit for the requester (or its model)."""
    requested = ledger.requested
    if requested is None:
        return ""
    lines = []
    for i, question in enumerate(requested.questions):
        lines.append(f"Q{i + 1}. {question}")
        lines += [f"  - {who} ({verdict}): {text}" for who, verdict, text in ledger.answers_to(i)]
    if ledger.decided is not None:
        lines.append(f"Outcome: {ledger.decided.outcome} ({ledger.decided.reason})")
    return "\n".join(lines)
