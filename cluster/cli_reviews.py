"""``council reviews``, and a person's answer to one (``council answer REVIEW …``, registered in ``cli_feature``).

A review lists what it asks about (the change), its questions, its reviewers and what each has answered, and
by when. A person answers as a reviewer through the same ``review.answered`` event an agent appends, signed with
the key the policy pins for them (as ``council approve`` signs); the answer is decided from the log
(:func:`governance.reviews.person_answer`) and appended by the log's writer, so one that could not count is refused
with the reason, and nothing is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from cluster.cli_app import StoreOption, app, out, settings_for
from cluster.cli_council import keyring, log_writer, read_authority
from events import CouncilError
from events.catalogue import Verdict
from governance import reviews
from governance.reviews import ReviewLedger

REVIEW_PREFIX = "rv-"
"""How every review id begins (:func:`governance.reviews.review_id_for`): what tells ``council answer`` a review
from a request."""


def is_review(name: str) -> bool:
    """Whether ``name`` names a review (not a request or a task)."""
    return name.startswith(REVIEW_PREFIX)


@app.command("reviews")
def reviews_list(
    review_id: Annotated[str | None, typer.Argument(help="One review, shown whole with its change.")] = None,
    store: StoreOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Decided ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per review.")] = False,
) -> None:
    """List the reviews that wait for answers: what each asks about, its questions, its reviewers and what they
    answered so far, and its deadline. Answer one with `council answer REVIEW --approve|--changes|--comment "…"`."""
    book = read_authority(store).reviews
    if review_id is not None:
        ledger = book.get(review_id)
        if ledger is None:
            raise CouncilError(f"there is no review {review_id}; `council reviews --all` lists them")
        chosen = [ledger]
    else:
        chosen = [ledger for ledger in book.reviews.values() if ledger.requested is not None
                  and (all_ or ledger.open)]
    for ledger in chosen:
        record = _record(ledger)
        if as_json:
            out.print(json.dumps(record), markup=False)
        else:
            _show(record, whole=review_id is not None)
    if not chosen and not as_json:
        out.print("no reviews wait for answers" if not all_ else "no reviews")


def _record(ledger: ReviewLedger) -> dict[str, Any]:
    requested = ledger.requested
    assert requested is not None
    decided, escalated = ledger.decided, ledger.escalated
    state = (f"{decided.outcome}: {decided.reason}" if decided is not None
             else f"waiting: {ledger.count('approve')} of {ledger.needed} approval(s)")
    return {"id": requested.review_id, "state": state, "request": requested.request_id, "task": requested.task_id,
            "requester": requested.requester, "why": requested.reason, "paths": list(requested.artefact.paths),
            "digest": requested.artefact.digest, "questions": list(requested.questions),
            "reviewers": list(ledger.reviewers), "needed": ledger.needed,
            "deadline": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ledger.deadline)),
            "escalated": None if escalated is None else {"to": escalated.to, "replaced": list(escalated.replaced),
                                                         "reason": escalated.reason},
            "answers": {who: {"by": a.by, "verdict": a.verdict, "answers": list(a.answers)}
                        for who, a in ledger.answers.items()},
            "pending": ledger.pending if decided is None else [], "diff": requested.artefact.diff,
            "cut": requested.artefact.cut}


def _show(record: dict[str, Any], *, whole: bool) -> None:
    out.print(f"[bold]{record['id']}[/] {record['state']}")
    for name in ("request", "task", "requester", "why", "digest", "deadline"):
        out.print(f"    {name}: {record[name]}", markup=False)
    out.print(f"    paths: {', '.join(record['paths'])}", markup=False)
    out.print(f"    reviewers: {', '.join(record['reviewers'])} ({record['needed']} approval(s) needed)"
              + (f"; waiting for {', '.join(record['pending'])}" if record["pending"] else ""), markup=False)
    if record["escalated"]:
        out.print(f"    escalated: {record['escalated']['reason']}", markup=False)
    for i, question in enumerate(record["questions"]):
        out.print(f"    Q{i + 1}. {question}", markup=False)
        for who, given in record["answers"].items():
            texts = given["answers"]
            out.print(f"        {who} ({given['verdict']}): {texts[i] if len(texts) > 1 else texts[0]}", markup=False)
    if whole:
        out.print("    the change" + (" (cut: its beginning only)" if record["cut"] else "") + ":", markup=False)
        out.print(record["diff"], markup=False)
    else:
        out.print(f"    the change: `council reviews {record['id']}`", markup=False)


def give_answer(review_id: str, texts: Sequence[str], verdict: Verdict | None, key: str | None, store: str | None,
                home: str | None, address: str | None) -> None:
    """A person's signed answer to review ``review_id`` (see the module); the one line that says what it did."""
    if verdict is None:
        raise CouncilError(f"say what you conclude of {review_id}: add --approve, --changes or --comment")
    if key is None:
        raise CouncilError(f"a person answers a review with their key, as the policy pins it: add --key NAME "
                           f"(`council reviews {review_id}` names its reviewers)")
    texts = [t for t in texts if t.strip()] or (["approved"] if verdict == "approve" else [])
    if not texts:
        raise CouncilError(f"say why: `council answer {review_id} --{verdict} \"…\"` (one text for every question, or "
                           "one per question)")
    with log_writer(settings_for(store, address)) as writer:  # first: a running council of another log refuses
        signer = keyring(home, store).signer(key)
        book = read_authority(store).reviews
        intent = reviews.person_answer(book, review_id, signer, verdict, texts)
        writer.append([intent])
    reviewer = getattr(intent.events[0], "reviewer", "")
    out.print(f"answered {review_id} as {reviewer} ({verdict}); the council decides it once enough answers are in "
              f"(`council reviews {review_id}` shows where it stands)")
