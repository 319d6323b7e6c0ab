"""The CI/CD pipeline run by agents under warrants, against the same tools run directly, on examples/sample-service.

* **governed**: ``start_ci`` then ``follow`` until the run waits for production's approvals: the
  checkout, the plan and its tasks in one commit, then each step dispatched to a Ray agent that
  gets a warrant, asks the gate before every action and records its outcome in the log. Timed
  from the call to ``start_ci`` until the driver sees production ``awaiting_approval``.
* **direct** (the peer): the same work in this process, one call after another, with the same
  tool functions and no Ray, no log, no gate, no warrants and no sandbox (its commands run as plain
  processes, as the policy's ``[sandbox] mode = "off"`` runs them); and **direct, sandboxed**, the
  same with every command in bubblewrap as the governed run's are: the checkout, the list of changes,
  the tests under coverage, ruff's safe fixes and the review, two builds compared, the deploy to
  staging with the health check, the smoke test, the changelog commit. It does not sign build
  provenance nor ask for production's approvals, which only the governed run does.
* **the sandbox** alone: a bare ``true`` run through :func:`actors.tools.commands.run` in the
  bubblewrap sandbox and unconfined, alternating, in the same process; and how many commands a
  governed run starts, so what the sandbox costs a run can be read off.

Both run in this process on one local Ray started once (the council's actors stay up, idle, while
the direct runs go): one warm-up run of each that is not counted, then ``--runs`` of each,
alternating. Each step's time in the governed run is what its agent measured (the tools and the
gate around them); the time a step waited to be dispatched, from the moment its last dependency
completed until it started, comes from the log's timestamps. Everything lives in a temporary
directory removed at the end; the council's metrics exporter is not started.

Usage::

    python bench/pipeline.py [--runs 3] [--timeout 300]
    python bench/pipeline.py --quick        # one run of each, no warm-up (figures not meaningful)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from actors import names
from actors.pipeline.config import PackageIndex, load_config, resolve
from actors.pipeline.install import install_args
from actors.pipeline.plan import STEPS
from actors.pipeline.results import BuildResult, TestResult
from actors.tools import build as builds
from actors.tools import commands, python_env
from actors.tools import impact as impacts
from actors.tools import review as reviews
from actors.tools.checkout import prepare
from actors.tools.deploy import deploy
from actors.tools.git import Git, Identity
from actors.tools.sandbox import Sandbox
from actors.tools.testing import run_pytest
from actors.tools.workspace import Workspace
from cluster.driver import Council
from cluster.pipeline import follow, start_ci
from cluster.report import report
from cluster.settings import DEFAULT_TEAM, Settings
from cluster.system import shutdown
from cluster.team import load_team
from events import open_store, streams
from events.catalogue import ActionCompleted
from governance.confinement import SandboxTable
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample-service"
WORK_STEPS = [s.name for s in STEPS if s.name not in ("impact", "prod")]
"""The steps both sides do work in (``impact`` only decides "run every test" on a tree with no base)."""


class Failed(Exception):
    """A run did not do what the pipeline must do; the benchmark's figures would mean nothing."""


def p50(values: list[float]) -> float:
    return statistics.median(values)


