"""The Grafana dashboards and provisioning files: well-formed, wired to the provisioned datasource, every metric
ours."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parents[2] / "monitoring" / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"
OURS = {"council_events_total", "council_tasks", "council_queue_depth", "council_queue_oldest_age_seconds",
        "council_agent_in_flight", "council_agent_slots", "council_agent_utilisation", "council_agent_up",
        "council_agent_restarts_total", "council_agent_unresponsive_total", "council_agent_retired_total",
        "council_task_failures_total", "council_task_duration_seconds_bucket", "council_actions_authorized_total",
        "council_actions_denied_total", "council_approvals_waiting", "council_action_seconds_total",
        "council_task_duration_seconds_sum", "council_exporter_lag_events", "council_read_models_up",
        "council_alerts_total", "council_command_actions_total", "council_command_limits_hit_total",
        "council_model_calls_total", "council_model_tokens_total", "council_model_cost_usd_total",
        "council_model_repairs_total", "council_model_call_latency_seconds_bucket"}


def test_there_are_the_four_dashboards_with_unique_uids_and_panel_ids() -> None:
    boards = {p.stem: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}
    assert set(boards) == {"overview", "agents", "governance", "costs"}
    assert len({b["uid"] for b in boards.values()}) == 4
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and ids, name
        assert all(p["targets"] and all(t["expr"].strip() for t in p["targets"]) for p in board["panels"]), name


def test_every_panel_uses_the_provisioned_datasource_and_only_our_metrics() -> None:
    datasource = (PROVISIONING / "datasources" / "council.yaml").read_text()
    uid = re.search(r"uid:\s*(\S+)", datasource).group(1)  # type: ignore[union-attr]
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
            for target in panel["targets"]:
                names = set(re.findall(r"\bcouncil_[a-z_]+", target["expr"]))
                assert names and names <= OURS, (path.name, target["expr"], names - OURS)


def test_the_dashboard_provider_points_grafana_at_this_folder() -> None:
    provider = (PROVISIONING / "dashboards" / "council.yaml").read_text()
    assert "type: file" in provider and "${COUNCIL_DASHBOARDS}" in provider
