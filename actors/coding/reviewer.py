"""The reviewer (``code.review``): a change read as a senior engineer reads it, the automatic fixes as the reviewer's
own commit, and the verdict that stops a request.

One review:

1. **The change**: ``git diff base..HEAD`` and the files it names (gated commands that only read), each file's part
   of the diff, and the tree as read, kept as a blob (a rerun reads exactly what the first attempt read). Given
   ``files`` instead of a base, those files whole are the change. Deleted files, and those that are not text or that
   the warrant may not read, are skipped; past :data:`MAX_FILES` changed files the rest are left out, by name.
2. **The linters**: the pipeline's own static review, ruff and bandit over the whole tree
   (:meth:`~actors.tools.ci.CiTools.review`, which records its ``review.reported`` as ``ci.review`` does). Its
   findings on the changed files are kept, each ``known`` if the static review found it before the change too.
3. **The model**, once per changed text file: the file's diff and the file itself (lines numbered) as data blocks
   (:mod:`actors.coding.context`), and the linters' findings there, for findings that fit :class:`ReviewAnswer`
   (an answer that does not is repaired by :class:`~actors.llm.calls.ModelCalls`). An answer is about the one file
   it was asked about: the schema has no path, so a finding cannot name another file (an answer that tries does not
   fit, and is repaired); a line past the file's end becomes 0, the file as a whole.
4. **The fixes**: if asked to, the findings the model calls fixable — on files the change touched, never on tests —
   go to one :class:`~actors.coding.coder.EditLoop`, whose edits become the reviewer's own commit under its warrant.
   A fix that never applies does not fail the review: it is one more finding, of severity info.
5. **The verdict**: a ``review.reported`` of every finding on the change, most severe first; then, if any finding
   the change added is at or above ``threshold``, :class:`PermanentFailure` naming the first — which stops the
   request, after the fixes are committed and the report is in the log.

Every step is answered from the log on a rerun (the tree, the static review, each model call, the fix and its
commit, the report), so a crash at any point pays for nothing twice and commits nothing twice.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actors.coding import context
from actors.coding.coder import EditLoop
from actors.coding.edits import FORMAT
from actors.coding.skill_io import TEST_FILE, plain, validated
from actors.llm.calls import Answer
from actors.pipeline.results import StepResult, at_least
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.ci import CiTools
from actors.tools.gated import action_key
from events.catalogue import Finding, GitCommitted, ReviewReported
from events.catalogue.fields import Count
from events.catalogue.work import Severity

MAX_FILES = 20
"""The most changed files one review asks the model about; the rest are left out, by name."""
SHOWN = 60_000
"""The most characters of one file, and of its diff, put before the model."""
FIX = "code.review.fix"
"""The name of the fix loop's model calls, and (with ``:commit``) of its commit."""
REVIEWED = re.compile(r"(?m)^The change reviewed: ([0-9a-f]{7,64})\.\.([0-9a-f]{7,64})$")
"""The line of the fix commit's message that names the change reviewed (a rerun reads the same change again)."""
REPORT = "code-review"
"""The named scope of the review's own ``review.reported`` (see :func:`reported_by`)."""

REVIEWER = (
    "You are the reviewer of a software team: a senior engineer reviewing one file of a change. Check the change for "
    "security (injection, unsafe deserialisation, secrets in code, unchecked input), performance (needless work, "
    "quadratic loops, blocking calls), code smells (duplication, long functions, dead code, swallowed errors), "
    "naming (names that do not say what a thing is), documentation (public functions without docstrings, comments "
    "that no longer hold) and tests (behaviour the change adds without a test). Report only real problems, each at "
    "the number of the line it is on (0 for the file as a whole), at most 20, with a severity: critical "
    "(exploitable as it is), high (must be fixed before merging), medium, low, info. Say what to do in "
    "`suggestion`. Set `fixable` only when the fix is a small edit to this file that needs no decision by a person. "
    "Judge what the change adds and alters; mention older code only when the change makes it worse. The linters' "
    "findings are listed: do not repeat them. Answer with JSON that fits the schema, and nothing else.")
