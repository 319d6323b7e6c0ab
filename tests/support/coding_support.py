"""Shared setup for tests of the coding team's skills without Ray: a git repository in the council's workspace, the
tools of one attempt under a warrant with a model behind them, a task's result recorded as the dispatcher would,
and SEARCH/REPLACE blocks as a model writes them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance_support import Council
from model_standins import OpenAIStandin

from actors.llm.calls import ModelCalls
from actors.llm.config import ModelsConfig, Price
from actors.llm.openai_provider import OpenAIProvider
from actors.llm.types import Provider
from actors.tools.ci import CiTools
from actors.tools.workspace import Workspace
from events import streams
from events.blobs import BlobStore
from events.catalogue import TaskCompleted


def scripted_models(*settings: str) -> str:
    """A team file's ``[models]`` table whose one model ``{model}`` is a scripted OpenAI stand-in at ``{base_url}``
    (both filled in later by ``str.format``), priced so that costs show; ``settings`` are more lines of the
    ``[models]`` table itself (``"retries = 1"``)."""
    extra = "".join(f"{line}\n" for line in settings)
    return (f'\n[models]\ndefault = "{{model}}"\n{extra}\n'
            '[models.prices."{model}"]\ninput = 1.0\noutput = 4.0\n\n'
            '[models.providers.openai]\nbase_url = "{base_url}"\ntimeout = "30s"\nstall_after = "10s"\n')


TEAM_AGENTS = """
[[agents]]
name = "coder"
role = "coder"
capabilities = ["code.write", "code.fix"]
slots = 1

[[agents]]
name = "tester"
role = "tester"
capabilities = ["test.write", "test.run", "ci.changes", "ci.setup", "ci.impact", "ci.test", "ci.smoke"]
slots = 2

[[agents]]
name = "reviewer"
role = "reviewer"
capabilities = ["code.review", "ci.review", "review.answer"]
slots = 1

[[agents]]
name = "documenter"
role = "documenter"
capabilities = ["docs.write", "ci.docs"]
slots = 1

[[agents]]
name = "builder"
role = "builder"
capabilities = ["ci.build"]
slots = 1

[[agents]]
name = "deployer"
role = "deployer"
capabilities = ["ci.deploy"]
slots = 1
"""
"""A team file's agents for a whole coding request: the coding team, and the pipeline's builder and deployer (a
test adds the ``[models]`` it thinks with)."""


def block(path: str, search: str, replace: str, fence: str = "```") -> str:
    """One SEARCH/REPLACE block for ``path``, fenced, as a model answers it (``search`` "" creates the file)."""
    return f"{path}\n{fence}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n{fence}\n"


def git(root: Path, *args: str) -> str:
    """What ``git ARGS`` prints in ``root`` (as a test's own person, never an agent); raises if git fails."""
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, capture_output=True,
                          text=True, check=True).stdout


def repository(root: Path, files: dict[str, str], message: str = "start") -> str:
    """Write ``files`` (path → text) under ``root``, make it a git repository if it is not one, commit them; the
    commit's id."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def thinking_tools(council: Council, server: OpenAIStandin, key: str, model: str, task: str, role: str,
                   agent: str | None = None) -> CiTools:
    """The tools of one attempt of ``task`` by ``agent`` (``<role>-1``), under the task's warrant (issued once, and
    kept), calling ``model`` at the stand-in with ``key``."""
    provider = OpenAIProvider(api_key=key, base_url=server.base_url, timeout=10, stall_after=5)
    return tools_with(council, provider, model, task, role, agent)


def tools_with(council: Council, provider: Provider, model: str, task: str, role: str, agent: str | None = None,
               price: Price | None = None) -> CiTools:
    """The tools of one attempt of ``task`` by ``agent`` (``<role>-1``), under the task's warrant (issued once, and
    kept), calling ``model`` through ``provider`` at ``price`` (a dollar and four a million tokens if not given)."""
    agent = agent or f"{role}-1"
    if not council.store.read_stream(f"warrant-w-{task}"):
        council.warrant(agent, role, task=task)
    tools = CiTools(council.gatekeeper(agent), f"w-{task}", task, Workspace(council.home / "workspace"),
                    hidden=(str(council.home),), history=lambda stream: council.store.read_stream(stream))
    prices = {model: price or Price(input=1.0, output=4.0)}
    tools.thinking = ModelCalls(tools, ModelsConfig(default=model, prices=prices), role,
                                BlobStore(council.home / "blobs"), lambda name: provider)
    return tools


def completed(council: Council, task: str, agent: str, result: dict[str, Any]) -> None:
    """Record ``result`` as task ``task``'s completion, as the dispatcher would: what a later task reads upstream."""
    council.store.append(streams.task(task), [TaskCompleted(task_id=task, agent_id=agent, attempt=1, result=result,
                                                            duration_s=0.0)])


def run_step(council: Council, server: OpenAIStandin, key: str, model: str,
             skill: Callable[[dict[str, Any], CiTools], dict[str, Any]], task: str, role: str,
             inputs: dict[str, Any]) -> dict[str, Any]:
    """Run ``skill`` as task ``task`` by an agent of ``role``, and record its result as the task's completion."""
    result = skill(inputs, thinking_tools(council, server, key, model, task, role))
    completed(council, task, f"{role}-1", result)
    return result


@dataclass(frozen=True)
class Started:
    """A council started on Ray for a test module: its handle, settings and team file, and the environment a
    ``council`` command needs to reach it."""

    council: Any
    settings: Any
    team: Path
    env: dict[str, str]


@contextmanager
def started_council(home: Path, team_text: str, policy: Path | None = None) -> Iterator[Started]:
    """A council with the team ``team_text`` and its log under ``home/.council`` (no health monitor, fast retries),
    under ``policy`` (default: the example policy), stopped with Ray when the block ends."""
    import ray

    from cluster.driver import Council
    from cluster.settings import Settings
    from cluster.system import shutdown
    from cluster.team import load_team

    team = home / "team.toml"
    team.write_text(team_text)
    settings = Settings(store=f"sqlite:///{home / '.council' / 'events.db'}", home=str(home / ".council"),
                        team=str(team), metrics_port=None, health=False, policy=str(policy) if policy else None)
    handle = Council.start(settings, team=load_team(team), dispatch={"backoff_base": 0.05})
    env = {"COUNCIL_STORE": settings.absolute().store, "COUNCIL_HOME": str(home / ".council"),
           "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "COUNCIL_TEAM": str(team)}
    try:
        yield Started(handle, settings, team, env)
    finally:
        shutdown()
        ray.shutdown()
