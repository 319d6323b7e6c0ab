"""The exporter on a local Ray, scraped by a real Prometheus server (Debian's package)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import ray

from actors import names
from actors.store_client import StoreClient
from cluster.settings import DEFAULT_POLICY
from cluster.system import System, boot, shutdown
from cluster.team import AgentSpec
from events import NO_STREAM, streams
from events.catalogue import (
    Budget,
    ModelAnswerRepaired,
    ModelCallCompleted,
    ModelCallFailed,
    ModelCallRequested,
    TaskSubmitted,
)

DASHBOARDS = Path(__file__).resolve().parents[2] / "monitoring" / "dashboards"
KEY, DIGEST, MODEL = "m0:ask", "ab" * 32, "openai:gpt-test"
MODEL_CALLS = [  # a model call as actors.llm.calls records it: a try that timed out, one answered, then a repair
    ModelCallRequested(task_id="m0", warrant_id="w", agent_id="m1", key=KEY, digest=DIGEST, provider="openai",
                       model=MODEL, max_tokens=64, estimate=Budget(tokens=100, money=0.01)),
    ModelCallFailed(task_id="m0", key=KEY, digest=DIGEST, provider="openai", model=MODEL, kind="timeout",
                    transient=True, error="timed out", cost=0.01),
    ModelCallRequested(task_id="m0", warrant_id="w", agent_id="m1", key=KEY, digest=DIGEST, provider="openai",
                       model=MODEL, max_tokens=64, estimate=Budget(tokens=100, money=0.01), attempt=2),
    ModelCallCompleted(task_id="m0", key=KEY, digest=DIGEST, provider="openai", model="gpt-test",
                       reply={"text": "{}"}, input_tokens=80, output_tokens=20, cost=0.012, latency_s=0.8,
                       finish="stop", attempt=2),
    ModelAnswerRepaired(task_id="m0", key=KEY, error="score: missing", repair=1, model=MODEL, provider="openai"),
]


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory, ray_instance: None):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("exporter")
    url = f"sqlite:///{tmp / 'events.db'}"
    team = [AgentSpec(agent_id="m1", slots=4), AgentSpec(agent_id="c1", role="coder", capabilities=("files.write",))]
    handles = boot(System.of(url, team, projections=str(tmp / "p.duckdb"), metrics_port=0, home=str(tmp / "home"),
                             policy=str(DEFAULT_POLICY), workspace=str(tmp / "workspace")))
    client = StoreClient()
    # Nineteen plain tasks, and one that acts (a gated file write), so every dashboard panel has data.
    client.append_many([(f"task-m{i}", [TaskSubmitted(task_id=f"m{i}", capability="noop")], NO_STREAM)
                        for i in range(19)])
    client.append("task-w1", [TaskSubmitted(task_id="w1", capability="files.write",
                                            inputs={"files": {"src/app.py": "print('hi')\n"}})], NO_STREAM)
    client.append(streams.model_calls("m0"), MODEL_CALLS, NO_STREAM)  # the costs board's tokens and dollars
    address = ray.get(handles[names.EXPORTER].address.remote())
    yield address, tmp
    shutdown([names.EXPORTER, names.DISPATCHER, names.PROJECTOR, names.COUNCIL, names.STORE, names.agent("m1"),
              names.agent("c1")])


def sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_are_served_and_follow_the_log(council) -> None:  # type: ignore[no-untyped-def]
    address, _ = council
    text = wait_for(lambda: (t := get(f"http://{address}/metrics")) and 'council_tasks{status="completed"} 20.0' in t
                    and t, 60, "20 completed tasks in /metrics")
    assert sample(text, 'council_events_total{type="task.completed"}') == 20
    assert sample(text, "council_read_models_up") == 1
    assert sample(text, "council_task_duration_seconds_count") == 20
    assert sample(text, 'council_action_seconds_total{action="file.write"}') > 0
    assert 'council_model_cost_usd_total{model="gpt-test",provider="openai"} 0.012' in text  # the timeout once


@pytest.fixture(scope="module")
def prometheus(council):  # type: ignore[no-untyped-def]
    """A real Prometheus server (Debian's package) scraping the exporter every second; its API's base URL."""
    address, tmp = council
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("prometheus is not installed here (apt-get install prometheus)")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: council\n"
                      f"    static_configs:\n      - targets: ['{address}']\n")
    server = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def promql(base: str, expr: str) -> list[dict] | None:
    """The result of an instant query, or None while Prometheus is not answering yet."""
    try:
        body = json.loads(get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"))
    except OSError:
        return None
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_a_real_prometheus_scrapes_the_exporter(prometheus) -> None:  # type: ignore[no-untyped-def]
    def completed() -> float | None:
        result = promql(prometheus, 'sum(council_events_total{type="task.completed"})')
        return float(result[0]["value"][1]) if result else None

    assert wait_for(completed, 60, "Prometheus has scraped council_events_total") == 20


def test_every_dashboard_panel_returns_data_from_the_real_prometheus(prometheus) -> None:  # type: ignore[no-untyped-def]
    # rate() needs two scrapes inside its window: wait until the throughput panel answers.
    wait_for(lambda: promql(prometheus, 'sum(rate(council_events_total{type="task.completed"}[1m]))'), 60,
             "two scrapes")
    empty = []
    for board in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(board.read_text())["panels"]:
            for target in panel["targets"]:
                if not promql(prometheus, target["expr"]):
                    empty.append(f"{board.name}: {panel['title']}: {target['expr']}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)