FIXER = ("You are the reviewer of a software team, applying your own review. Make the change each finding's "
         "suggestion asks for, in the file it names, and nothing else: no other refactoring, no tests. Answer first "
         "with one sentence that says what you fix, then the SEARCH/REPLACE blocks.\n\n" + FORMAT)

Kind = Literal["security", "performance", "smell", "naming", "documentation", "tests"]


class ModelFinding(BaseModel):
    """One finding as the model gives it: where in the file, what sort, how severe, what and what to do.

    Every field is required and bounded: a small model given room to ramble loops until it is cut off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line: Annotated[int, Field(ge=0, le=1_000_000)]
    kind: Kind
    severity: Severity
    message: Annotated[str, Field(min_length=1, max_length=500)]
    suggestion: Annotated[str, Field(max_length=500)]
    fixable: bool


class ReviewAnswer(BaseModel):
    """The model's review of one file: at most 20 findings (none if the change is sound)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    findings: list[ModelFinding] = Field(max_length=20)


class ReviewTask(BaseModel):
    """What ``code.review`` is asked: the change (from a base revision, or some files), when to stop, and whether to
    fix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The revision the change starts from: the change is ``base..HEAD``."""
    files: list[Annotated[str, Field(min_length=1, max_length=1_000)]] = Field(default_factory=list, max_length=200)
    """The files to review, whole; with ``base`` too, those of them the change touched, and their part of it."""
    threshold: Severity = "high"
    """The severity at or above which a finding the change added stops the request."""
    fix: bool = True
    """Apply the findings the model calls fixable, as the reviewer's own commit."""
    rounds: Annotated[int, Field(ge=0, le=3)] = 1
    """How often refused fix edits go back to the model."""
    max_tokens: Annotated[int, Field(ge=256, le=64_000)] = 4096

    @field_validator("base")
    @classmethod
    def _a_revision(cls, base: str | None) -> str | None:
        if base is not None and (base.startswith("-") or any(c.isspace() for c in base)):
            raise ValueError(f"{base!r} is not a revision; give a branch, tag or commit id")
        return base

    @model_validator(mode="after")
    def _something_to_review(self) -> ReviewTask:
        if self.base is None and not self.files:
            raise ValueError("nothing to review: give base (the revision the change starts from; the change is "
                             "base..HEAD) or files (the paths to review)")
        return self


class CodeReviewed(StepResult, frozen=True, kw_only=True):
    """What the review found on the change, what it fixed, and what it took."""

    findings: list[Finding]
    """The first 200 findings, most severe first: the linters' on the changed files and the model's."""
    counts: dict[Severity, Count]
    """How many findings of each severity, all of them."""
    threshold: Severity
    blocking: Count
    """How many findings the change added at or above the threshold (any stops the request)."""
    fix_commit: str | None = None
    """The reviewer's own commit of the automatic fixes, if it made one."""
    fixed: Count = 0
    """How many fixable findings were on the files that commit changed."""
    model: str = ""
    cost: float = 0.0
    calls: Count = 0
    reviewed: list[str] = []
    """The files the model was asked about."""
    left_out: list[str] = []
    """Changed text files past the first 20, not put before the model (the linters' findings on them are kept)."""
    skipped: list[str] = []
    """Changed files that are not text, or that the warrant may not read."""


@dataclass(frozen=True)
class Change:
    """The files a change touched (deleted ones left out), and each one's part of its diff (none without a base)."""

    files: list[str]
    hunks: dict[str, str]
    base: str | None
    """The base as a commit id."""
    head: str | None
    """HEAD as a commit id, before the reviewer's fixes."""


@dataclass
class Spent:
    """What the review's model calls took, all of them: their cost, how many, and the model that answered last."""

    cost: float = 0.0
    calls: int = 0
    model: str = ""

    def add(self, cost: float, calls: int, model: str) -> None:
        """Count calls that cost ``cost`` and were answered by ``model`` (if they were answered at all)."""
        self.cost, self.calls, self.model = self.cost + cost, self.calls + calls, model or self.model


