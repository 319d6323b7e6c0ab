"""Model calls on a running council: `council ask` answered by an agent under its warrant and recorded; an agent
killed after its call was recorded costs no second call; no key reaches the log, the home or Ray's logs.

One council for the module (Ray in this process), its agents calling a loopback OpenAI stand-in through the real
SDK, with a distinctive key in their environment.
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
from cli_support import council as run_council
from coding_support import scripted_models
from model_standins import Failure, OpenAIStandin, Text, Truncated

from actors import names
from cluster.driver import Council
from cluster.settings import Settings
from cluster.system import shutdown
from cluster.team import load_team
from events import streams
from events.catalogue import BudgetExtended, TaskAwaiting, TaskSpec
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-council-on-ray-" + uuid.uuid4().hex
MODEL = "openai:gpt-test"

pytestmark = pytest.mark.slow


@dataclass
class Running:
    council: Council
    server: OpenAIStandin
    home: Path
    env: dict[str, str]


TEAM = """
skills = ["thinking_skills"]

[[agents]]
name = "assistant"
role = "assistant"
capabilities = ["llm.ask"]
slots = 2

[[agents]]
name = "thinker"
role = "coder"
capabilities = ["think.slowly"]
slots = 1

""" + scripted_models()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("thinking")
    saved = {name: os.environ.get(name) for name in ("OPENAI_API_KEY", "PYTHONPATH")}
    os.environ["OPENAI_API_KEY"] = KEY  # the agents' environment: where a provider's key comes from
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests" / "support"), saved["PYTHONPATH"]]))
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)  # before the policy is adopted: they are who may extend a budget
    with OpenAIStandin(expect_key=KEY) as server:
        team = home / "team.toml"
        team.write_text(TEAM.format(model=MODEL, base_url=server.base_url))
        settings = Settings(store=f"sqlite:///{home / '.council' / 'events.db'}", home=str(home / ".council"),
                            team=str(team), metrics_port=None, health=False)
        handle = Council.start(settings, team=load_team(team), dispatch={"backoff_base": 0.05})
        env = {"COUNCIL_STORE": settings.absolute().store, "COUNCIL_HOME": str(home / ".council"),
               "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "COUNCIL_TEAM": str(team)}
        yield Running(handle, server, home, env)
        shutdown()
        ray.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_council_ask_is_answered_by_an_agent_under_its_warrant_and_recorded(running: Running) -> None:
    running.server.script(Text("forty-two", input_tokens=12, output_tokens=3))
    before = running.server.calls
    done = run_council("ask", "What is six times seven?", cwd=running.home, env=running.env)
    assert done.returncode == 0, done.stdout + done.stderr
    answer, usage = done.stdout.strip().splitlines()
    assert answer == "forty-two" and running.server.calls == before + 1
    assert usage.startswith("gpt-test · 12 tokens in, 3 out · $0.000024 · ")
    sent = running.server.requests[-1]
    assert sent.body["messages"][-1]["content"] == "What is six times seven?" and sent.body["model"] == "gpt-test"
    calls = running.council.store.read_all(1, None, ["llm.completed"])
    assert calls[-1].payload.cost == pytest.approx(24 / 1e6) and calls[-1].payload.provider == "openai"
    authorized = [e.payload for e in running.council.store.read_all(1, None, ["action.authorized"])
                  if e.payload.action == "llm.call"]
    assert authorized and authorized[-1].environment == "openai.gpt-test"  # the model, as the policy sees it


def test_a_refused_key_is_one_line_that_names_the_variable(running: Running) -> None:
    running.server.script(Failure(401))
    done = run_council("ask", "Are you there?", cwd=running.home, env=running.env)
    assert done.returncode != 0
    assert "OPENAI_API_KEY" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_agent_killed_after_its_call_was_recorded_costs_no_second_call(running: Running) -> None:
    council, server = running.council, running.server
    server.script(Text("a considered answer"))
    before = server.calls
    task = council.submit("think.slowly", {"prompt": "Think about it.", "hold": 30})
    deadline = time.monotonic() + 60
    while not council.store.read_all(1, None, ["llm.completed"]) or not any(
            e.type == "llm.completed" for e in council.store.read_stream(streams.model_calls(task))):
        assert time.monotonic() < deadline, "the call was never recorded"
        time.sleep(0.1)
    ray.kill(ray.get_actor(names.agent("thinker-1"), namespace=names.NAMESPACE), no_restart=False)
    assert council.wait([task], timeout=120)[task] == "completed"
    assert server.calls == before + 1  # the retried attempt was answered from the log
    history = [e.type for e in council.store.read_stream(streams.task(task))]
    assert history.count("task.started") == 2, history
    done = next(e.payload for e in council.store.read_stream(streams.task(task)) if e.type == "task.completed")
    assert done.result == {"text": "a considered answer", "replayed": True}
    assert [e.type for e in council.store.read_stream(streams.model_calls(task))] == ["llm.requested",
                                                                                     "llm.completed"]


def test_a_requests_calls_are_answered_from_the_log_alone(running: Running) -> None:
    council, server = running.council, running.server
    server.script(Text("first"), Text("second"))
    request_id, tasks = council.request("think twice", [
        TaskSpec(capability="think.slowly", inputs={"prompt": f"Thought {n}."}) for n in (1, 2)])
    assert set(council.wait(tasks, timeout=120).values()) == {"completed"}
    done = run_council("replay", request_id, cwd=running.home, env=running.env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.endswith("answered from the log") for line in lines[:-1]] == [True, True]
    assert lines[-1] == "2 call(s): 2 answered from the log, 0 would need the provider"
    verified = run_council("verify", cwd=running.home, env=running.env)
    assert "blobs: ok, " in verified.stdout, verified.stdout + verified.stderr


def test_models_check_makes_one_recorded_call_to_each_model(running: Running) -> None:
    running.server.script(Truncated("OK, here is a long and rambling", input_tokens=5, output_tokens=16))
    done = run_council("models", "check", cwd=running.home, env=running.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"{MODEL}") and " ok " in done.stdout and "5 tokens in, 16 out" in done.stdout
    assert "cut off at max_tokens" in done.stdout  # a model that rambles still works: the check only asks that


def test_a_call_its_budget_cannot_hold_waits_for_an_extension_then_runs_once(running: Running) -> None:
    council, server = running.council, running.server
    server.script(Text("worth the wait", input_tokens=10, output_tokens=5))
    before = server.calls
    # Its worst case (900,000 tokens) is more than an agent may spend on a request (400,000 in the example policy).
    task = council.submit("llm.ask", {"prompt": "Take your time.", "max_tokens": 900_000})
    deadline = time.monotonic() + 60
    while not (waits := [e.payload for e in council.store.read_stream(streams.task(task))
                         if isinstance(e.payload, TaskAwaiting)]):
        assert time.monotonic() < deadline, "the task never waited for the extension"
        time.sleep(0.1)
    assert "budget exhausted: tokens" in waits[0].reason and "budget-extension" in waits[0].reason
    assert server.calls == before  # denied before the provider was called
    listed = run_council("approvals", cwd=running.home, env=running.env)
    assert waits[0].authority_id in listed.stdout and "budget.extend tokens=" in listed.stdout, listed.stdout
    signed = run_council("approve", waits[0].authority_id, "--key", "alice", cwd=running.home, env=running.env)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert council.wait([task], timeout=120)[task] == "completed"
    assert server.calls == before + 1
    extended = [e.payload for e in council.store.read_all(1, None, ["budget.extended"])
                if isinstance(e.payload, BudgetExtended) and e.payload.task_id == task]
    assert len(extended) == 1 and extended[0].extension.tokens >= 400_000


def test_no_key_is_written_to_the_log_the_home_or_rays_logs(running: Running) -> None:
    places = [running.home, Path(ray._private.worker._global_node.get_session_dir_path())]
    for place in places:
        for path in (p for p in place.rglob("*") if p.is_file() and not p.is_symlink()):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            assert KEY.encode() not in data, f"{path} holds the key"
