"""Learning on a running council: the learner actor records a lesson for a finished task, and a strategy in the log
changes what the agents and the dispatcher do — the swapped model is the one called, the lease is the one given —
until a person reverts it.

One council for the module (Ray in this process, the health monitor, error detector and learner running), its agent
calling a loopback OpenAI stand-in through the real SDK.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
from model_standins import OpenAIStandin, Text

from actors import names
from cluster.driver import Council
from cluster.learning import revert
from cluster.settings import Settings
from cluster.system import shutdown
from cluster.team import load_team
from events import NO_STREAM, streams
from events.catalogue import KnowledgeAdded, StrategyChanged, TaskAssigned

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-learning-on-ray-" + uuid.uuid4().hex
SLOPPY, STEADY = "openai:gpt-sloppy", "openai:gpt-steady"

pytestmark = pytest.mark.slow

TEAM = """
skills = ["thinking_skills"]

[[agents]]
name = "thinker"
role = "coder"
capabilities = ["think.slowly"]
slots = 1

[models]
default = "{sloppy}"

[models.fallback]
"{sloppy}" = ["{steady}"]

[models.providers.openai]
base_url = "{base_url}"
timeout = "30s"
stall_after = "10s"
"""


@dataclass
class Running:
    council: Council
    server: OpenAIStandin


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("learning")
    saved = {name: os.environ.get(name) for name in ("OPENAI_API_KEY", "PYTHONPATH")}
    os.environ["OPENAI_API_KEY"] = KEY
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests" / "support"), saved["PYTHONPATH"]]))
    with OpenAIStandin(expect_key=KEY) as server:
        team = home / "team.toml"
        team.write_text(TEAM.format(sloppy=SLOPPY, steady=STEADY, base_url=server.base_url))
        settings = Settings(store=f"sqlite:///{home / '.council' / 'events.db'}", home=str(home / ".council"),
                            team=str(team), metrics_port=None, health=False)
        # A Ray of this module's own, never a cluster another process left running on this machine.
        ray.init(address="local", namespace=names.NAMESPACE, num_cpus=4, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        council = Council.start(settings, team=load_team(team), dispatch={"backoff_base": 0.05},
                                health={"ping_every": 2.0})
        yield Running(council, server)
        shutdown()
        ray.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def think(running: Running) -> tuple[str, str]:
    """Run one think.slowly task to completion; (the model the stand-in was asked for, the task's id)."""
    running.server.script(Text("an answer"))
    task = running.council.submit("think.slowly", {"prompt": f"Think about {uuid.uuid4().hex}.", "hold": 0})
    assert running.council.wait([task], timeout=120)[task] == "completed"
    return running.server.requests[-1].body["model"], task


def lease_given(running: Running, task: str) -> float:
    """How long the dispatcher leased ``task`` for: its lease's expiry less when it was recorded."""
    assigned = next(e for e in running.council.store.read_stream(streams.task(task))
                    if isinstance(e.payload, TaskAssigned))
    assert isinstance(assigned.payload, TaskAssigned)
    return assigned.payload.lease_expires_at - assigned.recorded_at.timestamp()


def test_the_learner_records_a_lesson_for_a_finished_task(running: Running) -> None:
    _, task = think(running)
    deadline = time.monotonic() + 30
    while not (found := [e.payload for e in running.council.store.read_all(1, None, [KnowledgeAdded.type_name])
                         if e.payload.origin == task]):
        assert time.monotonic() < deadline, "the learner recorded no lesson"
        time.sleep(0.1)
    (lesson,) = found
    assert lesson.kind == "lesson" and lesson.entry_id.startswith(f"lesson-task-{task}-")
    assert "think.slowly" in lesson.tags and lesson.evidence


def test_a_strategy_changes_the_model_called_and_the_lease_given_until_it_is_reverted(running: Running) -> None:
    log = running.council.store
    model, task = think(running)
    assert model == "gpt-sloppy" and lease_given(running, task) == pytest.approx(60.0, abs=1.0)
    book_version = len(log.read_stream(streams.STRATEGIES))
    log.append(streams.STRATEGIES, [
        StrategyChanged(strategy_id="model-swap:think.slowly:openai:gpt-sloppy#1", kind="model-swap",
                        subject="think.slowly", model=SLOPPY, value=STEADY, evidence=[1], reason="a test says so"),
        StrategyChanged(strategy_id="lease:think.slowly#1", kind="lease", subject="think.slowly", value="240",
                        evidence=[1], reason="a test says so")], book_version or NO_STREAM)
    time.sleep(0.5)  # the dispatcher folds the lease strategy before it leases the next task
    model, task = think(running)
    assert model == "gpt-steady"  # the swapped model, not the role's
    assert lease_given(running, task) == pytest.approx(240.0, abs=1.0)
    log.append_many([revert(log, "model-swap:think.slowly:openai:gpt-sloppy#1", "alice", "steady is too dear")])
    log.append_many([revert(log, "lease:think.slowly#1", "alice", "not slow any more")])
    time.sleep(0.5)
    model, task = think(running)
    assert model == "gpt-sloppy" and lease_given(running, task) == pytest.approx(60.0, abs=1.0)
