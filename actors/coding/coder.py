"""The coder (``code.write``): a task in words becomes edits to the request's tree, committed under its warrant.

One attempt:

1. **Read the tree** (one ``file.read`` under the warrant; what the policy would not let the coder
   read, such as secrets, is left out), and keep what was read as a blob: an attempt run again
   after a crash works from exactly what the first one read.
2. **Ask the model** with the task, the patterns and practices the team keeps that bear on it and
   the files it touches (:mod:`actors.coding.recall`), and the repository, all as data
   (:mod:`actors.coding.context`), for SEARCH/REPLACE edits (:mod:`actors.coding.edits`). Every
   call is governed, budgeted and recorded (:class:`~actors.llm.calls.ModelCalls`), so a rerun is
   answered from the log.
3. **Check the edits in memory**: a reply whose blocks cannot be read, a block that does not match
   its file, a Python file an edit leaves uncompilable, or a file the policy does not let the coder
   write is refused, and the exact failure goes back to the model — at most ``rounds`` times, each
   a recorded, budgeted call; the blocks that did apply stand. Every answer is judged in the log:
   ``edit.applied`` or ``edit.malformed`` (with why), so the rate of well-formed edits per model
   is a query. After the last round the task fails for good with the last failure.
4. **Review**, if the policy calls the change security-sensitive (:mod:`actors.coding.review_request`): the task
   waits for the reviewers, and what they ask for is one more round of edits.
5. **Write and commit**: each changed file through the gated ``file.write``, then one commit of
   exactly those files, with the warrant as its trailer.

Nothing is written before the edits of every round are settled in memory, and every step is
replayed from the log on a rerun, so a crash at any point repeats no paid call and no commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from actors.coding import context, review_request
from actors.coding.edits import FORMAT, Applied, EditBlock, MalformedEdit, apply_edits, failure_report, parse_edits
from actors.coding.recall import recall
from actors.coding.skill_io import ModelWork, plain, validated
from actors.llm.calls import Answer
from actors.llm.types import Message
from actors.pipeline.results import StepResult
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.gated import Tools
from actors.tools.git import Identity
from events.catalogue import EditApplied, EditMalformed
from events.catalogue.models import EditRefusal

SYSTEM = ("You are the coder of a software team. You change a repository by answering with edits, and only with "
          "edits: first one sentence that says what you change, then the SEARCH/REPLACE blocks.\n\n" + FORMAT)


class CodeTask(ModelWork):
    """What ``code.write`` is asked: an instruction, what it must meet, the files to look at, and its limits."""

    instruction: Annotated[str, Field(min_length=1, max_length=20_000)]
    acceptance: list[Annotated[str, Field(max_length=2_000)]] = Field(default_factory=list, max_length=50)
    files: list[Annotated[str, Field(min_length=1, max_length=1_000)]] = Field(default_factory=list, max_length=50)
    """Files to show the model whole, besides those the instruction names and the search finds."""
    root: str = "."
    """The part of the tree the coder reads (relative to the request's tree)."""
    message: Annotated[str, Field(max_length=2_000)] | None = None
    """The commit message (default: the instruction's first line)."""
    commit: bool = True


class CodeWritten(StepResult, frozen=True, kw_only=True):
    """What the coder did: the files it changed, its commit, and what it took."""

    files: list[str]
    commit: str | None
    summary: str
    rounds: int
    """How many answers it took (1: the first answer's edits all applied)."""
    refused: int
    """How many of those answers had edits refused."""
    model: str
    cost: float
    calls: int
    shown: list[str]
    """The files shown to the model whole."""
    knowledge: list[str] = []
    """The knowledge entries shown with the task (``<id>@<revision>``)."""


@skill("code.write", toolset=Toolset.GATED, actions=("file.read", "llm.call", "file.write", "git.commit"))
def write_code(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Turn ``inputs`` (a :class:`CodeTask`) into edits to the request's tree and commit them (see the module)."""
    task = validated(CodeTask, inputs, "code.write")
    models = tools.models
    tree = tools.read_tree(task.root, remember=models.blobs)
    about = context.focus_of(tree, task.instruction, task.acceptance, task.files)
    known = recall(models, "code.write", " ".join([context.task_text(task.instruction, task.acceptance), *about]),
                   ("pattern", "practice"), task.knowledge_tokens)
    question, shown = context.context(tree, task.instruction, task.acceptance, task.files,
                                      map_tokens=task.map_tokens, file_tokens=task.file_tokens, knowledge=known)
    loop = EditLoop(tools, dict(tree))
    conversation = context.messages(SYSTEM, question)
    summary = loop.run(conversation, task.rounds, task.max_tokens)
    summary = review_request.reviewed(loop, SYSTEM, task.instruction, task.rounds, task.max_tokens, summary)
    changed = sorted(loop.changed)
    if not changed:
        raise PermanentFailure(f"the edits of {loop.model} leave every file as it was; nothing to commit")
    message = task.message or task.instruction.strip().splitlines()[0][:200]
    commit = loop.save(f"{message}\n\n{summary}".strip() if task.commit else None)
    written = CodeWritten(files=changed, commit=commit, summary=summary, rounds=loop.rounds, refused=loop.refused,
                          model=loop.model, cost=round(loop.cost, 6), calls=loop.calls, shown=list(shown.files),
                          knowledge=list(models.knowledge))
    return plain(written)


class EditLoop:
    """Asks for edits until every block of an answer applies, refusing and reflecting the rest; works in memory."""

    def __init__(self, tools: Tools, state: dict[str, str], name: str = "code.write",
                 keep_off: Callable[[str], str | None] = lambda path: None) -> None:
        """``state`` is the tree as read (path → text), changed in place as edits apply; ``name`` names the calls
        (``<name>.<round>``) among the task's others; ``keep_off`` says why the agent must leave a path alone, on top
        of the policy (None: it may edit it)."""
        self.tools, self.state, self.name, self.keep_off = tools, state, name, keep_off
        self.original = dict(state)
        self.changed: set[str] = set()
        self.rounds = self.refused = self.calls = 0
        self.cost, self.model = 0.0, ""

    def run(self, conversation: list[Message], rounds: int, max_tokens: int) -> str:
        """Ask and apply until an answer's edits all apply; the summary sentence of the last answer. Raises
        :class:`PermanentFailure` with the last failure once ``rounds`` refused answers were sent back."""
        for number in range(1, rounds + 2):
            self.rounds = number
            # temperature 0: edits are asked for, not prose; an answer cut off at max_tokens is judged here (its
            # edits are refused and it is told), not taken for a failed call.
            answer: Answer[Any] = self.tools.models.ask(conversation, name=f"{self.name}.{number}",
                                                        max_tokens=max_tokens, temperature=0.0, cut_ok=True)
            self.calls += answer.calls
            self.cost += answer.cost
            self.model = answer.model
            failure: str | None
            if answer.reply.finish == "length":
                failure = self._refused(answer.key, number, answer.model, "cut-off", (
                    f"Your answer was cut off after {max_tokens} tokens, before its edits ended; none of them was "
                    "applied. Send only the blocks needed, each as small as it can be (the lines that change and "
                    "a few around them)."), [], 0)
            else:
                failure = self._apply(answer.text, answer.key, number, answer.model)
            if failure is None:
                return _summary(answer.text)
            self.refused += 1
            conversation = [*conversation, Message(role="assistant", content=answer.text),
                            Message(role="user", content=failure)]
        raise PermanentFailure(f"the edits of {self.model} were refused {self.refused} time(s); the last time: "
                               f"{failure}")

    def save(self, message: str | None) -> str | None:
        """Write every file the edits changed (each a gated ``file.write``), then commit exactly those files with
        ``message`` under the warrant (no commit if ``message`` is None, or nothing changed); the commit's id."""
        changed = sorted(self.changed)
        for path in changed:
            self.tools.write_file(path, self.state[path])
        if message is None or not changed:
            return None
        with self.tools.named(f"{self.name}:commit"):
            done = self.tools.commit(message, Identity.agent(self.tools.gatekeeper.agent_id, self.tools.warrant_id),
                                     paths=changed)
        return str(done["commit"]) if done.get("commit") else None

    def _apply(self, reply: str, key: str, number: int, model: str) -> str | None:
        """Apply what of ``reply`` applies; the text to send back if anything was refused (None if all applied)."""
        try:
            blocks = parse_edits(reply)
        except MalformedEdit as exc:
            return self._refused(key, number, model, "unreadable", str(exc), [], 0)
        refusals: list[tuple[EditBlock, str]] = []
        allowed = []
        writable = set(self.tools.gatekeeper.permitted(self.tools.warrant_id or "", "file.write",
                                                       sorted({b.path for b in blocks})))
        for block in blocks:
            why = None if block.path in writable else (f"the policy does not let this agent write {block.path}; "
                                                       "change other files, or leave this one as it is")
            why = why or self.keep_off(block.path)
            if why is not None:
                refusals.append((block, why))
            else:
                allowed.append(block)
        applied = apply_edits({b.path: self.state.get(b.path) for b in allowed}, allowed)
        kind: EditRefusal = "refused" if refusals else "does-not-apply"
        refusals += applied.failed
        good = {}
        for path, text in applied.changed.items():
            problem = _compiles(path, text)
            if problem is None:
                good[path] = text
            else:
                refusals += [(b, problem) for b in allowed if b.path == path]
                kind = "does-not-compile"
        self.state.update(good)
        self.changed |= {path for path, text in good.items() if text != self.original.get(path)}
        self.changed -= {path for path, text in good.items() if text == self.original.get(path)}
        if not refusals:
            self.tools.models.note(EditApplied(task_id=self.tools.task_id, agent_id=self.tools.gatekeeper.agent_id,
                                               key=key, model=model, round=number, blocks=len(blocks),
                                               files=sorted(good)), f"{self.name}:{number}")
            return None
        report = failure_report(Applied(changed=good, failed=refusals,
                                        succeeded=[b for b in applied.succeeded if b.path in good]))
        return self._refused(key, number, model, kind, report, sorted({b.path for b, _ in refusals}),
                             len(blocks) - len(refusals))

    def _refused(self, key: str, number: int, model: str, kind: EditRefusal, error: str, files: list[str],
                 applied: int) -> str:
        self.tools.models.note(EditMalformed(task_id=self.tools.task_id, agent_id=self.tools.gatekeeper.agent_id,
                                             key=key, model=model, round=number, refusal=kind, error=error[:60_000],
                                             files=files, applied=max(0, applied)), f"{self.name}:{number}")
        return error


def _compiles(path: str, text: str) -> str | None:
    """Why the Python file ``path`` would not compile with ``text`` (None if it does, or is not Python).

    The text is compiled, never run: a model's code is hostile until proven otherwise.
    """
    if not path.endswith(".py"):
        return None
    try:
        compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        shown = (exc.text or "").rstrip()
        return (f"{path} would not compile after this edit: {exc.msg} ({where})"
                + (f":\n    {shown}" if shown else "") + "\nThe edit was not applied; send a corrected block.")
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"{path} would not compile after this edit: {type(exc).__name__}: {exc}. The edit was not applied."
    return None


def _summary(reply: str) -> str:
    """The answer's opening sentence, before its first block (what the model says it changed)."""
    for line in reply.splitlines():
        text = line.strip().strip("*#` ")
        if text and not text.startswith(("<<<<<<<", "```")):
            return text[:500]
    return ""
