"""An agent that shares no disk with the council (trees = "fetch"): it codes in a copy of the request's tree on its
own node's disk, fetched from the council's depot, and its commit arrives in the council's tree — even though the
depot is killed while the agent works. Its model calls' bodies go to the council's blobs through the depot.

A directory of its own on this machine stands in for the other node's disk; the model is a loopback stand-in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
from coding_support import scripted_models
from governance_support import BOX
from model_standins import OpenAIStandin, Respond, Text
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import names
from actors.agent import AgentActor
from actors.depot import depot, leasing
from actors.skills import PermanentFailure
from actors.tools.checkout import prepare
from actors.tools.tree_lock import TreeBusy
from actors.tools.workspace import Workspace
from cluster.driver import Council
from cluster.pipeline import prepare_request
from cluster.settings import DEFAULT_POLICY, Settings
from cluster.system import Keys, System, boot, check, plan, shutdown
from cluster.team import parse_team
from events import CouncilError, streams
from events.catalogue import TaskCompleted, TaskFailed
from events.catalogue.models import ModelCallRequested

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-service"
KEY = "sk-fetched-trees-" + uuid.uuid4().hex
MODEL = "openai:gpt-trees"

TEAM = """
[[agents]]
name = "coder"
role = "coder"
capabilities = ["code.write"]
slots = 1

""" + scripted_models()

FIB = ('"""Fibonacci numbers."""\n\n\ndef fibonacci(n: int) -> int:\n    """The n-th Fibonacci number."""\n'
       "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n")
SQUARE = '"""Squares."""\n\n\ndef square(n: int) -> int:\n    """n times n."""\n    return n * n\n'


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


@dataclass
class Fetching:
    council: Council
    home: Path
    workspace: Path
    node: Path
    sample: Path
    depot_killed: list[int] = field(default_factory=list)
    """The depot's process ids, as the model found them when it killed the depot."""
    while_asked: list[Callable[[], None]] = field(default_factory=list)
    """What happens elsewhere while the next model call is answered (each once)."""


@pytest.fixture(scope="module")
def openai_key() -> Iterator[None]:
    """The agents' key, in the environment before Ray starts (its workers inherit it)."""
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = KEY
    yield
    if saved is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = saved


@pytest.fixture(scope="module")
def fetching(openai_key: None, ray_instance: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fetching]:
    tmp = tmp_path_factory.mktemp("fetched")
    home, node = tmp / "council", tmp / "node-b"
    sample = tmp / "sample-service"
    shutil.copytree(SAMPLE, sample, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    state: dict[str, Fetching] = {}

    def model(body: dict[str, Any]) -> Text:
        """The coder's answer — and, while the agent works between its fetch and its push, the depot killed once."""
        running = state["running"]
        if not running.depot_killed:
            handle = depot()
            running.depot_killed.append(ray.get(handle.pid.remote()))
            ray.kill(handle, no_restart=False)
        while running.while_asked:
            running.while_asked.pop(0)()
        asked = str(body["messages"][-1]["content"])
        if "square" in asked:
            return Text("I add a square module.\n" + block("src/sample_service/square.py", "", SQUARE))
        return Text("I add a fibonacci module.\n" + block("src/sample_service/fib.py", "", FIB))

    url = f"sqlite:///{home / 'events.db'}"
    with OpenAIStandin(default=Respond(model), expect_key=KEY) as server:
        team = parse_team(TEAM.format(model=MODEL, base_url=server.base_url))
        boot(System.of(url, team, home=str(home), policy=str(DEFAULT_POLICY), workspace=str(home / "workspace"),
                       trees="fetch", node_workspace=str(node), projections=str(home / "projections.duckdb"),
                       dispatch={"backoff_base": 0.05}))
        council = Council(Settings(store=url, home=str(home), metrics_port=None, health=False, trees="fetch"))
        state["running"] = Fetching(council, home, home / "workspace", node, sample)
        yield state["running"]
        shutdown()


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=True).stdout


def request(fetching: Fetching, prefix: str) -> tuple[str, Path]:
    """A new request with a tree on the council's node: its id, and the tree."""
    request_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    prepare(Workspace(fetching.workspace), request_id, fetching.sample, box=BOX)
    return request_id, fetching.workspace / "requests" / request_id


def commit_there(tree: Path, name: str, text: str, message: str) -> None:
    """A commit made in the council's tree by someone else (another node's attempt, a person)."""
    (tree / name).write_text(text)
    git(tree, "add", name)
    git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


