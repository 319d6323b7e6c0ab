"""The planner (``plan.write``) and the architect (``design.write``) on a real log, a real repository and the real
OpenAI SDK against a loopback stand-in: a plan that passes, one sent back once with its exact problems, one that
never passes, a plan the policy puts to approvers, an attempt run again that pays for nothing twice; a design note
written and committed, and an architect that reaches for another file refused.

No Ray: each skill is called as an agent calls it, with the tools of one attempt under the task's warrant.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coding_support import block, git, repository, thinking_tools
from governance_support import Council, make_council
from model_standins import OpenAIStandin, Structured, Text
from orchestrator_support import POLICY, REQUEST, example_roster, jwt_answer

from actors.orchestrator.architect import write_design
from actors.orchestrator.planner import write_plan
from actors.skills import PermanentFailure
from actors.tools.gated import AwaitingAuthority
from events import streams
from events.catalogue import ActionAuthorized
from governance import approvals

KEY = "sk-planner-test-" + uuid.uuid4().hex
MODEL = "openai:gpt-planner"
APPROVED_PLANS = POLICY.read_text().replace(
    'actions = ["plan.approve"]\nroles = ["orchestrator"]\neffect = "allow"',
    'actions = ["plan.approve"]\nroles = ["orchestrator"]\neffect = "approve"\napprovals = 1\napprovers = ["alice"]')


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    council.adopt(POLICY.read_text())
    repository(council.home / "workspace", {"src/accounts_service/app.py": "def serve():\n    return 'ok'\n",
                                            "README.md": "# accounts\n"})
    return council


@pytest.fixture
def server() -> Iterator[OpenAIStandin]:
    with OpenAIStandin(expect_key=KEY) as standin:
        yield standin


def inputs(**more: Any) -> dict[str, Any]:
    return {"instruction": REQUEST, "request_id": "r-plan", "team": example_roster().model_dump(),
            "budget": {"tokens": 2_000_000, "wall_time_s": 14_400.0}, **more}


def plan(council: Council, server: OpenAIStandin, task: str = "t-plan", **more: Any) -> dict[str, Any]:
    return write_plan(inputs(**more), thinking_tools(council, server, KEY, MODEL, task, "orchestrator"))


def authorised(council: Council, task: str, action: str) -> list[ActionAuthorized]:
    return [e for e in council.events(streams.warrant(f"w-{task}")) if isinstance(e, ActionAuthorized)
            and e.action == action]


def test_a_plan_that_passes_is_the_result_and_the_policy_lets_it_start(council: Council,
                                                                     server: OpenAIStandin) -> None:
    server.script(Structured(jwt_answer()))
    done = plan(council, server)
    assert done["problems"] == [] and done["repaired"] == [] and done["calls"] == 1
    assert [p["name"] for p in done["plan"]["phases"]] == ["architecture", "implementation", "testing",
                                                          "documentation", "deployment"]
    [approved] = authorised(council, "t-plan", "plan.approve")
    assert approved.rule == "plans-start"
    sent = server.requests[0].body
    assert sent["temperature"] == 0
    asked = str(sent["messages"][1]["content"])
    assert REQUEST in asked and "- coder: code.fix, code.write" in asked and "2,000,000 model tokens" in asked
    assert "<<<BEGIN FILE LIST [" in asked and "src/accounts_service/app.py" in asked
    again = plan(council, server)  # the attempt again: answered from the log, paid for once
    assert again["plan"] == done["plan"] and again["cost"] == 0.0 and done["cost"] > 0 and server.calls == 1


def test_a_plan_with_problems_goes_back_once_with_exactly_them(council: Council, server: OpenAIStandin) -> None:
    wrong = copy.deepcopy(jwt_answer())
    wrong["phases"][1]["tasks"][0]["role"] = "wizard"
    server.script(Structured(wrong), Structured(jwt_answer()))
    done = plan(council, server)
    assert done["problems"] == [] and done["calls"] == 2
    assert done["repaired"] == ["task 'code-auth': role 'wizard' is not in the team (roles: architect, assistant, "
                                "builder, coder, deployer, documenter, reviewer, tester, worker)"]
    sent_back = str(server.requests[1].body["messages"][-1]["content"])
    assert "role 'wizard' is not in the team" in sent_back and "Answer with the whole plan again" in sent_back
    assert json.loads(str(server.requests[1].body["messages"][-2]["content"]))["phases"][1]["tasks"][0]["role"] == \
        "wizard"  # the model sees its own answer before the problems


def test_a_plan_that_fails_twice_is_the_problems_and_never_starts(council: Council, server: OpenAIStandin) -> None:
    cyclic = copy.deepcopy(jwt_answer())
    cyclic["phases"][0]["tasks"][0]["depends_on"] = ["docs-auth"]
    server.script(Structured(cyclic), Structured(cyclic))
    done = plan(council, server)
    assert done["problems"] and "cycle" in done["problems"][0] and done["calls"] == 2
    assert authorised(council, "t-plan", "plan.approve") == []  # a plan that cannot run is never put forward
    assert server.calls == 2  # one round back, not more


def test_a_plan_the_policy_puts_to_approvers_waits_for_them(council: Council, server: OpenAIStandin) -> None:
    council.adopt(APPROVED_PLANS)
    server.script(Structured(jwt_answer()))
    with pytest.raises(AwaitingAuthority) as waiting:
        plan(council, server, task="t-approve")
    ledger = council.fold().approvals[waiting.value.authority_id]
    assert ledger.requested is not None and ledger.requested.spec.action == "plan.approve"
    assert ledger.requested.spec.target.startswith("plan r-plan revision 0 ")
    event = approvals.sign_approval(council.keyring.signer("alice"), ledger.requested)
    council.store.append(f"approval-{waiting.value.authority_id}", [event])
    for decided in council.fold().decisions(council.clock()):
        council.store.append(decided.stream, list(decided.events), decided.expected)
    done = plan(council, server, task="t-approve")  # the task resumes: the plan is answered from the log
    assert done["problems"] == [] and server.calls == 1
    assert authorised(council, "t-approve", "plan.approve")[0].approval_id == waiting.value.authority_id


def test_the_architect_writes_and_commits_the_design_note_and_nothing_else(council: Council,
                                                                          server: OpenAIStandin) -> None:
    note = "# Design: authentication\n\n## Approach\nHash with PBKDF2; sign tokens with HS256.\n"
    # The policy lets architects write any top-level Markdown; the skill lets this one write its note alone.
    server.script(Text("I write the note, and the README.\n" + block("README.md", "# accounts\n", "# hacked\n")),
                  Text("I write the note.\n" + block("docs/design/r-plan.md", "", note)))
    tools = thinking_tools(council, server, KEY, MODEL, "t-design", "architect")
    done = write_design({"instruction": REQUEST, "path": "docs/design/r-plan.md"}, tools)
    root = council.home / "workspace"
    assert (root / "docs" / "design" / "r-plan.md").read_text() == note
    assert (root / "README.md").read_text() == "# accounts\n"
    assert done["rounds"] == 2 and done["path"] == "docs/design/r-plan.md" and done["commit"]
    assert "the architect writes only the design note docs/design/r-plan.md, not README.md" in str(
        server.requests[1].body["messages"][-1]["content"])
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["docs/design/r-plan.md"]
    with pytest.raises(PermanentFailure, match="inputs do not fit"):
        write_design({"instruction": REQUEST, "path": "../../etc/passwd"}, tools)
