"""The review protocol on a running council, under the example policy (its [reviews] table, with a short deadline):
a coder's change to a security-sensitive file waits for review, the reviewer agent answers, the council approves, the
dispatcher resumes the coder's task, and the change is committed — the coder's model asked once. When the reviewer
agent cannot answer, the deadline escalates the review to a person, who answers with `council answer`.

One council for the module (Ray in this process); the model is an OpenAI stand-in whose answer depends on who asks.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_support import council as run_council
from coding_support import block, git, repository, scripted_models, started_council
from model_standins import OpenAIStandin, Respond, Structured, Text

from cluster.driver import Council
from events import streams
from events.catalogue import ReviewAnswered, ReviewDecided, ReviewEscalated, TaskStatus
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-review-" + uuid.uuid4().hex
MODEL = "openai:gpt-team"
DEADLINE = 30  # seconds: long enough for the reviewer agent to answer on a loaded machine, short for a test

pytestmark = pytest.mark.slow

TEAM = """
[[agents]]
name = "coder"
role = "coder"
capabilities = ["code.write"]
slots = 2

[[agents]]
name = "reviewer"
role = "reviewer"
capabilities = ["review.answer"]
slots = 1

""" + scripted_models("repairs = 1", "retries = 1")

STRONG = ("import hashlib\nimport os\n\n\ndef hash_password(password: str) -> str:\n    salt = os.urandom(16)\n"
          "    digest = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 600_000)\n"
          "    return salt.hex() + digest.hex()\n")
LOGIN = "def check(user: str, given: str) -> bool:\n    return bool(user and given)\n"


def the_team_model(body: dict[str, Any]) -> Text | Structured:
    system = str(body["messages"][0]["content"])
    asked = "\n".join(str(m["content"]) for m in body["messages"][1:])
    if system.startswith("You are the coder"):
        if "login check" in asked:
            return Text("I add a login check.\n" + block("src/auth_login.py", "", LOGIN))
        return Text("I add password hashing.\n" + block("src/auth.py", "", STRONG))
    if system.startswith("You are a security reviewer"):
        if "auth_login.py" in asked:
            return Text("I would rather not say.")  # never fits the schema: this reviewer cannot answer
        return Structured({"answers": ["PBKDF2 with a random salt and 600k rounds is sound.",
                                       "There is no SQL in this change."], "verdict": "approve"})
    return Text("I was not asked anything I know.")


@dataclass
class Running:
    council: Council
    server: OpenAIStandin
    home: Path
    env: dict[str, str]
    workspace: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("reviews")
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob", "carol"):
        keys.new(name)
    policy = home / "policy.toml"
    example = (ROOT / "examples" / "policy.toml").read_text()
    assert 'deadline = "30m"' in example
    policy.write_text(example.replace('deadline = "30m"', f'deadline = "{DEADLINE}s"'))
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = KEY
    with OpenAIStandin(default=Respond(the_team_model), expect_key=KEY) as server, \
            started_council(home, TEAM.format(model=MODEL, base_url=server.base_url), policy) as started:
        workspace = home / ".council" / "workspace"
        repository(workspace, {"src/app.py": "print('hello')\n"})
        yield Running(started.council, server, home, started.env, workspace)
    if saved is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = saved


def coder_calls(server: OpenAIStandin) -> int:
    return sum(1 for r in server.requests if str(r.body["messages"][0]["content"]).startswith("You are the coder"))


def review_of(council: Council, task_id: str) -> str:
    """The id of the review the coder's task ``task_id`` waits on, once it waits."""
    deadline = time.monotonic() + 120
    while True:
        waits = [e.payload for e in council.store.read_stream(streams.task(task_id)) if e.type == "task.awaiting"]
        if waits:
            return str(waits[0].authority_id)
        assert time.monotonic() < deadline, "the coder never asked for a review"
        time.sleep(0.1)


def test_a_sensitive_change_is_reviewed_by_the_reviewer_agent_and_committed_once_approved(running: Running) -> None:
    council = running.council
    task = council.submit("code.write", {"instruction": "Add password hashing in src/auth.py"})
    assert council.wait([task], timeout=180) == {task: TaskStatus.COMPLETED}
    review_id = review_of(council, task)
    kinds = [e.type for e in council.store.read_stream(streams.review(review_id))]
    assert kinds == ["review.requested", "review.answered", "review.decided"]
    answered, decided = (e.payload for e in council.store.read_stream(streams.review(review_id))[1:])
    assert isinstance(answered, ReviewAnswered) and answered.by == "reviewer-1" and answered.verdict == "approve"
    assert isinstance(decided, ReviewDecided) and decided.outcome == "approved"
    moved = [e.type for e in council.store.read_stream(streams.task(task))]
    assert "task.awaiting" in moved and "task.resumed" in moved and moved[-1] == "task.completed"
    assert (running.workspace / "src" / "auth.py").read_text() == STRONG
    assert git(running.workspace, "show", "--name-only", "--format=%an", "HEAD").split() == [
        "coder-1", "(agent-council)", "src/auth.py"]
    assert coder_calls(running.server) == 1, "the resumed attempt was answered from the log"


def test_a_review_nobody_answers_in_time_goes_to_a_person_who_answers_on_the_command_line(running: Running) -> None:
    council = running.council
    task = council.submit("code.write", {"instruction": "Add a login check in src/auth_login.py"})
    review_id = review_of(council, task)
    deadline = time.monotonic() + DEADLINE + 60
    while not any(isinstance(e.payload, ReviewEscalated) for e in council.store.read_stream(streams.review(review_id))):
        assert time.monotonic() < deadline, "the review was never escalated"
        time.sleep(0.2)
    listed = run_council("reviews", cwd=running.home, env=running.env)
    assert listed.returncode == 0 and review_id in listed.stdout, listed.stdout + listed.stderr
    assert "escalated: the deadline passed without an answer from role:reviewer" in listed.stdout
    early = run_council("answer", review_id, "--approve", "--key", "alice", "fine", cwd=running.home, env=running.env)
    assert early.returncode == 2 and "is not the key of any reviewer" in early.stderr
    done = run_council("answer", review_id, "--approve", "--key", "carol",
                       "It only checks that both are given; fine for now.", cwd=running.home, env=running.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert council.wait([task], timeout=120) == {task: TaskStatus.COMPLETED}
    decided = council.store.read_stream(streams.review(review_id))[-1].payload
    assert isinstance(decided, ReviewDecided) and decided.outcome == "approved" and "person:carol" in decided.reason
    assert (running.workspace / "src" / "auth_login.py").read_text() == LOGIN
