"""The seed's Example 1 on a running council: "Add a user authentication system with JWT tokens" on the accounts
service, through a scripted model on loopback — the orchestrator plans five phases, the architect writes the design
note, the coder the code, the test writer tests that pass in the sandbox, the documenter the docs, and the pipeline
ships to staging while production waits for two approvals, which ship it. A documenter failing once is retried; an
orchestrator killed mid-request resumes and nothing paid is asked twice; a coder that fails for good makes the
orchestrator revise the plan once.

One council for the module (Ray in this process); the model is an OpenAI stand-in whose answer depends on who asks
(each role's system prompt) and what (the messages), as a real model's does.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from cli_support import council as run_council
from coding_support import block, scripted_models, started_council
from model_standins import Failure, OpenAIStandin, Respond, Structured, Text
from orchestrator_support import PLANNING_TEAM, jwt_answer, task

from actors import names
from cluster.driver import Council
from cluster.feature import confirm_plan, feature_report, follow_feature, start_feature
from cluster.settings import Settings
from cluster.team import load_team
from events import streams
from events.catalogue import (
    OrchestratorDecided,
    PlanAdopted,
    PlanProposed,
    PlanRevised,
    RequestFinished,
    WarrantIssued,
)
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "examples" / "accounts-service"
FIXTURES = ROOT / "tests" / "fixtures" / "jwt_feature"
KEY = "sk-feature-" + uuid.uuid4().hex
MODEL = "openai:gpt-team"
JWT = "Add a user authentication system with JWT tokens"
HARD = "Add password hashing, the hard way first"

pytestmark = pytest.mark.slow

TEAM = PLANNING_TEAM + scripted_models("retries = 1")

AUTH = (FIXTURES / "auth.py").read_text()
TESTS = (FIXTURES / "test_auth.py").read_text()
DESIGN = (FIXTURES / "design.md").read_text()
DOCS = (FIXTURES / "docs.md").read_text()
README_TITLE = "# accounts-service\n"


def hard_plan(revision: bool) -> dict[str, Any]:
    """The plan for :data:`HARD`: code then test; the revision replaces the code task that failed for good."""
    code = "code-simple" if revision else "code-hard"
    return {"summary": "hashing", "phases": [
        {"name": "implementation", "tasks": [task(code, "coder", "code.write", title=f"{code}: write auth.py")]},
        {"name": "testing", "tasks": [task(f"test-{code}", "tester", "test.write", [code])]}]}


class TeamModel:
    """A model that answers each role as a capable one would; the documenter's first call meets a server error, and
    the coder cannot do the hard way."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.documenter_failed = False

    def __call__(self, body: dict[str, Any]) -> Text | Structured | Failure:
        system = str(body["messages"][0]["content"])
        asked = "\n".join(str(m["content"]) for m in body["messages"][1:])
        if system.startswith("You are the orchestrator"):
            if HARD in asked:
                return Structured(hard_plan(revision="This is revision 1" in asked))
            return Structured(jwt_answer())
        if system.startswith("You are the architect"):
            path = re.search(r"docs/design/r-[0-9a-f]+\.md", asked)
            assert path is not None
            return Text("I design the authentication.\n" + block(path[0], "", DESIGN, fence="````"))
        if system.startswith("You are the coder"):
            if "code-hard" in asked:
                return Text("I cannot say this as an edit.")
            return Text("I add password hashing and JWTs.\n" + block("src/accounts_service/auth.py", "", AUTH))
        if system.startswith("You are the test writer"):
            return Text("I test hashing and tokens.\n" + block("tests/test_auth.py", "", TESTS))
        if system.startswith("You are the documenter"):
            with self.lock:
                if not self.documenter_failed:
                    self.documenter_failed = True
                    return Failure(503, "overloaded, try again")
            return Text("I document authentication.\n" + block("README.md", README_TITLE, README_TITLE + "\n" + DOCS,
                                                               fence="````"))
        if system.startswith("You are the reviewer"):
            return Structured({"findings": []})
        if system.startswith("You are a security reviewer"):  # the example policy's review of auth.py
            return Structured({"answers": ["PBKDF2-HMAC-SHA256, a random salt, a constant-time compare: sound.",
                                           "There is no SQL in the change."], "verdict": "approve"})
        return Text("I was not asked anything I know.")