def test_an_agent_codes_in_its_own_copy_and_its_commit_arrives_in_the_councils_tree(fetching: Fetching) -> None:
    council = fetching.council
    request_id, canonical = request(fetching, "r-fetched")
    start = git(canonical, "rev-parse", "HEAD").strip()
    task = council.submit("code.write", {"instruction": "Add a function to calculate fibonacci numbers"},
                          request_id=request_id)
    assert council.wait([task], timeout=240)[task] == "completed"
    # the depot was killed mid-attempt (after the fetch, before the push) and came back as a new process
    assert len(fetching.depot_killed) == 1
    assert ray.get(depot().pid.remote()) != fetching.depot_killed[0]
    assert (canonical / "src" / "sample_service" / "fib.py").read_text() == FIB  # the working tree, not only a ref
    log = git(canonical, "log", "--format=%an").splitlines()
    assert [line.split(" ")[0] for line in log] == ["coder-1", "agent-council"], log
    assert git(canonical, "rev-parse", "HEAD~1").strip() == start
    assert "Council-Warrant: w-" in git(canonical, "log", "-1", "--format=%B")
    copy = fetching.node / "requests" / request_id
    assert git(copy, "rev-parse", "HEAD") == git(canonical, "rev-parse", "HEAD")
    assert (copy / ".git" / "council-copy").is_file()
    # the model call's body went to the council's blobs, through the depot
    asked = [e.payload for e in council.store.read_stream(streams.model_calls(task))
             if isinstance(e.payload, ModelCallRequested)]
    assert asked and all((fetching.home / "blobs" / "sha256" / a.digest[:2] / a.digest[2:]).is_file() for a in asked)

    # A later task of the request: the copy is brought up to date first, and its commit lands on top.
    commit_there(canonical, "NOTES.md", "made on the council's node\n", "notes")
    second = council.submit("code.write", {"instruction": "Add a function to square a number"},
                            request_id=request_id)
    assert council.wait([second], timeout=240)[second] == "completed"
    assert [line.split("|")[1] for line in git(canonical, "log", "--format=%an|%s").splitlines()][:2] == [
        "Add a function to square a number", "notes"]
    assert (canonical / "src" / "sample_service" / "square.py").read_text() == SQUARE
    assert (copy / "NOTES.md").is_file() and git(copy, "status", "--porcelain") == ""


def test_a_push_from_a_stale_tree_is_not_reported_done_and_the_task_is_run_afresh_on_the_new_tree(
        fetching: Fetching) -> None:
    council = fetching.council
    request_id, canonical = request(fetching, "r-stale")

    def another_node_pushes() -> None:
        commit_there(canonical, "OTHER.md", "pushed by another node meanwhile\n", "other node")

    fetching.while_asked.append(another_node_pushes)
    task = council.submit("code.write", {"instruction": "Add a function to square a number"}, request_id=request_id)
    status = council.wait([task], timeout=240)[task]
    history = council.store.read_stream(streams.task(task))
    assert status == "completed", "\n".join(f"{e.type} {getattr(e.payload, 'error', '')[:300]}" for e in history)
    failures = [e.payload for e in history if isinstance(e.payload, TaskFailed)]
    # the stale attempt was never reported done; the next was a fresh run on the new tree, not a replay of it
    assert [(f.exception, f.kind) for f in failures] == [("StaleTree", "lost")], failures
    assert sum(isinstance(e.payload, TaskCompleted) for e in history) == 1
    edits = [e.payload for e in council.store.read_stream(streams.model_calls(task))
             if isinstance(e.payload, ModelCallRequested)]
    assert len(edits) == 2, "the fresh run asked the model again rather than replay the lost run's answer"
    assert (canonical / "src" / "sample_service" / "square.py").read_text() == SQUARE
    assert [line.split(" ")[0] for line in git(canonical, "log", "--format=%an").splitlines()][:2] == [
        "coder-1", "t"]


def test_an_attempt_waits_while_another_node_works_in_the_requests_tree_and_builds_on_its_push(
        fetching: Fetching) -> None:
    council = fetching.council
    request_id, canonical = request(fetching, "r-turns")
    other = "node-c/7/" + uuid.uuid4().hex[:12]
    assert ray.get(depot().take_tree.remote(request_id, other, 60.0))  # an attempt on another node is working
    task = council.submit("code.write", {"instruction": "Add a function to square a number"}, request_id=request_id)
    time.sleep(4)
    asked = [e for e in council.store.read_stream(streams.model_calls(task))
             if isinstance(e.payload, ModelCallRequested)]
    assert not asked and not any(isinstance(e.payload, (TaskCompleted, TaskFailed))
                                 for e in council.store.read_stream(streams.task(task))), "it did not wait its turn"
    commit_there(canonical, "OTHER.md", "pushed by the attempt on node c\n", "node c")  # it pushes, then lets go
    ray.get(depot().give_back_tree.remote(request_id, other))
    assert council.wait([task], timeout=240)[task] == "completed"
    history = council.store.read_stream(streams.task(task))
    assert not [e.payload for e in history if isinstance(e.payload, TaskFailed)]  # nothing lost, nothing run twice
    assert [line.split(" ")[0] for line in git(canonical, "log", "--format=%an").splitlines()][:2] == ["coder-1", "t"]
    assert ray.get(depot().tree_holder.remote(request_id)) is None  # given back when the attempt ended


