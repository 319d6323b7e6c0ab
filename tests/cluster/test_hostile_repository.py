"""The pipeline run on a hostile repository: its tests, its build backend and its health check each try to escape.

One council for the module (Ray in this process, a SQLite log, the example policy with tighter
sandbox limits, API keys in the council's own environment). The repository is
``tests/fixtures/hostile-repo``; each run makes one part of it the attacker (``targets.json``).
The attacker tries to read the council's keys and log (by their absolute paths, and by walking up
from its working directory), write the log, reach the metrics port, Ray's GCS and dashboard, resolve
and reach an outside name, read the council's API keys, write outside its tree, write a file past
the size limit and leave a daemon behind; it records what it managed in its tree, then breaks a
limit. Every attempt must be blocked, nothing secret may reach the tree, the log or the report,
the report must name the limit hit, and the council must ship the sample service afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import ray

from actors import names
from cluster.driver import Council
from cluster.pipeline import follow, start_ci
from cluster.report import Report, report
from cluster.settings import DEFAULT_POLICY, DEFAULT_TEAM, Settings
from cluster.system import shutdown
from cluster.team import load_team
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "fixtures" / "hostile-repo"
SAMPLE = ROOT / "examples" / "sample-service"
API_KEYS = {"OPENAI_API_KEY": "sk-council-" + uuid.uuid4().hex, "ANTHROPIC_API_KEY": "sk-ant-" + uuid.uuid4().hex}
FILE_SIZE = 4 << 20
SANDBOX = f"""
[sandbox]
processes = 128
file_size = {FILE_SIZE}
wall_time = "20s"
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def council() -> Iterator[Council]:
    # Not under /tmp: a command's private /tmp would take writes meant for the home and hide the proof.
    home = Path(tempfile.mkdtemp(prefix="council-hostile-", dir="/var/tmp"))
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)
    policy = home / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text() + SANDBOX)
    saved = {name: os.environ.get(name) for name in API_KEYS}
    os.environ.update(API_KEYS)  # the council's own environment holds keys: no command may see them
    settings = Settings(store=f"sqlite:///{home / '.council' / 'events.db'}",
                        projections=str(home / "projections.duckdb"), home=str(home / ".council"),
                        policy=str(policy), metrics_port=0, health=False)
    team = load_team(DEFAULT_TEAM).members(leave_out={"worker"})
    # With its dashboard: one more service of ours on loopback that no command may reach.
    ray.init(namespace=names.NAMESPACE, include_dashboard=True, dashboard_port=0, log_to_driver=False,
             configure_logging=False)
    handle = Council.start(settings, team=team, dispatch={"backoff_base": 0.05})
    yield handle
    shutdown()
    ray.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def hostile(council: Council, tmp_path: Path, attacker: str) -> tuple[Path, str]:
    """A copy of the hostile repository aimed at this council, with ``attacker`` attacking; (copy, daemon tag)."""
    copy = tmp_path / f"hostile-{attacker}"
    shutil.copytree(HOSTILE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    home = Path(council.settings.absolute().home)
    tag = f"council-daemon-{uuid.uuid4().hex}"
    aim = {"attacker": attacker, "home": str(home), "log": str(home / "events.db"),
           "secrets": [str(p) for p in sorted((home / "keys").glob("*.key"))] + [str(home / "events.db")],
           "ports": ports(council),
           "environment": sorted(API_KEYS), "file_size": FILE_SIZE, "daemon_tag": tag}
    (copy / "src" / "hostile" / "targets.json").write_text(json.dumps(aim))
    return copy, tag


def ports(council: Council) -> dict[str, int]:
    """The council's services on loopback — each checked to answer from here, so a refusal inside means the sandbox."""
    found = {"metrics": int((council.metrics_address() or ":0").rsplit(":", 1)[1]),
             "ray-gcs": int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])}
    dashboard = ray._private.worker.global_worker.node.address_info.get("webui_url")  # None when not started
    if dashboard:
        found["ray-dashboard"] = int(str(dashboard).rsplit(":", 1)[1])
    for port in found.values():
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # reachable from outside the sandbox
    return found


def api_keys_reach_the_agents() -> bool:
    """Whether some process (an agent) holds the API keys in its environment: what the sandbox must scrub."""
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if API_KEYS["OPENAI_API_KEY"].encode() in Path(f"/proc/{pid}/environ").read_bytes() and \
                    b"AgentActor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def run(council: Council, repo: Path) -> tuple[Report, Path]:
    started = start_ci(council, repo)
    follow(council, started, lambda line: None, timeout=240)
    return report(council, started), started.tree


