"""The test writer and the loop that makes code pass its tests: ``test.write``, ``code.fix``, ``test.run``.

``test.write`` asks the tester's model for pytest tests of a change (the files the coder's task
changed, or the files named), through the same edit loop as the coder — the policy lets a tester
write tests, not the code under test — commits them, runs them in the sandbox and reports. A
failing run is a result, not a failure: the tests are the question the fix loop answers.

The fix loop is planned, not improvised: ``code.fix`` → ``test.run`` pairs, as many as the plan's
fix rounds, each pair a task of its own (so a crash resumes the loop where it was, and every
round is in the log). ``code.fix`` reads the last run: if it passed there is nothing to fix and
it says so; else the coder's model gets the failures and may change anything but the tests
(``keep_off``: a fix never edits a test to make it pass — unless the task says the test is wrong).
A fix the policy calls security-sensitive is reviewed before it is committed, as the coder's change is
(:mod:`actors.coding.review_request`).
``test.run`` runs the tests again after a fix (or carries the last result on when there was
nothing to fix). The last ``test.run`` of the plan fails for good if the tests still fail, which
stops the request before review, build and deployment.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from actors.coding import context, review_request
from actors.coding.coder import CodeWritten, EditLoop
from actors.coding.edits import FORMAT
from actors.coding.skill_io import TEST_FILE, ModelWork, plain, validated
from actors.pipeline.results import StepResult, TestResult, read
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.ci import CiTools

TESTER = ("You are the test writer of a software team. You write pytest tests for a change: small, independent "
          "tests of the behaviour the task asks for, its edge cases and its errors. Put them in files under the "
          "tests directory named test_*.py. Do not change the code under test. The tests run from the "
          "repository's root with `python -m pytest`, so modules at the root import by their name. Answer first "
          "with one sentence that says what you test, then the SEARCH/REPLACE blocks.\n\n")
FIXER = ("You are the coder of a software team. Tests of your change fail: change the code so that they pass. "
         "Do not change the tests: they say what the task asks for. Answer first with one sentence that says what "
         "you fix, then the SEARCH/REPLACE blocks.\n\n")


class TestTask(ModelWork):
    """What ``test.write`` is asked: the request's words, the change to test, where tests go, its limits."""

    __test__ = False  # inputs, not a test class for pytest to collect
    instruction: Annotated[str, Field(min_length=1, max_length=20_000)]
    code: str | None = None
    """The coder's task, whose result names the files it changed."""
    files: list[Annotated[str, Field(min_length=1, max_length=1_000)]] = Field(default_factory=list, max_length=50)
    """The files under test, when there is no coder's task to ask."""
    tests: str = "tests"


class TestsWritten(StepResult, frozen=True, kw_only=True):
    """What the test writer did, and what its tests said of the change."""

    __test__ = False

    files: list[str]
    commit: str | None
    summary: str
    rounds: int
    refused: int
    model: str
    cost: float
    run: TestResult


