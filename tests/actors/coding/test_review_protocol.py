"""The review protocol between the coder and a reviewer agent, on a real log, a real git repository and the real
OpenAI SDK against the loopback stand-in: a security-sensitive change waits for its review, is committed once
approved, is revised once when the reviewers ask for changes, and is never committed unapproved. The council's
decisions are taken as the council actor takes them (its Authority folded from the log); the dispatcher resumes the
waiting task on the decision.

No Ray: each skill is called as an agent calls it, with the tools of one attempt under the task's warrant.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coding_support import block, git, repository, run_step, thinking_tools
from governance_support import POLICY, Council, make_council
from model_standins import OpenAIStandin, Respond, Structured, Text

from actors.coding.coder import write_code
from actors.coding.review_answer import UNANSWERED, answer_review
from actors.coding.tester import fix_code, write_tests
from actors.dispatch import Dispatch, DispatchSettings
from actors.follow import Follower
from actors.skills import PermanentFailure
from actors.tools.gated import AwaitingAuthority, Tools
from events import streams
from events.catalogue import (
    AgentRegistered,
    ReviewAnswered,
    ReviewDecided,
    ReviewRequested,
    TaskAwaiting,
    TaskSubmitted,
)
from governance.policy import parse_policy

KEY = "sk-review-test-" + uuid.uuid4().hex
MODEL = "openai:gpt-team"
REVIEW_POLICY = POLICY + """
[reviews]
paths = ["**/auth*"]
words = ["md5("]
questions = ["Is the password hashing secure?", "Are there any SQL injection risks?"]
reviewers = ["role:reviewer"]
needed = "all"
deadline = "30m"
escalate_to = "person:carol"
rounds = 1

[[rules]]
name = "team-thinks"
actions = ["llm.call"]
roles = ["coder", "reviewer", "security"]
effect = "allow"

[[rules]]
name = "coders-read"
actions = ["file.read"]
roles = ["coder"]
effect = "allow"
"""
WEAK = ("import hashlib\n\n\ndef hash_password(password: str) -> str:\n"
        "    return hashlib.md5(password.encode()).hexdigest()\n")
STRONG = ("import hashlib\nimport os\n\n\ndef hash_password(password: str) -> str:\n    salt = os.urandom(16)\n"
          "    digest = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 600_000)\n"
          "    return salt.hex() + digest.hex()\n")


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    council.adopt(REVIEW_POLICY)
    repository(council.home / "workspace", {"src/app.py": "print('hello')\n", "README.md": "# app\n"})
    return council


@pytest.fixture
def server() -> Iterator[OpenAIStandin]:
    with OpenAIStandin(expect_key=KEY) as standin:
        yield standin


def coder(council: Council, server: OpenAIStandin, task: str = "t-auth") -> Tools:
    return thinking_tools(council, server, KEY, MODEL, task, "coder")


def council_decides(council: Council, later: float = 0.0) -> list[Any]:
    """One round of the council's decisions, appended as the council actor appends them; what was appended."""
    out = []
    for intent in council.fold().decisions(time.time() + later):
        council.store.append(intent.stream, list(intent.events), intent.expected)
        out += [getattr(e, "payload", e) for e in intent.events]
    council.fold()
    return out


def reviewer_answers(council: Council, server: OpenAIStandin, review_id: str) -> dict[str, Any]:
    """The reviewer agent's task for ``review_id``, as the council submitted it, run by reviewer-1."""
    [task] = [e for e in council.events(streams.task(f"{review_id}-reviewer")) if isinstance(e, TaskSubmitted)]
    return answer_review(dict(task.inputs), thinking_tools(council, server, KEY, MODEL, task.task_id, "reviewer"))


def waits(council: Council, server: OpenAIStandin, inputs: dict[str, Any], task: str = "t-auth") -> str:
    with pytest.raises(AwaitingAuthority) as waiting:
        write_code(inputs, coder(council, server, task))
    return waiting.value.authority_id


ASK = {"instruction": "Add password hashing in src/auth.py"}