@dataclass
class Running:
    council: Council
    server: OpenAIStandin
    home: Path
    env: dict[str, str]
    settings: Settings
    team: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("feature")
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = KEY
    with OpenAIStandin(default=Respond(TeamModel()), expect_key=KEY) as server, \
            started_council(home, TEAM.format(model=MODEL, base_url=server.base_url)) as started:
        yield Running(started.council, server, home, started.env, started.settings, started.team)
    if saved is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = saved


def service(tmp_path: Path) -> Path:
    copy = tmp_path / "accounts-service"
    shutil.copytree(SERVICE, copy, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    return copy


def asked(server: OpenAIStandin, role: str, after: int = 0) -> int:
    """How many calls reached the model with ``role``'s system prompt."""
    return sum(1 for r in server.requests[after:]
               if str(r.body["messages"][0]["content"]).startswith(f"You are the {role}"))


def request_events(council: Council, request_id: str) -> list[Any]:
    return [e.payload for e in council.store.read_stream(streams.request(request_id))]


def test_the_seed_example_is_planned_built_tested_documented_and_shipped_after_two_approvals(
        running: Running, tmp_path: Path) -> None:
    council, server = running.council, running.server
    before = server.calls
    feature = start_feature(council, JWT, service(tmp_path))
    # The orchestrator is killed once its plan is adopted: a new incarnation takes the request on from the log.
    deadline = time.monotonic() + 120
    while not any(isinstance(e, PlanAdopted) for e in request_events(council, feature.request_id)):
        assert time.monotonic() < deadline, "the plan was never adopted"
        time.sleep(0.05)
    ray.kill(ray.get_actor(names.orchestrator(feature.request_id), namespace=names.NAMESPACE), no_restart=False)
    lines: list[str] = []
    follow_feature(council, feature, lines.append, timeout=600)
    found = feature_report(council, feature.request_id)
    assert found.outcome == "awaiting approval", found.text() + "\n".join(lines)
    tree = feature.tree
    assert (tree / "src" / "accounts_service" / "auth.py").read_text() == AUTH
    assert (tree / "tests" / "test_auth.py").read_text() == TESTS
    assert (tree / "docs" / "design" / f"{feature.request_id}.md").read_text() == DESIGN
    assert DOCS.strip() in (tree / "README.md").read_text()
    text = found.text()
    assert [p.name for p in found.plans[0][1].phases] == ["architecture", "implementation", "testing",
                                                         "documentation", "deployment"]
    assert "plan proposed by openai:gpt-team" in "\n".join(lines)
    assert "cost per phase" in text and "architecture" in text and "staging:" in text
    assert f"council events --correlation {feature.request_id}" in text
    work = found.work
    assert work is not None and work.approval is not None and work.approval["needed"] == 2
    # Each task worked under a child of its phase's warrant, never a wider one.
    adopted = next(e for e in request_events(council, feature.request_id) if isinstance(e, PlanAdopted))
    phases = {g.warrant_id for g in adopted.grants}
    issued = [e.payload for e in council.store.read_all(1, None, ["warrant.issued"])
              if isinstance(e.payload, WarrantIssued) and e.payload.task_id in adopted.tasks.values()]
    assert issued and all(w.parent_id in phases for w in issued)
    # Nothing paid twice: one plan, one design, one change, one test file; the documenter was asked again only
    # after its first call failed (the task's retry).
    assert (asked(server, "orchestrator", before), asked(server, "architect", before), asked(server, "coder", before),
            asked(server, "test writer", before)) == (1, 1, 1, 1)
    assert asked(server, "documenter", before) >= 2
    # The example policy has auth.py reviewed before it is committed: the reviewer agent approved it.
    reviewed = [e.payload for e in council.store.read_all(1, None, ["review.decided"])]
    assert [r.outcome for r in reviewed][:1] == ["approved"]
    retried = council.sql(f"SELECT attempts_used FROM tasks WHERE task_id = '{feature.request_id}-docs-auth'").rows
    assert retried and retried[0][0] == 2
    for key in work.approval["keys"][:2]:
        done = run_council("approve", work.approval["approval_id"], "--key", key, cwd=running.home, env=running.env)
        assert done.returncode == 0, done.stdout + done.stderr
    follow_feature(council, feature, lines.append, timeout=300, through_prod=True)
    finished = feature_report(council, feature.request_id)
    assert finished.outcome == "completed", finished.text()
    assert isinstance(request_events(council, feature.request_id)[-1], RequestFinished)


def test_a_task_that_fails_for_good_makes_the_orchestrator_revise_the_plan_once(running: Running,
                                                                                tmp_path: Path) -> None:
    council, server = running.council, running.server
    before = server.calls
    feature = start_feature(council, HARD, service(tmp_path), revisions=1)
    lines: list[str] = []
    follow_feature(council, feature, lines.append, timeout=600, through_prod=True)
    events = request_events(council, feature.request_id)
    decided = [e for e in events if isinstance(e, OrchestratorDecided)]
    assert [d.decision for d in decided] == ["revise"], "\n".join(lines)
    assert "code-hard" in decided[0].reason and "refused" in decided[0].reason
    revised = next(e for e in events if isinstance(e, PlanRevised))
    assert set(revised.tasks) == {"code-simple", "test-code-simple"}
    finished = events[-1]
    assert isinstance(finished, RequestFinished) and finished.outcome == "completed", "\n".join(lines)
    assert (feature.tree / "src" / "accounts_service" / "auth.py").read_text() == AUTH
    assert asked(server, "orchestrator", before) == 2  # the plan and its one revision
    report = feature_report(council, feature.request_id).text()
    assert "plan revision 1:" in report and "decided: revise" in report


def test_the_command_line_shows_a_plan_without_building_and_never_starts_one_unasked(running: Running,
                                                                                   tmp_path: Path) -> None:
    repo, env = service(tmp_path), {**running.env, "COLUMNS": "200"}
    shown = run_council("run", "feature", JWT, "--repo", str(repo), "--plan-only", cwd=running.home, env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "plan proposed by openai:gpt-team" in shown.stdout and "request planned" in shown.stdout
    assert "design.write" in shown.stdout and "```mermaid\nflowchart LR" in shown.stdout
    request_id = re.findall(r"request (r-[0-9a-f]+)", shown.stdout)[0]
    events = request_events(running.council, request_id)
    assert not any(isinstance(e, PlanAdopted) for e in events)
    assert isinstance(events[-1], RequestFinished) and events[-1].outcome == "planned"
    again = run_council("watch", request_id, cwd=running.home, env=env)
    assert again.returncode == 0 and f"request {request_id}: planned" in again.stdout, again.stdout + again.stderr
    unasked = run_council("run", "feature", JWT, "--repo", str(repo), cwd=running.home, env=env)  # no terminal
    assert unasked.returncode != 0 and "add --yes to start it without asking" in unasked.stdout + unasked.stderr
    nothing = run_council("answer", request_id, "go on", cwd=running.home, env=env)
    assert nothing.returncode != 0 and "has finished" in nothing.stdout + nothing.stderr
    by_task = run_council("answer", f"{request_id}-plan", "go on", cwd=running.home, env=env)  # its request's
    assert by_task.returncode != 0 and f"the request {request_id} has finished" in by_task.stdout + by_task.stderr
    empty = run_council("run", "feature", "  ", "--repo", str(repo), "--yes", cwd=running.home, env=env)
    assert empty.returncode != 0 and "say what to build" in empty.stdout + empty.stderr


def test_a_council_started_again_takes_its_open_requests_on_where_they_were(running: Running,
                                                                             tmp_path: Path) -> None:
    council = running.council
    feature = start_feature(council, JWT, service(tmp_path), confirm=True)
    deadline = time.monotonic() + 120
    while not any(isinstance(e, PlanProposed) for e in request_events(council, feature.request_id)):
        assert time.monotonic() < deadline, "the plan was never proposed"
        time.sleep(0.05)
    # As `council down` leaves it: the orchestrator gone for good while its request waits for a person.
    ray.kill(ray.get_actor(names.orchestrator(feature.request_id), namespace=names.NAMESPACE), no_restart=True)
    again = Council.start(running.settings, team=load_team(running.team), dispatch={"backoff_base": 0.05})
    ray.get_actor(names.orchestrator(feature.request_id), namespace=names.NAMESPACE)  # back, from the log
    confirm_plan(again, feature.request_id, by="alice")
    follow_feature(again, feature, lambda line: None, timeout=600)
    assert feature_report(again, feature.request_id).outcome == "awaiting approval"
    adopted = [e for e in request_events(again, feature.request_id) if isinstance(e, PlanAdopted)]
    assert len(adopted) == 1
