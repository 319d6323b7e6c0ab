"""The metrics as Prometheus sees them: folded from a real log, valid exposition (promtool), right after a refold."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from events import open_store
from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    AgentRestarted,
    ApprovalRequested,
    Budget,
    Confinement,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
)
from monitoring.metrics import CouncilCollector, LogMetrics


class Answers:
    """Stands for the read models: the same rows a projector's query gives for the collector's three queries."""

    def __init__(self, up: bool = True) -> None:
        self.up = up

    def __call__(self, sql: str):  # type: ignore[no-untyped-def]
        if not self.up:
            raise ConnectionError("projector restarting")
        rows = {"tasks": [("completed", 2), ("queued", 1)], "queue": [(0, 0, None), (2, 1, 3.5)],
                "agent_load": [("a1", 1, 4, 0.25, "live", "coder")]}
        key = next(k for k in rows if f"FROM {k}" in sql)
        return type("Result", (), {"rows": rows[key]})()


def a_log(tmp_path: Path):  # type: ignore[no-untyped-def]
    log = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    log.append("task-t1", [TaskSubmitted(task_id="t1", capability="noop")])
    log.append("task-t1", [TaskCompleted(task_id="t1", agent_id="a1", attempt=1, duration_s=0.3)])
    log.append("task-t2", [TaskFailed(task_id="t2", agent_id="a1", attempt=1, error="boom", kind="permanent")])
    log.append("agent-a1", [AgentRestarted(agent_id="a1", epoch=2, reason="crash")])
    log.append("warrant-w", [ActionAuthorized(warrant_id="w", agent_id="a1", action="command.run", target="pytest",
                                              key="k", digest="0" * 64, policy_hash="0" * 64, rule="r",
                                              cost=Budget(wall_time_s=900)),
                             ActionCompleted(warrant_id="w", key="k", ok=True, cost=Budget(wall_time_s=2.5),
                                             confinement=TERMS)])
    log.append("warrant-w", [ActionAuthorized(warrant_id="w", agent_id="a1", action="command.run", target="bomb",
                                              key="k2", digest="1" * 64, policy_hash="0" * 64, rule="r"),
                             ActionCompleted(warrant_id="w", key="k2", ok=False, error="LimitExceeded: processes",
                                             confinement=TERMS, limits_hit=["processes"])])
    return log


TERMS = Confinement(sandbox="bubblewrap", cpu_s=60, wall_time_s=60.0, address_space=1 << 30, processes=64,
                    file_size=1 << 20, open_files=64)


def scrape(log, query=None) -> str:  # type: ignore[no-untyped-def]
    metrics = LogMetrics()
    for event in log.read_all(1, None):
        metrics.evolve(event)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CouncilCollector(metrics, log.head, query))
    return generate_latest(registry).decode()


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_counters_come_from_the_log_and_gauges_from_the_read_models(tmp_path: Path) -> None:
    with a_log(tmp_path) as log:
        found = values(scrape(log, Answers()))
    assert found[("council_events_total", (("type", "task.submitted"),))] == 1
    assert found[("council_agent_restarts_total", (("agent", "a1"),))] == 1
    assert found[("council_task_failures_total", (("kind", "permanent"),))] == 1
    assert found[("council_action_seconds_total", (("action", "command.run"),))] == 2.5  # what it took, not its limit
    assert not any(name.startswith(("council_model_tokens", "council_cost_usd")) for name, _ in found)
    assert found[("council_task_duration_seconds_count", ())] == 1
    assert found[("council_task_duration_seconds_bucket", (("le", "0.25"),))] == 0
    assert found[("council_task_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert found[("council_tasks", (("status", "completed"),))] == 2
    assert found[("council_queue_oldest_age_seconds", (("priority", "2"),))] == 3.5
    assert found[("council_agent_utilisation", (("agent", "a1"), ("role", "coder")))] == 0.25
    assert found[("council_read_models_up", ())] == 1 and found[("council_exporter_lag_events", ())] == 0
    assert found[("council_command_actions_total", (("sandbox", "bubblewrap"),))] == 2
    assert found[("council_command_limits_hit_total", (("limit", "processes"),))] == 1


def test_actions_that_never_complete_are_forgotten_a_day_later(tmp_path: Path) -> None:
    with open_store("memory://") as log:
        for n in range(100):
            log.append("warrant-w", [ActionAuthorized(warrant_id="w", agent_id="a1", action="command.run",
                                                      target="pytest", key=f"k{n}", digest="0" * 64,
                                                      policy_hash="0" * 64, rule="r")])
        log.append("warrant-w", [ActionCompleted(warrant_id="w", key="k0", ok=True, cost=Budget(wall_time_s=2.0)),
                                 ActionCompleted(warrant_id="w", key="k1", ok=True, cost=Budget(wall_time_s=3.0))])
        events = log.read_all(1, None)
    start = events[0].recorded_at
    metrics = LogMetrics()
    for n, event in enumerate(events[:100]):  # the authorisations, an hour apart
        metrics.evolve(msgspec.structs.replace(event, recorded_at=start + timedelta(hours=n)))
    assert len(metrics.running) == 25  # the last day's: the earlier ones are no longer waited for
    done = start + timedelta(hours=100)
    for event in events[100:]:
        metrics.evolve(msgspec.structs.replace(event, recorded_at=done))
    assert metrics.action_seconds == {}  # k0 and k1 completed days after they were authorised: not counted
    assert len(metrics.running) == 24 and ("w", "k0") not in metrics.running


def test_a_missing_projector_is_reported_not_fatal(tmp_path: Path) -> None:
    with a_log(tmp_path) as log:
        found = values(scrape(log, Answers(up=False)))
    assert found[("council_read_models_up", ())] == 0 and ("council_events_total", (("type", "task.failed"),)) in found


def test_a_refolded_exporter_publishes_the_same_counters(tmp_path: Path) -> None:
    with a_log(tmp_path) as log:
        first, second = scrape(log), scrape(log)
    assert values(first) == values(second)


def test_approvals_waiting_counts_open_requests(tmp_path: Path) -> None:
    from events.catalogue import ActionSpec, ApprovalGranted
    spec = ActionSpec(action="deploy", target="prod", arguments_digest="0" * 64, warrant_id="w", policy_hash="0" * 64,
                      nonce="0" * 32, expires_at=1e10, requester="r")
    with open_store("memory://") as log:
        for aid in ("a1", "a2"):
            log.append(f"approval-{aid}", [ApprovalRequested(approval_id=aid, digest="1" * 64, spec=spec, needed=1,
                                                             approvers={"x": "f"}, rule="r")])
        log.append("approval-a1", [ApprovalGranted(approval_id="a1", digest="1" * 64, keys=["f"])])
        assert values(scrape(log))[("council_approvals_waiting", ())] == 1


def test_promtool_accepts_the_exposition(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed here (apt-get install prometheus)")
    with a_log(tmp_path) as log:
        text = scrape(log, Answers())
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