def test_a_sensitive_change_waits_for_its_review_and_is_committed_once_approved(council: Council,
                                                                              server: OpenAIStandin) -> None:
    server.script(Text("I add hashing.\n" + block("src/auth.py", "", STRONG)),
                  Structured({"answers": ["PBKDF2 with a random salt and 600k rounds is sound.",
                                          "There is no SQL in this change."], "verdict": "approve"}))
    review_id = waits(council, server, ASK)
    root = council.home / "workspace"
    assert not (root / "src" / "auth.py").exists(), "nothing is written before the review is decided"
    [requested] = council.events(streams.review(review_id))
    assert isinstance(requested, ReviewRequested) and requested.requester == "coder-1"
    assert requested.artefact.paths == ["src/auth.py"] and "+    salt = os.urandom(16)" in requested.artefact.diff
    assert requested.reason == "src/auth.py matches **/auth*" and requested.task_id == "t-auth"
    assert review_id == waits(council, server, ASK), "asked again, the same change is the same review"
    assert len(council.events(streams.review(review_id))) == 1, "and it is asked once"
    [task] = [e for e in council_decides(council) if isinstance(e, TaskSubmitted)]
    assert (task.capability, task.inputs) == ("review.answer", {"review_id": review_id, "reviewer": "role:reviewer"})
    done = reviewer_answers(council, server, review_id)
    assert done["verdict"] == "approve" and done["answers"][1] == "There is no SQL in this change."
    asked = str(server.requests[-1].body["messages"][-1]["content"])
    assert "1. Is the password hashing secure?" in asked and "<<<BEGIN CHANGE [" in asked
    assert [e.outcome for e in council_decides(council) if isinstance(e, ReviewDecided)] == ["approved"]
    written = write_code(ASK, coder(council, server))
    assert written["files"] == ["src/auth.py"] and (root / "src" / "auth.py").read_text() == STRONG
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["src/auth.py"]
    assert server.calls == 2, "the coder's call was answered from the log on every later attempt"
    assert reviewer_answers(council, server, review_id)["already"] is True, "a rerun answers nothing twice"


def test_changes_asked_go_back_to_the_model_and_the_revised_change_is_reviewed_again(council: Council,
                                                                                    server: OpenAIStandin) -> None:
    server.script(Text("I add hashing.\n" + block("src/auth.py", "", WEAK)),
                  Structured({"answers": ["md5 is not a password hash: use PBKDF2 with a salt.", "No SQL."],
                              "verdict": "changes"}),
                  Text("I use PBKDF2.\n" + block("src/auth.py", WEAK, STRONG)),
                  Structured({"answers": ["Sound now.", "No SQL."], "verdict": "approve"}))
    first = waits(council, server, ASK)
    council_decides(council)
    reviewer_answers(council, server, first)
    [decided] = [e for e in council_decides(council) if isinstance(e, ReviewDecided)]
    assert decided.outcome == "changes"
    second = waits(council, server, ASK)
    assert second != first, "the revised change is another review"
    revision = str(server.requests[2].body["messages"][-1]["content"])
    assert "md5 is not a password hash: use PBKDF2 with a salt." in revision
    assert "<<<BEGIN FILE src/auth.py [" in revision
    council_decides(council)
    reviewer_answers(council, server, second)
    council_decides(council)
    written = write_code(ASK, coder(council, server))
    assert (council.home / "workspace" / "src" / "auth.py").read_text() == STRONG and written["summary"] == \
        "I use PBKDF2."
    assert server.calls == 4


def test_a_change_the_reviewers_refuse_after_every_round_is_never_committed(council: Council,
                                                                           server: OpenAIStandin) -> None:
    refuse = Structured({"answers": ["md5 is broken for passwords.", "No SQL."], "verdict": "changes"})
    server.script(Text("I hash.\n" + block("src/auth.py", "", WEAK)), refuse,
                  Text("I hash differently.\n" + block("src/auth.py", WEAK, WEAK.replace("md5", "sha1"))), refuse)
    for _ in range(2):
        review_id = waits(council, server, ASK)
        council_decides(council)
        reviewer_answers(council, server, review_id)
        council_decides(council)
    with pytest.raises(PermanentFailure, match=r"ended changes .*nothing was committed") as failed:
        write_code(ASK, coder(council, server))
    assert "role:reviewer (changes): md5 is broken for passwords." in str(failed.value)
    root = council.home / "workspace"
    assert not (root / "src" / "auth.py").exists() and git(root, "rev-list", "--count", "HEAD").strip() == "1"


