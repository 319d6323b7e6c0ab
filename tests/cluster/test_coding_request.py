"""`council run code` end to end on a running council: the team makes a change to the sample service through a
scripted model on loopback — the coder's first version is wrong, the test writer's tests catch it, a fix round
mends it, the reviewer and the documenter do their part — then the pipeline ships it to staging and production
waits for its approvals. A coder killed after its answer was recorded costs no second call and no second commit.

One council for the module (Ray in this process); the model is an OpenAI stand-in whose answer depends on who asks
(each role's system prompt) and what (the messages), as a real model's does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from cli_support import council as run_council
from coding_support import TEAM_AGENTS, scripted_models, started_council
from model_standins import OpenAIStandin, Respond, Structured, Text

from actors import names
from cluster.driver import Council
from cluster.pipeline import follow, start_code
from cluster.report import report
from events import streams
from events.catalogue import EditApplied, GitCommitted
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-service"
KEY = "sk-coding-team-" + uuid.uuid4().hex
MODEL = "openai:gpt-team"

pytestmark = pytest.mark.slow

TEAM = TEAM_AGENTS + scripted_models()

HEAD = '"""Fibonacci numbers."""\n\n\ndef fibonacci(n: int) -> int:\n    """The n-th Fibonacci number."""\n'
WRONG = HEAD + "    return n\n"
RIGHT = HEAD + "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
TESTS = ("from sample_service.fib import fibonacci\n\n\ndef test_the_first_values() -> None:\n"
         "    assert [fibonacci(n) for n in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13]\n")
README_TITLE = "# sample-service\n"


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


def the_team_model(body: dict[str, Any]) -> Text | Structured:
    """A model that answers each role as a capable one would, the coder wrong the first time."""
    system = str(body["messages"][0]["content"])
    if "Tests of your change fail" in system:
        return Text("The loop was missing.\n" + block("src/sample_service/fib.py", WRONG, RIGHT))
    if system.startswith("You are the coder"):
        return Text("I add a fibonacci module.\n" + block("src/sample_service/fib.py", "", WRONG))
    if system.startswith("You are the test writer"):
        return Text("I test the first eight values.\n" + block("tests/test_fib.py", "", TESTS))
    if system.startswith("You are the documenter"):
        return Text("I mention fibonacci.\n" + block("README.md", README_TITLE, README_TITLE + "\nIt also computes "
                                                     "Fibonacci numbers (`sample_service.fib`).\n"))
    if system.startswith("You are the reviewer"):
        return Structured({"findings": []})
    return Text("I was not asked anything I know.")


@dataclass
class Running:
    council: Council
    server: OpenAIStandin
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("coding")
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = KEY
    with OpenAIStandin(default=Respond(the_team_model), expect_key=KEY) as server, \
            started_council(home, TEAM.format(model=MODEL, base_url=server.base_url)) as started:
        yield Running(started.council, server, home, started.env)
    if saved is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = saved


def sample(tmp_path: Path) -> Path:
    copy = tmp_path / "sample-service"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    return copy


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def test_a_request_in_words_is_coded_tested_fixed_reviewed_documented_and_shipped_to_staging(
        running: Running, tmp_path: Path) -> None:
    council, server = running.council, running.server
    before = server.calls
    run = start_code(council, "Add a function to calculate fibonacci numbers", sample(tmp_path))
    lines: list[str] = []
    follow(council, run, lines.append, timeout=600)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    tree = run.tree
    assert (tree / "src" / "sample_service" / "fib.py").read_text() == RIGHT
    assert (tree / "tests" / "test_fib.py").read_text() == TESTS
    log = [tuple(line.split("|", 1)) for line in git(tree, "log", "--format=%an|%s").splitlines()]
    assert [(who.split(" ")[0], what.split(":")[0]) for who, what in log] == [
        ("documenter-1", "docs"),  # the pipeline's changelog
        ("documenter-1", "docs"),  # README and the API page
        ("coder-1", "fix"),  # fix round 1; round 2 found nothing to fix
        ("tester-1", "tests"),
        ("coder-1", "Add a function to calculate fibonacci numbers"),
        ("agent-council", "Snapshot of sample-service")], log
    assert "Council-Warrant: w-" in git(tree, "log", "-1", "--format=%B", "HEAD~2")
    text = found.text()
    assert "code: src/sample_service/fib.py" in text and "fix-1: src/sample_service/fib.py" in text
    assert "first run 5 passed, 1 failed" in text and "retest-1: 6 passed, 0 failed" in text, text
    assert "fix-2: nothing to fix; the last run passed" in text and "critique: 2 file(s) reviewed" in text, text
    assert "document: README.md, docs/api/src/sample_service/fib.md in commit" in text
    assert "changed: 6 file(s) in 5 commit(s), each under its agent's warrant:" in text, text
    assert [line.split()[1:3] for line in text.splitlines() if line.startswith("  ") and " w-" in line] == [
        ["code", "coder-1"], ["tests", "tester-1"], ["fix-1", "coder-1"], ["document", "documenter-1"],
        ["docs", "documenter-1"]], text
    assert "model calls, by agent:" in text and "coder-1" in text
    assert "staging:" in text
    # coder, test writer, one fix, the reviewer (one changed Python file each), the documenter: nothing else
    assert server.calls - before >= 5


def test_a_coder_killed_after_its_answer_was_recorded_pays_for_nothing_twice(running: Running,
                                                                             tmp_path: Path) -> None:
    council, server = running.council, running.server
    run = start_code(council, "Add a function to calculate fibonacci numbers", sample(tmp_path))
    code_task = run.tasks["code"]
    deadline = time.monotonic() + 120
    while not any(isinstance(e.payload, EditApplied)
                  for e in council.store.read_stream(streams.model_calls(code_task))):
        assert time.monotonic() < deadline, "the coder never had an answer applied"
        time.sleep(0.02)
    asked = server.calls
    ray.kill(ray.get_actor(names.agent("coder-1"), namespace=names.NAMESPACE), no_restart=False)
    follow(council, run, lambda line: None, timeout=600)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    coder_calls = [r for r in server.requests[asked:] if "You are the coder" in str(r.body["messages"][0]["content"])
                   and "Tests of your change fail" not in str(r.body["messages"][0]["content"])]
    assert coder_calls == []  # the restarted coder's attempt was answered from the log
    commits = [e.payload for e in council.store.read_all(1, None, ["git.committed"])
               if isinstance(e.payload, GitCommitted) and e.payload.warrant_id.startswith("w-")]
    subjects = git(run.tree, "log", "--format=%s").splitlines()
    assert subjects.count("Add a function to calculate fibonacci numbers") == 1 and commits


def test_council_review_with_the_model_fixes_in_the_requests_own_copy_never_in_the_repository(
        running: Running, tmp_path: Path) -> None:
    repo = sample(tmp_path)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    calc = '"""Doubling."""\n\n\ndef f(x: int) -> int:\n    """Twice x."""\n    return x * 2\n'
    (repo / "src" / "sample_service" / "calc.py").write_text(calc)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "add calc")
    running.server.script(
        Structured({"findings": [{"line": 4, "kind": "naming", "severity": "low", "message": "f says nothing",
                                  "suggestion": "call it double", "fixable": True}]}),
        Text("I rename f.\n" + block("src/sample_service/calc.py", "def f(x: int) -> int:\n",
                                      "def double(x: int) -> int:\n")))
    done = run_council("review", "--repo", str(repo), "--base", "HEAD~1", "--model", "--fix", cwd=running.home,
                       env={**running.env, "COLUMNS": "250"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "src/sample_service/calc.py:4" in done.stdout and "naming" in done.stdout and "call it double" in done.stdout
    assert "the automatic fixes are the commit" in done.stdout and "cherry-pick" in done.stdout
    assert "2 model call(s) to openai:gpt-team" in done.stdout  # the one changed file, and its fix
    assert (repo / "src" / "sample_service" / "calc.py").read_text() == calc  # the user's repository is untouched