@skill("test.write", toolset=Toolset.CI, actions=("file.read", "llm.call", "file.write", "git.commit", "command.run"))
def write_tests(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Write tests for a change, commit them, run them, report (see the module); failing tests are a result."""
    task: TestTask = validated(TestTask, inputs, "test.write")
    under_test = list(task.files) or (tools.upstream(task.code, CodeWritten).files if task.code else [])
    models = tools.models
    tree = tools.read_tree(".", remember=models.blobs)
    wanted = (f"Write pytest tests, in {task.tests}/, for this change. What was asked of it:\n{task.instruction}"
              + (f"\n\nThe files it changed: {', '.join(under_test)}" if under_test else ""))
    question, _ = context.context(tree, wanted, [], under_test, map_tokens=task.map_tokens,
                                  file_tokens=task.file_tokens)
    loop = EditLoop(tools, dict(tree), "test.write",
                    keep_off=lambda path: None if TEST_FILE.search(path) else
                    f"{path} is not a test file: write tests under {task.tests}/ as test_*.py, and leave the code "
                    "under test to the coder")
    summary = loop.run(context.messages(TESTER + FORMAT, question), task.rounds, task.max_tokens)
    commit = loop.save(f"tests: {summary or task.instruction.splitlines()[0]}"[:2000])
    run = read(tools.run_tests(".", [task.tests]), TestResult, "the test run")
    done = TestsWritten(files=sorted(loop.changed), commit=commit, summary=summary, rounds=loop.rounds,
                        refused=loop.refused, model=loop.model, cost=round(loop.cost, 6), run=run)
    return plain(done)


class FixTask(ModelWork):
    """What ``code.fix`` is asked: the request's words, the last test run's task, and its limits."""

    instruction: Annotated[str, Field(min_length=1, max_length=20_000)]
    after: str
    """The task whose result is the last test run (``test.write`` or ``test.run``)."""
    tests_wrong: bool = False
    """The task says the tests themselves are wrong: then the fix may change them too."""


class Fixed(StepResult, frozen=True, kw_only=True):
    """What a fix round did: nothing (the tests passed), or the files it changed and its commit."""

    fixed: bool
    reason: str = ""
    files: list[str] = []
    commit: str | None = None
    rounds: int = 0
    refused: int = 0
    model: str = ""
    cost: float = 0.0


@skill("code.fix", toolset=Toolset.CI, actions=("file.read", "llm.call", "file.write", "git.commit", "command.run"))
def fix_code(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Make the code pass the last test run's failing tests, without touching the tests (see the module)."""
    task: FixTask = validated(FixTask, inputs, "code.fix")
    last = last_run(tools, task.after)
    if last.ok:
        return plain(Fixed(fixed=False, reason=f"the last run passed: {last.summary()}"))
    models = tools.models
    tree = tools.read_tree(".", remember=models.blobs)
    failing = [f"{name}: {last.details.get(name, '')[-1500:]}".strip() for name in last.failures[:10]]
    wanted = (f"These tests fail ({last.summary()}); change the code so that they pass.\n\nWhat was asked of the "
              f"code:\n{task.instruction}")
    question, _ = context.context(tree, wanted, failing, [], map_tokens=task.map_tokens,
                                  file_tokens=task.file_tokens)
    loop = EditLoop(tools, dict(tree), "code.fix",
                    keep_off=lambda path: None if task.tests_wrong or not TEST_FILE.search(path) else
                    f"{path} is a test: a fix changes the code under test, never the tests that judge it")
    summary = loop.run(context.messages(FIXER + FORMAT, question), task.rounds, task.max_tokens)
    if not loop.changed:
        raise PermanentFailure(f"the fix of {loop.model} leaves every file as it was")
    summary = review_request.reviewed(loop, FIXER + FORMAT, wanted, task.rounds, task.max_tokens, summary)
    commit = loop.save(f"fix: {summary or 'make the failing tests pass'}"[:2000])
    return plain(Fixed(fixed=True, files=sorted(loop.changed), commit=commit, rounds=loop.rounds,
                        refused=loop.refused, model=loop.model, cost=round(loop.cost, 6)))


class RunTask(BaseModel):
    """What ``test.run`` is asked: the fix round it follows, where the tests are, and whether it is the last."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fix: str
    """The ``code.fix`` task this run follows."""
    after: str
    """The task whose result is the test run before the fix."""
    tests: str = "tests"
    last: bool = False
    """The plan's last run: tests that still fail stop the request."""


@skill("test.run", toolset=Toolset.CI, actions=("file.read", "command.run"))
def run_tests(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Run the tests again after a fix (or carry the last run on, when there was nothing to fix)."""
    task: RunTask = validated(RunTask, inputs, "test.run")
    fix = tools.upstream(task.fix, Fixed)
    run = last_run(tools, task.after) if not fix.fixed else read(tools.run_tests(".", [task.tests]), TestResult,
                                                                   "the test run")
    if task.last and not run.ok:
        first = next(iter(run.details.items()), None)
        said = f"\n{first[0]}:\n{first[1][-1200:]}" if first else ""
        raise PermanentFailure(f"the tests still fail after the fix rounds ({run.summary()}): "
                               f"{', '.join(run.failures[:5]) or 'no test passed'}{said}")
    return plain(run)


def last_run(tools: CiTools, task_id: str) -> TestResult:
    """The test run task ``task_id`` recorded: a ``test.write``'s own run, or a ``test.run``'s result."""
    found = tools.upstream(task_id, _AnyRun)
    return found.run if found.run is not None else read(msgspec.to_builtins(found.direct()), TestResult, task_id)


class _AnyRun(StepResult, frozen=True, kw_only=True):
    """Either result that holds a test run: ``TestsWritten`` (its ``run``) or a ``TestResult`` itself."""

    run: TestResult | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[str] = []
    details: dict[str, str] = {}
    ok: bool = False

    def direct(self) -> TestResult:
        return TestResult(passed=self.passed, failed=self.failed, errors=self.errors, skipped=self.skipped,
                          failures=self.failures, details=self.details, ok=self.ok)