@skill("code.review", toolset=Toolset.CI, actions=("file.read", "llm.call", "command.run", "file.write", "git.commit"))
def review_code(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Review a change with the linters and the model, fix what can be fixed, report, and stop the request on a
    finding at or above the threshold (see the module)."""
    task: ReviewTask = validated(ReviewTask, inputs, "code.review")
    models = tools.models
    change = _change(tools, task)
    tree = tools.read_tree(".", remember=models.blobs)
    readable = [p for p in change.files if p in tree]
    reviewed, left_out = readable[:MAX_FILES], readable[MAX_FILES:]
    static, compared = _static(tools, task, change) if change.files else ([], "")
    static += weakened_tests(change.hunks)
    spent = Spent()
    found: list[Finding] = []
    for path in reviewed:
        answer: Answer[ReviewAnswer] = models.ask(
            context.messages(REVIEWER, _question(path, tree[path], change.hunks.get(path), change.base,
                                                 [f for f in static if f.path == path])),
            name=_call_name(path), schema=ReviewAnswer, max_tokens=task.max_tokens)
        spent.add(answer.cost, answer.calls, answer.model)
        found += [_finding(path, f, len(tree[path].splitlines())) for f in
                  (answer.answer.findings if answer.answer else [])]
    offered = [f for f in found if f.fixable] if task.fix else []
    fix_commit, fixed = _fix(tools, task, change, tree, offered, reviewed, found, spent) if offered else (None, 0)
    with tools.named(REPORT):
        event = tools.report_review([*static, *found], task.threshold, fix_commit, compared)
    done = CodeReviewed(findings=list(event.findings), counts=dict(event.counts), threshold=event.threshold,
                        blocking=event.blocking, fix_commit=event.fix_commit, fixed=fixed, model=spent.model,
                        cost=round(spent.cost, 6), calls=spent.calls, reviewed=reviewed, left_out=left_out,
                        skipped=[p for p in change.files if p not in tree])
    if event.blocking:
        first = next(f for f in event.findings if not f.known and at_least(f.severity, event.threshold))
        raise PermanentFailure(
            f"{event.blocking} review finding(s) at or above {event.threshold} in the change; the first: "
            f"{first.path}:{first.line} {first.kind or first.rule} {first.severity} {first.message}"
            + (f" (the automatic fixes are committed as {event.fix_commit[:12]})" if event.fix_commit else ""))
    return plain(done)


def _fix(tools: CiTools, task: ReviewTask, change: Change, tree: dict[str, str], offered: Sequence[Finding],
         reviewed: Sequence[str], found: list[Finding], spent: Spent) -> tuple[str | None, int]:
    """Fix the ``offered`` findings as the reviewer's own commit: (its id, how many findings were on the files it
    changed). A fix that never applies adds a finding of its own to ``found`` instead, and commits nothing."""
    loop = EditLoop(tools, dict(tree), FIX, keep_off=lambda path: _kept_off(path, reviewed))
    commit, fixed = None, 0
    with tools.named("fix"):
        try:
            summary = loop.run(context.messages(FIXER, _fix_question(offered, tree)), task.rounds, task.max_tokens)
        except PermanentFailure as failed:
            found.append(Finding(tool="model", rule="fix", severity="info", path=offered[0].path, kind="fix",
                                 message=f"the automatic fix did not apply: {failed}"[:4000]))
        else:
            fixed = sum(1 for f in offered if f.path in loop.changed)
            commit = loop.save(f"review: automatic fixes ({fixed} finding{'' if fixed == 1 else 's'})"
                               + (f"\n\n{summary}" if summary else "")
                               + (f"\n\nThe change reviewed: {change.base}..{change.head}" if change.base else ""))
    spent.add(loop.cost, loop.calls, loop.model)
    return commit, fixed


def reported_by(task_id: str, event: ReviewReported) -> bool:
    """Whether ``event`` is the report of the review task ``task_id`` (not the linters' report it also records)."""
    return event.key.startswith(task_id) and f"#{REPORT}." in event.key


def _change(tools: CiTools, task: ReviewTask) -> Change:
    """The change under review, read with gated git commands (see the module)."""
    asked = sorted({posixpath.normpath(p).removeprefix("./") for p in task.files})
    if task.base is None:
        return Change(asked, {}, None, None)
    # A rerun must review what the first attempt reviewed. Once the reviewer's own fixes are committed, HEAD is that
    # commit and a base like HEAD~1 names another commit; so the commits the first attempt resolved are read back
    # from the fix commit's message, which names them. The commands differ then, so they are named apart: the same
    # key never names two commands (the gate would refuse the rerun as nondeterministic).
    committed = tools.recorded(action_key(tools.task_id, f"{FIX}:commit", 1, tools.requeues), GitCommitted)
    pinned = REVIEWED.search(committed.message) if committed is not None else None
    with tools.named("change-again" if pinned else "change"):
        if pinned:
            base, head = pinned.group(1), pinned.group(2)
        else:
            base, head = _git(tools, ["rev-parse", f"{task.base}^{{commit}}", "HEAD^{commit}"],
                              f"base {task.base!r} is not a commit of the request's tree; give a branch, tag or "
                              "commit id it has").split()
        names = _git(tools, ["diff", "--name-only", "-z", "--diff-filter=d", base, head, "--"], "git diff failed")
        diff = _git(tools, ["diff", "--no-color", "--unified=5", base, head, "--"], "git diff failed")
    changed = [p for p in names.split("\0") if p]
    files = [p for p in changed if p in asked] if asked else changed
    return Change(sorted(files), _hunks(diff), base, head)


def _git(tools: CiTools, args: list[str], failed: str) -> str:
    done = tools.run(["git", *args], ".", 60.0, tail=1 << 22, reads_only=True)
    if done["returncode"] != 0:
        raise PermanentFailure(f"{failed} (git {args[0]}, exit {done['returncode']}: "
                               f"{str(done['stderr']).strip()[-300:] or 'no message'})")
    return str(done["stdout"])


def _hunks(diff: str) -> dict[str, str]:
    """Each file's part of a unified diff of git's (from its ``diff --git`` line to the next), by its path after."""
    parts: dict[str, str] = {}
    for chunk in re.split(r"(?m)^(?=diff --git )", diff):
        if not chunk.startswith("diff --git "):
            continue
        after = re.search(r"(?m)^\+\+\+ b/(.*?)\t?$", chunk)
        path = after.group(1) if after else chunk.split("\n", 1)[0].rsplit(" b/", 1)[-1]
        parts[path] = chunk
    return parts


def _static(tools: CiTools, task: ReviewTask, change: Change) -> tuple[list[Finding], str]:
    """The linters' findings on the changed files (each with its kind), and what they were compared with."""
    with tools.named("review"):
        done = tools.review(".", task.threshold, None, base=change.base)
    reported = tools.recorded(action_key(tools.task_id, "review", 1, tools.requeues), ReviewReported)
    touched = set(change.files)
    return ([_with_kind(f) for f in (reported.findings if reported else []) if f.path in touched],
            done.baseline)


ASSERTION = re.compile(r"\bassert\b|\.assert[A-Z_]\w*\(|\bpytest\.(raises|warns|approx)\b|\bpytest\.fail\(")
"""A line that checks something: ``assert``, unittest's ``self.assert…(``, ``pytest.raises``/``warns``/``approx``."""


def weakened_tests(hunks: dict[str, str]) -> list[Finding]:
    """A finding for each test file the change takes more checks out of than it puts in (a deleted test file takes
    them all): the rule that keeps a fix from making failing tests pass by weakening them.

    High severity, so it stops the request at the default threshold — unless the task said the tests were wrong,
    and a person lets it through. Counted from the diff's removed and added lines, never by running anything.
    """
    found = []
    for path, hunk in sorted(hunks.items()):
        if not TEST_FILE.search(path):
            continue
        lines = hunk.splitlines()
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---")
                      and ASSERTION.search(line))
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++")
                    and ASSERTION.search(line))
        if removed > added:
            found.append(Finding(tool="council", rule="weakened-tests", severity="high", path=path, kind="tests",
                                 message=f"the change takes {removed} check(s) out of this test file and puts {added} "
                                         "back: tests were weakened",
                                 suggestion="restore the checks, or say in the task that these tests are wrong"))
    return found