def test_a_lease_is_renewed_while_held_refused_to_others_and_given_back(fetching: Fetching) -> None:
    request_id = "r-lease-" + uuid.uuid4().hex[:8]
    with leasing(request_id, 1.0, ttl=0.6) as holder:
        for _ in range(5):  # 2.5 s: four times the lease's length, kept by its renewals
            time.sleep(0.5)
            assert ray.get(depot().tree_holder.remote(request_id)) == holder
        busy = f"another attempt still works in request {request_id}'s tree after 0.5 s"
        with pytest.raises(TreeBusy, match=busy), leasing(request_id, 0.5):
            pass
    assert ray.get(depot().tree_holder.remote(request_id)) is None
    with leasing(request_id, 0.5) as later:
        assert ray.get(depot().tree_holder.remote(request_id)) == later != holder


def test_the_pipeline_is_refused_when_trees_are_fetched(fetching: Fetching) -> None:
    requests = fetching.workspace / "requests"
    before = sorted(requests.iterdir()) if requests.exists() else []
    with pytest.raises(CouncilError, match='the CI/CD pipeline needs trees = "shared"'):
        prepare_request(fetching.council, fetching.sample, None)
    assert (sorted(requests.iterdir()) if requests.exists() else []) == before  # no tree was made for it


def test_the_depot_runs_beside_the_council_only_when_trees_are_fetched() -> None:
    team = parse_team(TEAM.format(model=MODEL, base_url="http://127.0.0.1:9/v1"))
    shared = System.of("sqlite:///x.db", team, home="/h", workspace="/h/workspace")
    fetched = System.of("sqlite:///x.db", team, home="/h", workspace="/h/workspace", trees="fetch",
                        node_workspace="/local/trees")
    alone = {spec.name: spec for spec in plan(shared, Keys(), None)}
    assert names.DEPOT not in alone and alone[names.agent("coder-1")].init["trees"] == "shared"
    specs = {spec.name: spec for spec in plan(fetched, Keys(), None)}
    assert specs[names.DEPOT].args == ("/h/workspace", "/h/blobs")
    agent = specs[names.agent("coder-1")].init
    assert agent["trees"] == "fetch" and agent["node_workspace"] == "/local/trees"
    # With a PostgreSQL log the system's actors may move to another node, but the depot stays where the trees are.
    booting = NodeAffinitySchedulingStrategy(node_id="ab" * 28, soft=False)
    anywhere = System.of("postgresql://db/council", team, home="/h", workspace="/h/workspace", trees="fetch")
    spread = {spec.name: spec for spec in plan(anywhere, Keys(), booting)}
    assert spread[names.DISPATCHER].options["scheduling_strategy"].soft is True  # prefers the booting node
    assert spread[names.DEPOT].options["scheduling_strategy"] is booting
    with pytest.raises(CouncilError, match='trees = "fetch" needs a council with a home'):
        check(System.of("sqlite:///x.db", team, trees="fetch"))
    settings = Settings(store="sqlite:///h/events.db", trees="fetch").absolute()
    assert settings.node_workspace == str(Path("h/node-workspace").resolve())
    with pytest.raises(ValueError, match="shared"):
        Settings(store="sqlite:///h/events.db", trees="nfs")


def test_an_agent_that_signs_where_its_keyring_is_not_is_told_where_it_must_run(tmp_path: Path) -> None:
    agent = object.__new__(AgentActor.__ray_metadata__.modified_class)  # the plain class: no Ray needed
    agent.agent_id, agent.keyring = "deployer-1", str(tmp_path / "not-on-this-node" / "keys")
    with pytest.raises(PermanentFailure, match=r"need the council's keyring on their node .* pinned to the council's"):
        agent._signer()


def test_council_up_takes_the_setting_and_refuses_one_it_does_not_know(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("COUNCIL_", "RAY_ADDRESS"))}
    environ.update(PYTHONPATH=str(ROOT), COLUMNS="200")

    def council(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env=environ)

    shown = council("up", "--help")
    assert "[env: COUNCIL_TREES; default shared]" in " ".join(shown.stdout.split()), shown.stdout
    refused = council("up", "--trees", "nfs", "--store", f"sqlite:///{tmp_path / 'events.db'}")
    assert refused.returncode != 0 and "trees" in refused.stderr and "'shared' or 'fetch'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr  # one line, and nothing started
    assert not (tmp_path / "events.db").exists()
