"""`council feedback` and `council strategy list|revert` as a user runs them, on a log file (no council running)."""

from __future__ import annotations

from pathlib import Path

from cli_support import council

from events import open_store, streams
from events.catalogue import RequestSubmitted, StrategyChanged


def test_the_commands_rate_list_and_revert_on_the_log_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(url) as log:
        log.append(streams.request("r-1"), [RequestSubmitted(request_id="r-1")])
        log.append(streams.STRATEGIES, [StrategyChanged(strategy_id="lease:ci.build#1", kind="lease",
                                                        subject="ci.build", value="120", evidence=[1, 2],
                                                        reason="2 leases expired")])
    env = {"COUNCIL_STORE": url, "RAY_TMPDIR": str(tmp_path), "TMPDIR": str(tmp_path)}  # no other Ray found
    rated = council("feedback", "r-1", "--bad", "the tests were wrong", cwd=tmp_path, env=env)
    assert rated.returncode == 0, rated.stderr
    assert "r-1 rated bad" in rated.stdout
    both = council("feedback", "r-1", "--good", "a", "--bad", "b", cwd=tmp_path, env=env)
    assert both.returncode == 2 and "one of --good" in both.stderr
    listed = council("strategy", "list", cwd=tmp_path, env=env)
    assert "lease:ci.build#1  [in effect] ci.build: lease 120 s" in listed.stdout
    assert "evidence: positions 1, 2" in listed.stdout
    reverted = council("strategy", "revert", "lease:ci.build#1", "--reason", "not slow", cwd=tmp_path, env=env)
    assert reverted.returncode == 0, reverted.stderr
    again = council("strategy", "revert", "lease:ci.build#1", "--reason", "not slow", cwd=tmp_path, env=env)
    assert again.returncode == 2 and "reverted already by" in again.stderr
    listed = council("strategy", "list", "--all", cwd=tmp_path, env=env)
    assert "[reverted]" in listed.stdout and "0 in effect, 1 reverted or superseded" in listed.stdout