def _with_kind(finding: Finding) -> Finding:
    """A linter's finding with the kind of problem its rule finds (bandit's and ruff's ``S``: security)."""
    rule = finding.rule.upper()
    kind = ("security" if finding.tool == "bandit" or rule.startswith("S") else "naming" if rule.startswith("N")
            else "documentation" if rule.startswith("D") else "performance" if rule.startswith("PERF") else "smell")
    return msgspec.structs.replace(finding, kind=finding.kind or kind)


def _question(path: str, text: str, hunk: str | None, base: str | None, linted: Sequence[Finding]) -> str:
    """What the model is asked about one file: its diff and the file, as data, and the linters' findings there."""
    parts = [f"Review the change to {path}."]
    if base is None:
        parts.append("The whole file is under review.")
    elif hunk is None:
        parts.append("Its diff could not be told apart from the others': judge the file as it is.")
    else:
        parts.append("The change, as a unified diff:\n" + context.data_block(f"DIFF {path}", _cut(hunk)))
    numbered = "".join(f"{n:>5}  {line}" for n, line in enumerate(text.splitlines(keepends=True), 1))
    parts.append(f"The file {path} after the change, each line after its number:\n"
                 + context.data_block(f"FILE {path}", _cut(numbered)))
    if linted:
        listed = "\n".join(f"line {f.line}: {f.tool} {f.rule} ({f.severity}) {f.message}" for f in linted)
        parts.append("What the linters found in it:\n" + context.data_block(f"LINTER FINDINGS {path}", listed))
    return "\n\n".join(parts)


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN else text[:SHOWN] + f"\n… (cut: the first {SHOWN} characters of {len(text)})\n"