def secrets(council: Council) -> list[bytes]:
    """Every secret a command must not carry off: the keys (as bytes, hex and text) and the API keys."""
    keys = [p.read_bytes() for p in (Path(council.settings.absolute().home) / "keys").glob("*.key")]
    return [*keys, *(k.hex().encode() for k in keys), *(v.encode() for v in API_KEYS.values())]


def assert_nothing_leaked(council: Council, places: list[Path], text: str) -> None:
    for secret in secrets(council):
        assert secret not in text.encode()
        for place in places:
            for path in (p for p in place.rglob("*") if p.is_file()):
                assert secret not in path.read_bytes(), f"{path} holds a secret"
    events = b"\n".join(msgspec.json.encode(e.payload) for e in council.store.read_all(1, None))
    for secret in secrets(council):
        assert secret not in events, "a secret reached the log"


def assert_blocked(record: dict[str, Any]) -> None:
    leaked = {attempt: outcome for attempt, outcome in record.items() if not outcome.startswith("blocked")}
    assert not leaked, leaked
    assert len(record) >= 12, record  # every attempt was made: keys, log, ports, name, API keys, writes, size


def assert_no_daemon(tag: str) -> None:
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            assert tag.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes(), f"a daemon survives: {pid}"
        except OSError:
            continue


def test_hostile_tests_are_blocked_and_a_fork_bomb_stops_the_step(council: Council, tmp_path: Path) -> None:
    repo, tag = hostile(council, tmp_path, "tests")
    found, tree = run(council, repo)
    assert found.outcome == "failed at test", found.text()
    assert found.limits == {"test": ["processes"]}, found.text()
    assert "limits hit: test: processes" in found.text() and "process limit" in found.errors["test"]
    record = json.loads((tree / "escape-record" / "tests.json").read_text())
    assert_blocked(record)
    for service in ("metrics", "ray-gcs", "ray-dashboard"):
        assert any(a.startswith(f"connect to {service} ") for a in record), service
    assert record["read $OPENAI_API_KEY"] == "blocked: not set" and api_keys_reach_the_agents()
    assert record["write a file past the size limit"].startswith("blocked: OSError: File too large")
    assert_nothing_leaked(council, [tree], found.text())
    assert_no_daemon(tag)


def test_a_hostile_build_backend_is_blocked_and_the_build_fails(council: Council, tmp_path: Path) -> None:
    repo, tag = hostile(council, tmp_path, "build")
    found, tree = run(council, repo)
    assert found.outcome == "failed at build", found.text()
    assert "done attacking" in found.errors["build"]
    assert_blocked(json.loads((tree / "escape-record" / "build.json").read_text()))
    assert_nothing_leaked(council, [tree], found.text())
    assert_no_daemon(tag)


def test_a_hostile_install_granted_the_network_is_blocked_and_stops_the_request_at_setup(council: Council,
                                                                                       tmp_path: Path) -> None:
    repo, tag = hostile(council, tmp_path, "install")
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('environment = "council"', 'environment = "own"'))
    found, tree = run(council, repo)
    assert found.outcome == "failed at setup", found.text()
    assert "could not be installed" in found.errors["setup"] and "done attacking (install)" in found.errors["setup"]
    record = json.loads((tree / "escape-record" / "install.json").read_text())
    assert_blocked(record)  # the policy grants the install the network: still no way to the host's services
    for service in ("metrics", "ray-gcs", "ray-dashboard"):
        assert any(a.startswith(f"connect to {service} ") for a in record), service
    assert record["resolve pypi.org"].startswith("blocked")  # no name service inside: only the proxy goes out
    assert_nothing_leaked(council, [tree, environments_of(council)], found.text())
    assert_no_daemon(tag)


def environments_of(council: Council) -> Path:
    return Path(council.settings.absolute().workspace or "") / "environments"


def test_a_hostile_health_check_is_blocked_stopped_by_the_clock_and_rolled_back(council: Council,
                                                                                  tmp_path: Path) -> None:
    repo, tag = hostile(council, tmp_path, "health")
    found, tree = run(council, repo)
    assert found.outcome == "failed at staging", found.text()
    assert found.limits == {"staging": ["wall_time"]}, found.text()
    environments = environments_of(council)
    [record] = list((environments / "staging" / "releases").glob("*/escape-record/health.json"))
    assert_blocked(json.loads(record.read_text()))
    assert not (environments / "staging" / "current").exists()  # rolled back: no earlier release to go back to
    assert_nothing_leaked(council, [tree, environments], found.text())
    assert_no_daemon(tag)


def test_the_council_keeps_working_and_ships_the_sample_service_after(council: Council, tmp_path: Path) -> None:
    copy = tmp_path / "sample-service"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    found, _ = run(council, copy)
    assert found.outcome == "awaiting approval", found.text()
    assert found.limits == {} and found.confined.get("bubblewrap", 0) >= 8 and not found.confined.get("off")
    assert "no limit was hit" in found.text()
