"""The CI/CD pipeline run by agents under warrants, end to end on examples/sample-service, and its failure paths.

One council for the module (Ray in this process, a SQLite log, the example policy with two
approvers' keys made before it is adopted). Each test runs a pipeline on its own copy of the
sample service; staging and prod are shared between runs, as they would be for a team.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from actors import names
from actors.pipeline.results import BuildResult, ReviewResult
from cluster.driver import Council
from cluster.pipeline import Run, follow, start_ci
from cluster.report import report
from cluster.settings import DEFAULT_TEAM, Settings
from cluster.system import shutdown
from cluster.team import load_team
from governance import approvals, provenance
from governance.approvals import ApprovalLedger
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-service"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Council]:
    home = tmp_path_factory.mktemp("pipeline")
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)  # before the policy is adopted, so the approvers are pinned
    settings = Settings(store=f"sqlite:///{home / 'events.db'}", projections=str(home / "projections.duckdb"),
                        home=str(home / ".council"), health=False)
    team = load_team(DEFAULT_TEAM).members(leave_out={"worker"})
    handle = Council.start(settings, team=team, dispatch={"backoff_base": 0.05})
    yield handle
    shutdown()
    ray.shutdown()


def sample(tmp_path: Path, **changes: str) -> Path:
    """A copy of the sample service with some files replaced (path → text)."""
    copy = tmp_path / "sample-service"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    for path, text in changes.items():
        (copy / path).write_text(text)
    return copy


def run_to_the_end(council: Council, repo: Path) -> tuple[Run, list[str]]:
    run = start_ci(council, repo)
    lines: list[str] = []
    follow(council, run, lines.append, timeout=240)
    return run, lines


def events_of(council: Council, stream: str, kind: str) -> list:
    return [e.payload for e in council.store.read_stream(stream) if e.type == kind]


def warrant_events(council: Council, kind: str) -> list:
    return [e.payload for e in council.store.read_all(1, 100_000, [kind])]


def approve(council: Council, approval_id: str, key: str) -> None:
    """What `council approve ID --key NAME` does: sign the request's digest and append it at the stream's version."""
    home = Path(council.settings.absolute().home)
    events = council.store.read_stream(f"approval-{approval_id}")
    ledger = ApprovalLedger()
    for event in events:
        ledger.evolve(event.payload, event.recorded_at.timestamp())
    assert ledger.requested is not None
    signed = approvals.sign_approval(Keyring(home / "keys").signer(key), ledger.requested)
    council.store.append(f"approval-{approval_id}", [signed], ledger.version)


def environments(council: Council) -> Path:
    return Path(council.settings.absolute().workspace or "") / "environments"


def test_the_sample_service_ships_to_staging_and_waits_for_two_approvals_before_prod(council: Council,
                                                                                        tmp_path: Path) -> None:
    run, lines = run_to_the_end(council, sample(tmp_path))
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    assert [s["status"] for s in found.steps] == ["completed"] * 9 + ["awaiting_approval"]
    assert "test     completed (tester-1)" in lines and "prod     awaiting_approval (deployer-1)" in lines

    # tests, with coverage per file, as an event
    [tests] = [t for t in warrant_events(council, "tests.reported") if t.key.startswith(run.tasks["test"])]
    assert tests.passed == 5 and tests.failed == 0 and tests.coverage_total and tests.coverage_total > 80
    assert any(path.endswith("app.py") for path in tests.coverage)

    # a reproducible build whose provenance the builder signed, over the artefacts on disk
    built = found.results["build"]
    assert isinstance(built, BuildResult)
    assert built.reproducible is True and {a.name.rsplit(".", 1)[-1] for a in built.artefacts} == {"whl", "gz"}
    assert built.provenance is not None
    envelope = json.loads((run.tree / built.provenance).read_text())
    builder = Keyring(Path(council.settings.absolute().home) / "keys").public("agent-builder-1")
    statement = provenance.verify(envelope, builder)
    provenance.check_subjects(statement, {a.name: (run.tree / a.path).read_bytes() for a in built.artefacts})
    assert statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] == built.commit

    # staging serves the wheel; prod is untouched without approvals
    staging = environments(council) / "staging" / "current"
    assert (staging / "sample_service" / "app.py").exists()
    assert json.loads((staging / "manifest.json").read_text())["sha256"] == next(
        a.sha256 for a in built.artefacts if a.name.endswith(".whl"))
    assert not (environments(council) / "prod").exists()

    # the documenter's commit: changelog and task graph, under its warrant
    log = subprocess.run(["git", "log", "-1", "--format=%an%n%B"], cwd=run.tree, capture_output=True, text=True,
                         check=True).stdout
    assert log.startswith("documenter-1") and "Council-Warrant: w-" in log
    assert "```mermaid" in (run.tree / "docs" / "pipeline" / f"{run.request_id}.md").read_text()
    assert f"pipeline {run.request_id}" in (run.tree / "CHANGELOG.md").read_text()

    # the report names the exact command, and two signatures ship it
    assert found.approval is not None and f"council approve {found.approval['approval_id']} --key" in found.text()
    settings = council.settings.absolute()  # not the defaults: the printed commands say where the log and keys are
    assert f"--store {settings.store} --home {settings.home}" in found.text()
    approve(council, found.approval["approval_id"], "alice")
    time.sleep(1.0)
    assert not (environments(council) / "prod" / "current").exists()  # one signature is not enough
    assert report(council, run).approval["keys"] == ["bob"]  # the report asks only for what is missing
    approve(council, found.approval["approval_id"], "bob")
    follow(council, run, lines.append, timeout=60, through_prod=True)
    shipped = report(council, run)
    assert shipped.outcome == "shipped"
    keys = Keyring(Path(council.settings.absolute().home) / "keys")
    signers = [f"{name} ({keys.public(name).fingerprint})" for name in ("alice", "bob")]
    assert shipped.shipped_by == signers
    assert f"production: {environments(council) / 'prod' / 'current'} → release " in shipped.text()
    assert f"approved by {', '.join(signers)}" in shipped.text()
    assert (environments(council) / "prod" / "current" / "sample_service" / "health.py").exists()


def test_a_failing_test_blocks_the_build(council: Council, tmp_path: Path) -> None:
    broken = (SAMPLE / "src" / "sample_service" / "app.py").read_text().replace("return a + b", "return a - b")
    run, _ = run_to_the_end(council, sample(tmp_path, **{"src/sample_service/app.py": broken}))
    found = report(council, run)
    assert found.outcome == "failed at test", found.text()
    assert "tests failed" in found.errors["test"] and "test_add" in found.errors["test"]
    # what a person needs: the failed run's counts, and what pytest said of the failing test
    tested = found.tested
    assert tested is not None and tested.failed >= 1 and set(tested.details) == set(tested.failures)
    assert f"tests: {tested.passed} passed, {tested.failed} failed, 0 errors, 0 skipped" in found.text()
    first = next(iter(tested.details))
    assert f"  {first}:" in found.text() and "AssertionError" in tested.details[first]
    statuses = {s["step"]: s["status"] for s in found.steps}
    assert all(statuses[s] == "dead_lettered" for s in ("build", "staging", "smoke", "docs", "prod"))
    assert not (run.tree / "dist").exists()
    assert not events_of(council, f"task-{run.tasks['build']}", "task.started")


def test_a_blocking_review_finding_stops_the_pipeline(council: Council, tmp_path: Path) -> None:
    risky = "import subprocess\n\n\ndef run(command: str) -> int:\n    return subprocess.call(command, shell=True)\n"
    run, _ = run_to_the_end(council, sample(tmp_path, **{"src/sample_service/shell.py": risky}))
    found = report(council, run)
    assert found.outcome == "failed at review", found.text()
    assert "B602" in found.errors["review"] and "high" in found.errors["review"]
    [review] = [r for r in warrant_events(council, "review.reported") if r.key.startswith(run.tasks["review"])]
    assert review.blocking >= 1 and review.threshold == "high"
    assert any(f.rule == "B602" and f.path == "src/sample_service/shell.py" and f.line == 5 for f in review.findings)
    assert not events_of(council, f"task-{run.tasks['build']}", "task.started")


def test_a_review_judges_what_the_change_adds_against_its_base_or_a_committed_baseline(council: Council,
                                                                                        tmp_path: Path) -> None:
    risky = "import subprocess\n\n\ndef run(command: str) -> int:\n    return subprocess.call(command, shell=True)\n"
    repo = sample(tmp_path, **{"src/sample_service/shell.py": risky})
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "with a finding in an untouched module"], check=True)
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA line of documentation.\n")
    subprocess.run([*git, "commit", "-qam", "docs only"], check=True)
    run = start_ci(council, repo, "HEAD~1")
    follow(council, run, lambda line: None, timeout=240)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()  # the change added no finding
    review = found.results["review"]
    assert isinstance(review, ReviewResult) and review.stopping() == 0 and review.known >= 1
    assert review.baseline == f"the base {run.base[:12] if run.base else ''}" and "B602" not in found.errors.get(
        "review", "")
    assert "there before: the base" in found.text()
    [reported] = [r for r in warrant_events(council, "review.reported") if r.key.startswith(run.tasks["review"])]
    assert any(f.rule == "B602" and f.known for f in reported.findings)
    # The same files as a first snapshot (no base) are stopped, saying so — until the repository commits a baseline.
    first, _ = run_to_the_end(council, sample(tmp_path / "again", **{"src/sample_service/shell.py": risky}))
    stopped = report(council, first)
    assert stopped.outcome == "failed at review" and "council review --write-baseline" in stopped.errors["review"]
    with_baseline = sample(tmp_path / "third", **{"src/sample_service/shell.py": risky})
    written = subprocess.run([sys.executable, "-m", "cluster.cli", "review", "--repo", str(with_baseline),
                              "--write-baseline"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert written.returncode == 0 and "review-baseline.json" in written.stdout, written.stderr
    accepted, _ = run_to_the_end(council, with_baseline)
    passed = report(council, accepted)
    assert passed.outcome == "awaiting approval", passed.text()
    assert isinstance(r := passed.results["review"], ReviewResult) and r.baseline == "review-baseline.json"


def test_a_failing_health_check_rolls_staging_back(council: Council, tmp_path: Path) -> None:
    staging = environments(council) / "staging" / "current"
    before = staging.resolve()  # the release the first test left live
    config = (SAMPLE / "pyproject.toml").read_text().replace(
        'health = ["python3", "-m", "sample_service.health"]', 'health = ["python3", "-c", "raise SystemExit(3)"]')
    run, _ = run_to_the_end(council, sample(tmp_path, **{"pyproject.toml": config}))
    found = report(council, run)
    assert found.outcome == "failed at staging", found.text()
    assert "rolled back" in found.errors["staging"]
    assert staging.resolve() == before
    [rolled] = [r for r in warrant_events(council, "release.deployed") if r.key.startswith(run.tasks["staging"])]
    assert rolled.outcome == "rolled_back" and rolled.environment == "staging"


def test_killing_an_agent_mid_step_resumes_without_redoing_finished_steps(council: Council, tmp_path: Path) -> None:
    run = start_ci(council, sample(tmp_path))
    deadline = time.monotonic() + 120
    while not events_of(council, f"task-{run.tasks['test']}", "task.started"):
        assert time.monotonic() < deadline, "the test step never started"
        time.sleep(0.02)
    time.sleep(0.3)  # inside pytest's run
    tester = ray.get_actor(names.agent("tester-1"), namespace=names.NAMESPACE)
    ray.kill(tester, no_restart=False)
    follow(council, run, lambda line: None, timeout=240)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    assert len(events_of(council, f"task-{run.tasks['test']}", "task.started")) >= 2  # the step was taken up again
    for step in ("changes", "impact"):  # finished before the kill: done once
        assert len(events_of(council, f"task-{run.tasks[step]}", "task.started")) == 1
        assert len(events_of(council, f"task-{run.tasks[step]}", "task.completed")) == 1
    authorized = [a.key for a in warrant_events(council, "action.authorized")]
    for step in ("changes", "review", "build", "staging", "smoke"):
        keys = [k for k in authorized if k.startswith(run.tasks[step] + "#")]
        assert keys and len(keys) == len(set(keys)), (step, keys)  # every action of a finished step ran once


def test_safe_lint_fixes_are_committed_on_their_own_before_the_build(council: Council, tmp_path: Path) -> None:
    source = (SAMPLE / "src" / "sample_service" / "app.py").read_text()
    app = source.replace("import json\n", "import json\nimport os\n")
    run, _ = run_to_the_end(council, sample(tmp_path, **{"src/sample_service/app.py": app}))
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    review = found.results["review"]
    assert isinstance(review, ReviewResult)
    fix = review.fix_commit
    assert fix and review.findings == 0  # fixed, then reviewed clean
    log = subprocess.run(["git", "show", "--stat", "--format=%an%n%B", fix], cwd=run.tree, capture_output=True,
                         text=True, check=True).stdout
    assert log.startswith("reviewer-1") and "Council-Warrant: w-" in log and "src/sample_service/app.py" in log
    assert "import os" not in (run.tree / "src" / "sample_service" / "app.py").read_text()
    built = found.results["build"]
    assert isinstance(built, BuildResult) and built.commit == fix  # the build is of the fixed tree
    changed = [c for c in warrant_events(council, "file.changed") if c.key.startswith(run.tasks["review"])]
    assert [c.path for c in changed] == ["src/sample_service/app.py"] and changed[0].before != changed[0].after
