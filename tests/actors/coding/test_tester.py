"""The test writer and the fix loop on a real log and git repository, pytest run in the sandbox, and the OpenAI SDK
against a loopback stand-in: tests written and run; a fix loop that converges; one that runs out of rounds; a fix
that tries to weaken the tests is refused.

No Ray: each skill is called as an agent calls it, one task after another, each task's result recorded in its stream
as the dispatcher would, so the next one reads it as its upstream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coding_support import block, git, repository, run_step
from governance_support import POLICY, Council, make_council
from model_standins import OpenAIStandin, Text

from actors.coding.tester import fix_code, run_tests, write_tests
from actors.skills import PermanentFailure
from events import streams
from events.catalogue import EditMalformed

KEY = "sk-tester-test-" + uuid.uuid4().hex
MODEL = "openai:gpt-tester"
TEAM_POLICY = POLICY + """
[[rules]]
name = "team-thinks-and-reads"
actions = ["llm.call", "file.read"]
roles = ["coder", "tester"]
effect = "allow"

[[rules]]
name = "coder-writes-code"
actions = ["file.write"]
roles = ["coder"]
resources = ["*.py", "src/**"]
effect = "allow"

[[rules]]
name = "tester-writes-and-runs-tests"
actions = ["file.write"]
roles = ["tester"]
resources = ["tests/**"]
effect = "allow"

[[rules]]
name = "team-commits-and-runs"
actions = ["git.commit", "command.run"]
roles = ["coder", "tester"]
effect = "allow"
"""

BROKEN = "def fibonacci(n):\n    return n\n"
FIXED = "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
TESTS = ("from fib import fibonacci\n\n\ndef test_small():\n    assert [fibonacci(n) for n in range(7)] == "
         "[0, 1, 1, 2, 3, 5, 8]\n\n\ndef test_zero():\n    assert fibonacci(0) == 0\n")


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    council.adopt(TEAM_POLICY)
    repository(council.home / "workspace", {"fib.py": BROKEN})
    return council


@pytest.fixture
def server() -> Iterator[OpenAIStandin]:
    with OpenAIStandin(expect_key=KEY) as standin:
        yield standin


def step(council: Council, server: OpenAIStandin, skill: Any, task: str, role: str, inputs: dict[str, Any]) -> Any:
    """Run ``skill`` as task ``task`` by an agent of ``role``, and record its result as the task's completion."""
    return run_step(council, server, KEY, MODEL, skill, task, role, inputs)


def test_tests_are_written_committed_and_run_and_a_failing_run_is_a_result(council: Council,
                                                                         server: OpenAIStandin) -> None:
    server.script(Text("I test fibonacci's first values.\n\n" + block("tests/test_fib.py", "", TESTS)))
    done = step(council, server, write_tests, "t-tests", "tester", {"instruction": "fibonacci", "files": ["fib.py"]})
    assert done["files"] == ["tests/test_fib.py"] and done["commit"]
    assert done["run"]["ok"] is False and done["run"]["failed"] == 1 and done["run"]["passed"] == 1
    assert any("test_small" in name for name in done["run"]["failures"])
    assert "tests: I test fibonacci" in git(council.home / "workspace", "log", "-1", "--format=%s")


def test_a_fix_loop_that_converges_changes_the_code_never_the_tests(council: Council,
                                                                    server: OpenAIStandin) -> None:
    server.script(Text(block("tests/test_fib.py", "", TESTS)),
                  # the first fix tries to make the tests pass by weakening them: refused, and said why
                  Text(block("tests/test_fib.py", TESTS, "def test_nothing():\n    assert True\n")),
                  Text("The loop was missing.\n" + block("fib.py", BROKEN, FIXED)))
    step(council, server, write_tests, "t-tests", "tester", {"instruction": "fibonacci", "files": ["fib.py"]})
    fixed = step(council, server, fix_code, "t-fix-1", "coder", {"instruction": "fibonacci", "after": "t-tests"})
    assert fixed["fixed"] is True and fixed["files"] == ["fib.py"] and fixed["refused"] == 1
    [weakened] = [e for e in council.events(streams.model_calls("t-fix-1")) if isinstance(e, EditMalformed)]
    assert "never the tests" in weakened.error
    assert "test_small" in str(server.requests[1].body["messages"][-1]["content"])  # the failures reached the model
    again = step(council, server, run_tests, "t-run-1", "tester",
                 {"fix": "t-fix-1", "after": "t-tests", "last": True})
    assert again["ok"] is True and again["passed"] == 2
    assert (council.home / "workspace" / "tests" / "test_fib.py").read_text() == TESTS
    quiet = step(council, server, fix_code, "t-fix-2", "coder", {"instruction": "fibonacci", "after": "t-run-1"})
    assert quiet == {**quiet, "fixed": False} and "passed" in quiet["reason"]
    assert server.calls == 3  # nothing to fix: no call


def test_a_fix_loop_that_runs_out_of_rounds_stops_the_request_with_the_failures(council: Council,
                                                                                server: OpenAIStandin) -> None:
    server.script(Text(block("tests/test_fib.py", "", TESTS)),
                  Text(block("fib.py", BROKEN, "def fibonacci(n):\n    return n + 0\n")))
    step(council, server, write_tests, "t-tests", "tester", {"instruction": "fibonacci", "files": ["fib.py"]})
    step(council, server, fix_code, "t-fix-1", "coder", {"instruction": "fibonacci", "after": "t-tests"})
    started = time.monotonic()
    with pytest.raises(PermanentFailure, match="still fail after the fix rounds") as stopped:
        step(council, server, run_tests, "t-run-1", "tester", {"fix": "t-fix-1", "after": "t-tests", "last": True})
    assert "test_small" in str(stopped.value) and time.monotonic() - started < 60


def test_bad_inputs_are_refused_with_the_field(council: Council, server: OpenAIStandin) -> None:
    for skill, inputs, named in ((write_tests, {}, "instruction"), (fix_code, {"instruction": "x"}, "after"),
                                 (run_tests, {"fix": "t"}, "after")):
        with pytest.raises(PermanentFailure, match=named):
            step(council, server, skill, f"t-bad-{named}", "tester", inputs)
    assert server.calls == 0


def test_a_fix_round_its_budget_cannot_hold_is_refused_before_the_model_is_asked(tmp_path: Path,
                                                                                server: OpenAIStandin) -> None:
    from actors.tools.gated import ActionRefused

    council = make_council(tmp_path)
    council.adopt(TEAM_POLICY.replace("[budgets.agent]\nactions = 50", "[budgets.agent]\nactions = 50\ntokens = 5000"))
    repository(council.home / "workspace", {"fib.py": BROKEN})
    server.script(Text(block("tests/test_fib.py", "", TESTS)))
    step(council, server, write_tests, "t-tests", "tester", {"instruction": "fibonacci", "files": ["fib.py"],
                                                             "max_tokens": 256})
    asked = server.calls
    with pytest.raises(ActionRefused, match="budget exhausted: tokens") as refused:
        step(council, server, fix_code, "t-fix-1", "coder", {"instruction": "fibonacci", "after": "t-tests"})
    assert refused.value.denial == "budget" and server.calls == asked