def _call_name(path: str) -> str:
    """The model call's name for ``path``: short enough for any key of the log, whatever the path."""
    return f"code.review.{path if len(path) <= 100 else hashlib.sha256(path.encode()).hexdigest()[:16]}"


def _finding(path: str, found: ModelFinding, lines: int) -> Finding:
    """The model's finding on ``path`` (``lines`` long): a line past the end becomes 0, the file as a whole."""
    return Finding(tool="model", rule=found.kind, severity=found.severity, path=path,
                   line=found.line if found.line <= lines else 0, message=found.message, kind=found.kind,
                   suggestion=found.suggestion, fixable=found.fixable and not TEST_FILE.search(path))


def _kept_off(path: str, reviewed: Sequence[str]) -> str | None:
    """Why the fix may not edit ``path`` (None: it may)."""
    if TEST_FILE.search(path):
        return (f"{path} is a test: the reviewer's automatic fixes change the code under review, never the tests; "
                "leave it as it is")
    if path not in reviewed:
        return (f"{path} is not a file of the change under review: the automatic fixes stay within the files the "
                "change touched")
    return None


def _fix_question(offered: Sequence[Finding], tree: dict[str, str]) -> str:
    """What the fix loop asks: the findings to fix and their files, as data."""
    listed = "\n".join(f"- {f.path}:{f.line} {f.kind} ({f.severity}): {f.message} Suggestion: {f.suggestion}"
                       for f in offered)
    parts = ["Fix these review findings, and change nothing else:\n" + context.data_block("FINDINGS", listed)]
    for path in sorted({f.path for f in offered}):
        parts.append(f"The file {path}:\n" + context.data_block(f"FILE {path}", tree[path]))
    return "\n\n".join(parts)
