"""The coder's review of a security-sensitive change, before it is committed.

When the policy's ``[reviews]`` table calls a change sensitive (a path it names, a word in a changed
line), the coder asks for a review of the change (:func:`actors.tools.reviewing.ask_review`) and its
task waits until the council decides it. Then:

* **approved**: the change is committed as it is;
* **changes**: what the reviewers said goes back to the model as one more edit round, and the new
  change is reviewed again — at most ``rounds`` times (the table's), then the task fails for good
  with the reviewers' words;
* **expired** (nobody answered, even after escalating): the task fails for good. A change is never
  committed without the approvals the policy asks for.

Every model call and every review of an earlier attempt is read back from the log, so the attempt
that resumes after a decision reaches the same change, finds the same review, and pays for nothing twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.coding import context
from actors.skills import PermanentFailure
from actors.tools.reviewing import ask_review, change_of, review_table
from governance import reviews

if TYPE_CHECKING:
    from actors.coding.coder import EditLoop


def reviewed(loop: EditLoop, system: str, instruction: str, rounds: int, max_tokens: int, summary: str) -> str:
    """Have the change ``loop`` made reviewed if the policy calls it sensitive, revising it as the reviewers ask
    (see the module); the summary of the change to commit. Raises
    :class:`~actors.tools.gated.AwaitingAuthority` while a review is open, :class:`PermanentFailure` when the change
    may not be committed."""
    tools = loop.tools
    table, _ = review_table(tools)
    if not table.active:
        return summary
    base = loop.name
    for revision in range(table.rounds + 1):
        paths = sorted(loop.changed)
        diff, added = change_of(loop.original, loop.state, paths)
        why = table.sensitive(paths, added)
        if why is None:
            return summary
        ledger = ask_review(tools, paths, diff, reason=why, request_id=tools.models.request_id)
        decided, requested = ledger.decided, ledger.requested
        assert decided is not None and requested is not None
        if decided.outcome == "approved":
            return summary
        if decided.outcome == "expired" or revision == table.rounds:
            raise PermanentFailure(f"review {requested.review_id} of the change to {', '.join(paths)} ended "
                                   f"{decided.outcome} ({decided.reason}); nothing was committed. What the reviewers "
                                   f"said:\n{reviews.feedback(ledger)}")
        loop.name = f"{base}.review-{revision + 1}"  # the revision's calls and commit are named apart from the first's
        question = _revision(instruction, reviews.feedback(ledger), {p: loop.state[p] for p in paths})
        summary = loop.run(context.messages(system, question), rounds, max_tokens)
    raise AssertionError("unreachable: the last round returns or raises")


def _revision(instruction: str, said: str, files: dict[str, str]) -> str:
    """What the model is asked when reviewers asked for changes: the task, their answers and the files as they are
    now, as data."""
    parts = ["Your change was reviewed before being committed, and the reviewers asked for changes. Make the "
             "changes they ask for, in the files below as they are now (after your change), and nothing else.",
             "The task was:\n" + context.data_block("TASK", instruction),
             "What the reviewers said, question by question:\n" + context.data_block("REVIEW", said)]
    parts += [f"The file {path} as it is now:\n" + context.data_block(f"FILE {path}", text)
              for path, text in files.items()]
    return "\n\n".join(parts)