def test_a_review_nobody_answers_expires_and_the_change_fails_for_good(council: Council,
                                                                       server: OpenAIStandin) -> None:
    server.script(Text("I hash.\n" + block("src/auth.py", "", STRONG)))
    waits(council, server, ASK)
    council_decides(council)
    assert [e.to for e in council_decides(council, later=1801) if hasattr(e, "to")] == ["person:carol"]
    assert [e.outcome for e in council_decides(council, later=3700) if isinstance(e, ReviewDecided)] == ["expired"]
    with pytest.raises(PermanentFailure, match="ended expired"):
        write_code(ASK, coder(council, server))


def test_a_change_the_policy_does_not_call_sensitive_is_committed_without_review(council: Council,
                                                                                server: OpenAIStandin) -> None:
    server.script(Text("I greet.\n" + block("src/app.py", "print('hello')\n", "print('hello, world')\n")))
    write_code({"instruction": "Greet the world"}, coder(council, server, "t-app"))
    assert not [e for e in council.store.read_all() if isinstance(e.payload, ReviewRequested)]
    assert server.calls == 1


def test_a_sensitive_word_in_a_changed_line_asks_for_review_too(council: Council, server: OpenAIStandin) -> None:
    server.script(Text("I hash.\n" + block("src/app.py", "print('hello')\n", "import hashlib\nh = hashlib.md5(b'')\n")))
    review_id = waits(council, server, {"instruction": "Hash something"}, "t-word")
    [requested] = council.events(streams.review(review_id))
    assert requested.reason == "the change says 'md5('"


def test_the_reviewer_refuses_what_it_cannot_answer_and_leaves_a_decided_review_alone(council: Council,
                                                                                      server: OpenAIStandin) -> None:
    server.script(Text("I hash.\n" + block("src/auth.py", "", STRONG)),
                  Structured({"answers": ["Fine."], "verdict": "approve"}))
    review_id = waits(council, server, ASK)
    with pytest.raises(PermanentFailure, match="there is no review rv-missing in the log"):
        answer_review({"review_id": "rv-missing", "reviewer": "role:reviewer"},
                      thinking_tools(council, server, KEY, MODEL, "t-r0", "reviewer"))
    with pytest.raises(PermanentFailure, match="asks role:reviewer, but this agent's role is 'coder'"):
        answer_review({"review_id": review_id, "reviewer": "role:reviewer"},
                      thinking_tools(council, server, KEY, MODEL, "t-r1", "coder"))
    with pytest.raises(PermanentFailure, match=r"review\.answer's inputs do not fit: reviewer"):
        answer_review({"review_id": review_id, "reviewer": "person:alice"},
                      thinking_tools(council, server, KEY, MODEL, "t-r2", "reviewer"))
    council_decides(council)
    done = reviewer_answers(council, server, review_id)
    assert done["verdict"] == "comment" and done["answers"] == ["Fine.", UNANSWERED], \
        "an approval that leaves a question unanswered is only a comment"
    assert [e.outcome for e in council_decides(council) if isinstance(e, ReviewDecided)] == ["changes"]
    again = answer_review({"review_id": review_id, "reviewer": "role:security"},
                          thinking_tools(council, server, KEY, MODEL, "t-r3", "security"))
    assert again["skipped"].startswith("decided before this reviewer answered")
    answered = [e for e in council.events(streams.review(review_id)) if isinstance(e, ReviewAnswered)]
    assert len(answered) == 1 and answered[0].by == "reviewer-1" and answered[0].task_id == f"{review_id}-reviewer"


def test_a_reviewer_an_escalation_replaced_answers_nothing_and_asks_its_model_nothing(council: Council,
                                                                                    server: OpenAIStandin) -> None:
    server.script(Text("I hash.\n" + block("src/auth.py", "", STRONG)))
    review_id = waits(council, server, ASK)
    council_decides(council)
    council_decides(council, later=1801)  # the deadline passed: carol reviews in the reviewer's place
    done = reviewer_answers(council, server, review_id)
    assert done["skipped"] == f"role:reviewer is no longer a reviewer of {review_id} (reviewers now: person:carol)"
    assert server.calls == 1, "only the coder's call"