def governed_run(council: Council, repo: Path, timeout: float) -> dict[str, float]:
    """One pipeline run to "awaiting approval"; its wall time and where the time went, in seconds."""
    began_at = time.time()
    t0 = time.perf_counter()
    run = start_ci(council, repo)
    submitted = time.perf_counter()
    follow(council, run, lambda line: None, timeout)
    wall = time.perf_counter() - t0
    submitted_at, seen_at = began_at + (submitted - t0), began_at + wall
    found = report(council, run)
    expected = ["completed"] * (len(STEPS) - 1) + ["awaiting_approval"]
    if found.outcome != "awaiting approval" or [s["status"] for s in found.steps] != expected:
        raise Failed(f"the governed run ended '{found.outcome}':\n{found.text()}")
    tested, built = found.results.get("test"), found.results.get("build")
    if not isinstance(tested, TestResult) or tested.passed < 1 or not isinstance(built, BuildResult) \
            or not built.reproducible:
        raise Failed(f"the governed run's tests or build are not as expected:\n{found.text()}")
    seconds = {s["step"]: s["seconds"] for s in found.steps}
    stamps: dict[str, dict[str, float]] = {}
    for step in STEPS:
        events = council.store.read_stream(streams.task(run.tasks[step.name]))
        stamps[step.name] = {e.type.removeprefix("task."): e.recorded_at.timestamp() for e in events}
    # The steps form a chain (each waits for the one before; prod for smoke and docs), so the parts
    # below add up to the wall time: the driver's call, then for each step the wait from its last
    # dependency's completion (the first: from start_ci's return) to its start and the span from its
    # start to its completion as the log recorded them, then prod until it awaits approval, then
    # the time until the driver saw that.
    figures = {"wall": wall, "driver": submitted - t0, "dispatch": 0.0, "steps": 0.0}
    # Steps that run side by side (setup beside impact) overlap: only the chain that decided when prod
    # could start — each step's last dependency to complete — adds up to the wall time.
    by_name, critical, at = {s.name: s for s in STEPS}, set(), "prod"
    while by_name[at].depends_on:
        at = max(by_name[at].depends_on, key=lambda d: stamps[d]["completed"])
        critical.add(at)
    for step in STEPS:
        ready = max((stamps[d]["completed"] for d in step.depends_on), default=submitted_at)
        if step.name == "prod":
            figures["prod"] = stamps["prod"]["awaiting"] - ready
            continue
        figures[f"wait:{step.name}"] = stamps[step.name]["started"] - ready
        figures[f"step:{step.name}"] = float(seconds[step.name])
        if step.name in critical:
            figures["dispatch"] += figures[f"wait:{step.name}"]
            figures["steps"] += stamps[step.name]["completed"] - stamps[step.name]["started"]
    figures["seen"] = seen_at - stamps["prod"]["awaiting"]
    return figures


UNCONFINED = Sandbox(SandboxTable(mode="off").terms(network=False, wall_time_s=300.0))
CONFINED = Sandbox(SandboxTable().terms(network=False, wall_time_s=300.0))


def sandbox_cost(root: Path, n: int) -> tuple[list[float], list[float]]:
    """Seconds of ``n`` bare ``true`` runs in the sandbox and unconfined, alternating (after one of each unclocked)."""
    tree = Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    inside: list[float] = []
    outside: list[float] = []
    for i in range(n + 1):
        for box, times in ((CONFINED, inside), (UNCONFINED, outside)):
            started = time.perf_counter()
            commands.run(tree, ["true"], ".", 30.0, box=box)
            if i:
                times.append(time.perf_counter() - started)
    return inside, outside


