"""Steps on a council with the health monitor and the error detector on.

* A step that runs longer than its lease and than the monitor's hang deadline completes on its first attempt,
  because its running command is progress and its agent's heartbeats renew the lease. (Before, such a test suite
  was taken back after about half a minute, every attempt.)
* A step that fails for good ends the run once the error detector has judged it, and the report says why; a person
  who fixes the cause and requeues it brings back the steps behind it. (Before, they stayed dead-lettered.)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from cluster.driver import Council
from cluster.pipeline import follow, start_ci
from cluster.report import report
from cluster.settings import DEFAULT_TEAM, Settings
from cluster.system import shutdown
from cluster.team import load_team
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-service"
HANG_AFTER, LEASE = 3.0, 4.0
SLOW_TEST = f"import time\n\n\ndef test_takes_its_time():\n    time.sleep({3 * LEASE})\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Council]:
    home = tmp_path_factory.mktemp("long")
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)  # before the policy is adopted, so production can be approved
    settings = Settings(store=f"sqlite:///{home / 'events.db'}", home=str(home / ".council"), metrics_port=None)
    team = load_team(DEFAULT_TEAM).members(leave_out={"worker"})
    handle = Council.start(settings, team=team, dispatch={"lease": LEASE, "heartbeat_timeout": 8.0},
                           health={"ping_every": 0.5, "hang_after": HANG_AFTER})
    yield handle
    shutdown()
    ray.shutdown()


def test_a_test_suite_longer_than_its_lease_and_the_hang_deadline_completes_on_its_first_attempt(
        council: Council, tmp_path: Path) -> None:
    repo = tmp_path / "slow-service"
    shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    (repo / "tests" / "test_slow.py").write_text(SLOW_TEST)
    run = start_ci(council, repo)
    follow(council, run, lambda line: None, timeout=300)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    test_stream = [e.type for e in council.store.read_stream(f"task-{run.tasks['test']}")]
    assert test_stream.count("task.started") == 1 and "task.lease_expired" not in test_stream, test_stream
    assert not council.store.read_all(1, None, ["agent.unresponsive", "actor.unresponsive"])  # nobody called hung
    assert next(s for s in found.steps if s["step"] == "test")["seconds"] > 3 * LEASE


READY_TEST = ("from pathlib import Path\n\n\ndef test_the_fixture_is_ready():\n"
              "    assert (Path(__file__).parent / 'ready').exists(), 'make tests/ready first'\n")


def test_a_step_that_failed_for_good_is_judged_and_a_requeue_brings_back_the_steps_behind_it(
        council: Council, tmp_path: Path) -> None:
    repo = tmp_path / "not-ready"
    shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    (repo / "tests" / "test_ready.py").write_text(READY_TEST)
    run = start_ci(council, repo)
    follow(council, run, lambda line: None, timeout=300)
    found = report(council, run)
    assert found.outcome == "failed at test", found.text()
    assert "cannot succeed as asked" in found.verdicts["test"]  # the detector's alert, waited for
    assert f"    stopped for good: {found.verdicts['test']}" in found.text()
    assert {s["step"]: s["status"] for s in found.steps}["review"] == "dead_lettered"
    assert "review" not in found.verdicts  # its fate is its dependency's

    (run.tree / "tests" / "ready").write_text("")  # the person fixes the cause (untracked: the build never sees it)
    council.requeue(run.tasks["test"], "made tests/ready")
    follow(council, run, lambda line: None, timeout=300)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    review = [e.type for e in council.store.read_stream(f"task-{run.tasks['review']}")]
    assert review.count("task.reopened") == 1 and review[-1] == "task.completed", review