def test_a_review_nobody_could_decide_is_never_asked_and_the_change_fails_for_good(council: Council,
                                                                                  server: OpenAIStandin) -> None:
    policy = parse_policy(REVIEW_POLICY.replace('carol = "carol"', 'carol = "carol"\ndave = "dave"')
                          .replace('reviewers = ["role:reviewer"]', 'reviewers = ["person:dave"]'))
    pinned = {name: council.keyring.public(name).fingerprint for name in ("alice", "bob", "carol")}  # dave: no key
    adoption = council.fold().adopt(policy, pinned, by="test", authority="test")
    council.store.append(adoption.stream, list(adoption.events), adoption.expected)
    server.script(Text("I hash.\n" + block("src/auth.py", "", STRONG)))
    with pytest.raises(PermanentFailure, match=r"must be reviewed \(src/auth.py matches \*\*/auth\*\), but the "
                                               r"policy's \[reviews\] needs 1 approval\(s\) but only 0"):
        write_code(ASK, coder(council, server))
    assert not [e for e in council.store.read_all() if isinstance(e.payload, ReviewRequested)]


def test_a_fix_to_a_sensitive_file_is_reviewed_before_it_is_committed(council: Council,
                                                                       server: OpenAIStandin) -> None:
    council.adopt(REVIEW_POLICY + """
[[rules]]
name = "testers-work"
actions = ["llm.call", "file.read", "command.run", "git.commit"]
roles = ["tester"]
effect = "allow"

[[rules]]
name = "testers-write-tests"
actions = ["file.write"]
roles = ["tester"]
resources = ["tests/**"]
effect = "allow"
""")
    repository(council.home / "workspace", {"src/auth.py": WEAK, "tests/__init__.py": ""})
    tests = ("import sys\nsys.path.insert(0, 'src')\nfrom auth import hash_password\n\n\ndef test_salted():\n"
             "    assert hash_password('a') != hash_password('a')\n")
    server.script(Text("I test the salt.\n" + block("tests/test_auth.py", "", tests)),
                  Text("I salt it.\n" + block("src/auth.py", WEAK, STRONG)),
                  Structured({"answers": ["Salted PBKDF2: sound.", "No SQL."], "verdict": "approve"}))
    written = run_step(council, server, KEY, MODEL, write_tests, "t-tests", "tester",
                       {"instruction": "salted hashing", "files": ["src/auth.py"]})
    assert written["run"]["ok"] is False
    inputs = {"instruction": "salted hashing", "after": "t-tests"}
    with pytest.raises(AwaitingAuthority) as waiting:
        fix_code(inputs, thinking_tools(council, server, KEY, MODEL, "t-fix", "coder"))
    council_decides(council)
    reviewer_answers(council, server, waiting.value.authority_id)
    council_decides(council)
    fixed = fix_code(inputs, thinking_tools(council, server, KEY, MODEL, "t-fix", "coder"))
    assert fixed["fixed"] is True and fixed["files"] == ["src/auth.py"] and server.calls == 3
    assert (council.home / "workspace" / "src" / "auth.py").read_text() == STRONG


def test_the_dispatcher_resumes_the_task_that_waits_for_a_review_once_it_is_decided(council: Council) -> None:
    store = council.store
    dispatch = Dispatch(DispatchSettings())
    follower = Follower(dispatch, store)
    store.append("agent-coder-1", [AgentRegistered(agent_id="coder-1", role="coder", capabilities=["code.write"],
                                                   slots=1)])
    store.append("task-t1", [TaskSubmitted(task_id="t1", capability="code.write")], 0)
    follower.step()
    follower.step()
    task = dispatch.state.tasks["t1"]
    store.append(task.stream, [TaskAwaiting(task_id="t1", agent_id="coder-1", attempt=1, authority_id="rv-1")],
                 task.version)
    follower.step()
    assert dispatch.state.tasks["t1"].status == "awaiting_approval"
    store.append(streams.review("rv-1"), [ReviewDecided(review_id="rv-1", outcome="approved", approvals=1,
                                                        changes=0, comments=0, needed=1, reason="1 of 1")])
    follower.step()
    resumed = store.read_stream("task-t1")[-1].payload
    assert (resumed.authority_id, resumed.outcome) == ("rv-1", "review: approved")


def test_the_scripted_model_is_not_asked_by_the_council_itself(council: Council, server: OpenAIStandin) -> None:
    server.script(Respond(lambda body: Text("never")))
    assert council_decides(council) == [] and server.calls == 0