def direct_run(root: Path, environments: Workspace, repo: Path, n: int, box: Sandbox) -> dict[str, float]:
    """The same work with the tools called directly, in this process; each step's time in seconds."""
    times: dict[str, float] = {}
    clock = time.perf_counter()
    t0 = clock

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[f"step:{step}"] = now - clock
        clock = now

    workspace = Workspace(root)
    request = f"direct-{n}"
    checkout = prepare(workspace, request, repo, box=box)
    tree = Workspace(workspace.path(checkout.path))
    config = load_config(tree.root)
    lap("checkout")

    argv = ["git", "diff", "--name-only", "--no-renames", checkout.base, "HEAD", "--"] if checkout.base else [
        "git", "ls-files"]
    listed = commands.run(tree, argv, ".", 60.0, tail=1 << 22, box=box)
    files = [line for line in listed.stdout.splitlines() if line]
    if listed.returncode != 0 or not files:
        raise Failed(f"git could not list the changes: {listed.stderr[-300:]}")
    tests = [config.tests]
    if checkout.base:
        reach = impacts.analyse(tree.root, files)
        tests = [config.tests] if reach.run_all else list(reach.tests)
    lap("changes")

    install = python_env.plan(tree, environments.path(f"python/{request}"), install_args(tree.root, config),
                              PackageIndex())
    made = python_env.make(tree, install, environments.path("python/.pip-cache"), PackageIndex(), 900.0, box=box)
    if made.returncode != 0:
        raise Failed(python_env.failure(made))
    lap("setup")

    ran = run_pytest(tree, ".", tests, coverage=config.coverage, box=box.reading(install.python.parent.parent),
                     python=str(install.python))
    if not ran.ok:
        raise Failed(f"the direct run's tests failed: {ran.failures}")
    lap("test")

    who = Identity("direct run", "direct@agent-council.invalid", "")
    ruff = [sys.executable, "-m", "ruff", "check", "--fix", "--diff", "--exit-zero", "--no-cache", "."]
    fixes = commands.run(tree, ruff, ".", 120.0, tail=1 << 22, box=box)
    if fixes.returncode != 0:
        raise Failed(f"ruff failed: {fixes.stderr[-300:]}")
    if fixes.stdout.lstrip().startswith("---"):
        Git(tree, box=box).apply(fixes.stdout, 0)
        Git(tree, box=box).commit("review: ruff's safe automatic fixes", who)
    found = reviews.review(tree, ".", box=box)
    if reviews.blocking(found.findings, "high"):
        raise Failed("the direct run's review found blocking findings")
    lap("review")

    built = builds.build(tree, ".", "dist", box=box)
    if not built.reproducible or not built.artifacts:
        raise Failed(f"the direct run's build is not reproducible: {built.mismatches}")
    lap("build")

    wheel = next(a for a in built.artifacts if a.name.endswith(".whl"))
    release = deploy(tree, wheel.path, config.staging, resolve(config.health) if config.health else None,
                     environments=environments, box=box)
    lap("staging")

    if config.smoke:
        smoked = commands.run(Workspace(environments.path(f"{config.staging}/releases/{release['release']}")),
                              resolve(list(config.smoke)), ".", 120.0, box=box)
        if smoked.returncode != 0:
            raise Failed(f"the direct run's smoke test failed: {smoked.stderr[-300:] or smoked.stdout[-300:]}")
    lap("smoke")

    log = commands.run(tree, ["git", "log", "--format=%h %s", "-20"], ".", 60.0, tail=20_000, box=box)
    entry = (f"## pipeline {request}\n\n- Tests: {ran.passed} passed; line coverage {ran.coverage_total}%\n"
             f"- Review: {sum(found.counts.values())} findings\n"
             + "".join(f"- Artefact `{a.name}` sha256 `{a.sha256}`\n" for a in built.artifacts)
             + f"- Staging: release `{release['release']}`\n- Commits:\n"
             + "".join(f"  - {line}\n" for line in log.stdout.splitlines() if line))
    tree.write(f"docs/pipeline/{request}.md", f"# Pipeline {request}\n\n{entry}".encode())
    tree.write("CHANGELOG.md", f"# Changelog\n\n{entry}".encode())
    Git(tree, box=box).commit(f"docs: changelog of {request}", who)
    lap("docs")
    times["wall"] = time.perf_counter() - t0
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="counted runs of each side (after one warm-up each)")
    parser.add_argument("--quick", action="store_true", help="one run of each side and no warm-up")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a governed run may take to settle")
    args = parser.parse_args()
    runs, warm = (1, 0) if args.quick else (max(1, args.runs), 1)

    tmp = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    verified = False
    try:
        repo = tmp / "sample-service"
        shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "dist", "build", "*.egg-info",
                                                                     ".pytest_cache", ".ruff_cache", ".benchmarks",
                                                                     ".coverage*"))
        home = tmp / "council"
        keys = Keyring(home / "keys")
        for name in ("alice", "bob"):
            keys.new(name)  # before the policy is adopted, so production has approvers to wait for
        settings = Settings(store=f"sqlite:///{tmp / 'events.db'}", projections=str(tmp / "projections.duckdb"),
                            home=str(home), metrics_port=None, health=False)
        ray.init(address="local", namespace=names.NAMESPACE, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, _temp_dir=str(tmp / "ray"))  # Ray's session files go with the rest
        started = time.perf_counter()
        council = Council.start(settings, team=load_team(DEFAULT_TEAM).members(leave_out={"worker"}))
        boot = time.perf_counter() - started
        environments = Workspace(tmp / "direct-environments")
        governed: list[dict[str, float]] = []
        direct: list[dict[str, float]] = []
        boxed: list[dict[str, float]] = []
        for n in range(warm + runs):
            g = governed_run(council, repo, args.timeout)
            d = direct_run(tmp / f"direct-{n}", environments, repo, n, UNCONFINED)
            b = direct_run(tmp / f"boxed-{n}", environments, repo, n, CONFINED)
            if n >= warm:
                governed.append(g)
                direct.append(d)
                boxed.append(b)
        shutdown()
        ray.shutdown()
        inside, outside = sandbox_cost(tmp / "sandbox-cost", 40)
        log = open_store(settings.store, create=False)
        verified = log.verify().ok
        confined = [e.payload for e in log.read_all(1, 1_000_000, ["action.completed"])
                    if isinstance(e.payload, ActionCompleted) and e.payload.confinement is not None]
        log.close()
    except Failed as exc:
        print(f"CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if ray.is_initialized():  # a run failed: stop the council's actors and Ray all the same
            try:
                shutdown()
            finally:
                ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    wall = {"governed": [g["wall"] for g in governed], "direct": [d["wall"] for d in direct],
            "boxed": [b["wall"] for b in boxed]}
    print(f"examples/sample-service, {runs} run(s) of each side after {warm} warm-up; {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, ray {ray.__version__}; council booted in {boot:.1f} s (not counted)")
    print(f"{'a run, seconds':<40}{'p50':>8}{'min':>8}{'max':>8}")
    for label, side in (("governed: start_ci -> awaiting approval", "governed"),
                        ("direct: same tools, no Ray/log/gate", "direct"),
                        ("direct, its commands sandboxed", "boxed")):
        print(f"{label:<40}{p50(wall[side]):>8.2f}{min(wall[side]):>8.2f}{max(wall[side]):>8.2f}")
    print(f"ratio governed / direct at p50: {p50(wall['governed']) / p50(wall['direct']):.2f}; the governed run takes "
          f"{p50(wall['governed']) - p50(wall['direct']):.2f} s more")
    print(f"  of which the sandbox: direct sandboxed / direct {p50(wall['boxed']) / p50(wall['direct']):.2f} "
          f"(+{p50(wall['boxed']) - p50(wall['direct']):.2f} s); governed / direct sandboxed "
          f"{p50(wall['governed']) / p50(wall['boxed']):.2f} (+{p50(wall['governed']) - p50(wall['boxed']):.2f} s)")
    print()
    print("per step, p50 seconds: governed = the agent's own measure (tools + gate), waited = from its last")
    print("dependency's completion to its start (queue, lease, dispatch), direct = the same tools called directly")
    print(f"{'step':<36}{'governed':>9}{'waited':>8}{'direct':>8}{'ratio':>8}")
    driver, checkout = p50([g["driver"] for g in governed]), p50([d["step:checkout"] for d in direct])
    print(f"{'checkout (governed: + plan, submit)':<36}{driver:>9.3f}{'':>8}{checkout:>8.3f}{driver / checkout:>8.2f}")
    for step in [s.name for s in STEPS if s.name != "prod"]:
        ours = p50([g[f"step:{step}"] for g in governed])
        waited = p50([g[f"wait:{step}"] for g in governed])
        if step in WORK_STEPS:
            peer = p50([d[f"step:{step}"] for d in direct])
            print(f"{step:<36}{ours:>9.3f}{waited:>8.3f}{peer:>8.3f}{ours / peer:>8.2f}")
        else:
            print(f"{step:<36}{ours:>9.3f}{waited:>8.3f}{'-':>8}")
    print(f"{'prod: ready -> awaiting approval':<36}{p50([g['prod'] for g in governed]):>9.3f}{'':>8}{'-':>8}")
    print()
    print("where a governed run's time goes (p50 of each part; in each run the parts add up to its wall time):")
    for label, key in (("checkout, plan and submit (driver)", "driver"),
                       ("steps running on the critical path, in the log", "steps"),
                       ("steps waiting to start (queue, lease, dispatch)", "dispatch"),
                       ("prod: ready -> awaiting approval", "prod"),
                       ("awaiting approval -> seen by the driver", "seen")):
        print(f"  {label:<50}{p50([g[key] for g in governed]):>7.3f} s")
    print(f"  {'direct: the same work, back to back':<50}{p50(wall['direct']):>7.3f} s")
    print()
    per_run = len(confined) / (warm + runs)
    cost = p50(inside) - p50(outside)
    print(f"the sandbox: a bare `true`, {len(inside)} runs each, p50 {p50(inside) * 1000:.1f} ms in bubblewrap, "
          f"{p50(outside) * 1000:.1f} ms unconfined (both under prlimit): {cost * 1000:.1f} ms per command; "
          f"a governed run has {per_run:.0f} actions that run commands, all sandboxed: "
          f"{sum(c.confinement.sandbox == 'bubblewrap' for c in confined if c.confinement)} of {len(confined)}")
    if not verified:
        print("CHECK FAILED: the log does not verify", file=sys.stderr)
        return 1
    if any(c.confinement is None or c.confinement.sandbox != "bubblewrap" for c in confined):
        print("CHECK FAILED: a governed command ran outside the sandbox", file=sys.stderr)
        return 1
    print(f"checks: ok (every governed run reached awaiting approval with {len(STEPS) - 1} steps completed; every "
          "direct run's tests "
          "passed, its build reproduced and its smoke test passed; the log verifies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
