"""Asking for a review from inside a skill, and waiting for its outcome as a task waits for approvals.

:func:`ask_review` is the requester's half of the protocol (:mod:`governance.reviews` is the council's):
the first attempt appends ``review.requested`` — once: the review's id is a function of the task and
the change, and the stream must not exist yet — and raises
:class:`~actors.tools.gated.AwaitingAuthority` with the review's id, so the task waits holding no
process; the council asks its agent reviewers (``review.answer`` tasks) and decides; the dispatcher
resumes the task on ``review.decided``. The next attempt runs the skill again — every model call
answered from the log — reaches the same change, so the same review, and gets its outcome.

Asking is not an action on the world (it changes no file and spends nothing): like the gate's own
approval requests it is appended without a warrant's say, and it is in the log for all to see.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from actors.skills import PermanentFailure
from actors.tools.gated import AwaitingAuthority, Tools
from events import NO_STREAM, streams
from events.errors import ConcurrencyError
from governance import reviews
from governance.errors import ReviewError
from governance.ledgers import PolicyLedger
from governance.review_rules import ReviewsTable
from governance.reviews import ReviewLedger


def change_of(before: Mapping[str, str], after: Mapping[str, str], paths: Iterable[str]) -> tuple[str, list[str]]:
    """The unified diff of ``paths`` from ``before`` to ``after`` (path → text; a missing path is an empty file), and
    the lines it adds: what a review looks at, and what sensitive words are looked for in."""
    parts, added = [], []
    for path in sorted(paths):
        old, new = before.get(path, ""), after.get(path, "")
        lines = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                          f"a/{path}", f"b/{path}", n=3))
        parts += [line if line.endswith("\n") else line + "\n" for line in lines]
        added += [line[1:].rstrip("\n") for line in lines if line.startswith("+") and not line.startswith("+++")]
    return "".join(parts), added


def review_table(tools: Tools) -> tuple[ReviewsTable, dict[str, str]]:
    """The ``[reviews]`` table of the policy in force (an empty one, reviewing nothing, before any policy), and the
    approvers' keys it pinned."""
    ledger = PolicyLedger().catch_up(tools.gatekeeper.log)
    policy = ledger.current()
    return (policy.reviews if policy is not None else ReviewsTable()), ledger.approvers


def ask_review(tools: Tools, paths: Iterable[str], diff: str, *, reason: str, request_id: str | None = None,
               questions: Iterable[str] = ()) -> ReviewLedger:
    """The decided review of the change ``diff`` to ``paths``, as the policy's ``[reviews]`` table asks it.

    Asks for it the first time (``review.requested``), then raises
    :class:`~actors.tools.gated.AwaitingAuthority` until it is decided; once decided, returns its
    ledger (outcome, answers). :class:`~actors.skills.PermanentFailure` if the policy asks for a
    review that could never be decided (nothing is asked then).
    """
    table, pinned = review_table(tools)
    changed = sorted(set(paths))
    artefact = reviews.artefact(changed, diff)
    review_id = reviews.review_id_for(tools.task_id, artefact.digest, tools.requeues)
    stream = streams.review(review_id)
    for _ in range(3):
        ledger = reviews.fold(e.payload for e in tools.gatekeeper.log.read_stream(stream))
        if ledger.decided is not None:
            return ledger
        if ledger.requested is not None:
            raise AwaitingAuthority(review_id, _waiting(ledger))
        try:
            asked = reviews.request(review_id=review_id, task_id=tools.task_id, request_id=request_id,
                                    requester=tools.gatekeeper.agent_id, artefact=artefact,
                                    table=table, pinned=pinned, now=tools.gatekeeper.clock(), reason=reason,
                                    questions=list(questions))
        except ReviewError as never:  # the policy asks for a review nobody could decide: trying again cannot help
            raise PermanentFailure(f"the change to {', '.join(changed)} must be reviewed ({reason}), "
                                   f"but {never}") from None
        try:
            tools.gatekeeper.log.append(stream, [asked], NO_STREAM)
        except ConcurrencyError:
            continue  # asked by an earlier attempt meanwhile: read what it asked
        ledger.evolve(asked)
        raise AwaitingAuthority(review_id, _waiting(ledger))
    raise ReviewError(f"review {review_id} kept changing while it was read; run the task again")


def _waiting(ledger: ReviewLedger) -> str:
    requested = ledger.requested
    assert requested is not None
    return (f"waiting for review {requested.review_id} by {', '.join(ledger.reviewers)} ({ledger.needed} approval(s) "
            f"needed; `council reviews` lists it, `council answer {requested.review_id} …` answers it)")
