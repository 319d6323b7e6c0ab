"""The pipeline on real open-source libraries nobody here wrote: how far each gets, and what it costs.

Each library's published source archive (a pinned version, from the package index, at run time)
becomes a git repository with two commits: the release as it is, then a one-line change to one of
its source modules. ``council run ci --base HEAD~1`` is run on it by a council started here with
the example policy (its install step may reach the index), and the report says how far it got.
The peer, in the same run, is the same work done directly by hand on the same tree, unconfined:
a virtual environment with the project and its test dependencies installed by pip, the tests the
pipeline ran under coverage, and two builds — what a developer would run before pushing.

The libraries (pure Python, a different backend or layout each; why these):

* more-itertools 10.5.0 — flit-core, a flat package, about 20 test modules: a suite of size;
* idna 3.10 — flit-core, large generated data modules;
* tomli 2.2.1 — flit-core, a ``src/`` layout, and an sdist that ships no tests: the pipeline must
  say that no test ran, not fail;
* iniconfig 2.0.0 — hatchling with hatch-vcs (its version from git), a package that re-exports
  its modules with relative imports, and an sdist without its tests;
* packaging 24.2 — flit-core, ``src/`` layout, its test dependencies only in ``tests/requirements.txt``
  (which its nox sessions install): found there;
* click 8.1.7 — setuptools, ``src/`` layout, tests that drive a CLI, test dependencies in
  ``requirements/tests.txt``;
* itsdangerous 2.2.0 — flit-core, ``src/`` layout, a test dependency (freezegun) the council does
  not have, in ``requirements/tests.txt``.

The direct side does less than the pipeline: no review, no deploys, no changelog — only what a
developer runs before pushing — so the ratio is the price of everything else too.

Usage::

    python bench/real_repos.py [--only NAME ...] [--timeout 900]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from figures import log_checked

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from actors import names
from actors.pipeline.config import PackageIndex, load_config
from actors.pipeline.install import install_args
from actors.pipeline.results import TestResult
from actors.tools import python_env
from actors.tools.workspace import Workspace
from cluster.driver import Council
from cluster.pipeline import PipelineTimedOut, follow, start_ci
from cluster.report import report
from cluster.settings import DEFAULT_TEAM, Settings
from cluster.system import shutdown
from cluster.team import load_team
from events import open_store
from governance.keys import Keyring


@dataclass(frozen=True)
class Library:
    """A library to try: its distribution name, the pinned version, and the module its one-line change goes in."""

    name: str
    version: str
    module: str


LIBRARIES = (
    Library("more-itertools", "10.5.0", "more_itertools/recipes.py"),
    Library("idna", "3.10", "idna/intranges.py"),
    Library("tomli", "2.2.1", "src/tomli/_re.py"),
    Library("iniconfig", "2.0.0", "src/iniconfig/exceptions.py"),
    Library("packaging", "24.2", "src/packaging/_structures.py"),
    Library("click", "8.1.7", "src/click/globals.py"),
    Library("itsdangerous", "2.2.0", "src/itsdangerous/encoding.py"),
)


def fetch(library: Library, into: Path) -> Path:
    """The library's source archive from the package index, unpacked, as a git repository of two commits."""
    archive = into / "archives"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                    "--dest", str(archive), f"{library.name}=={library.version}"], check=True, timeout=300)
    [found] = [p for p in archive.iterdir() if p.name.lower().replace("_", "-").startswith(
        f"{library.name}-{library.version}".lower())]
    repo = into / library.name
    with tarfile.open(found) as sdist:
        sdist.extractall(into / "unpacked", filter="data")
    (into / "unpacked" / found.name.removesuffix(".tar.gz")).rename(repo)
    git = ["git", "-C", str(repo), "-c", "user.email=bench@agent-council.invalid", "-c", "user.name=bench"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", f"{library.name} {library.version} as released"], check=True)
    module = repo / library.module
    module.write_text(module.read_text() + "\n# A one-line change for the pipeline to judge.\n")
    subprocess.run([*git, "commit", "-qam", "a one-line change"], check=True)
    return repo


@dataclass
class Governed:
    """How far the pipeline got on a library."""

    outcome: str
    reached: int
    seconds: float
    stopped: str
    tests: list[str]
    """The tests the pipeline ran (files or directories; none when the change reached none)."""
    passed: int


def governed(council: Council, repo: Path, timeout: float) -> Governed:
    started = time.perf_counter()
    run = start_ci(council, repo, "HEAD~1")
    with contextlib.suppress(PipelineTimedOut):  # a run that does not settle is reported as it stands
        follow(council, run, lambda line: None, timeout)
    seconds = time.perf_counter() - started
    found = report(council, run)
    reached = sum(1 for s in found.steps if s["status"] in ("completed", "awaiting_approval"))
    first = next((f"{step}: {error}" for step, error in found.errors.items()
                  if not error.startswith("dependency ")), "")
    tested = found.results.get("test")
    ran = list(tested.ran) if isinstance(tested, TestResult) else []
    passed = tested.passed if isinstance(tested, TestResult) else (found.tested.passed if found.tested else 0)
    return Governed(found.outcome, reached, seconds, first.splitlines()[0][:160] if first else "", ran, passed)


def direct(repo: Path, tests: list[str], work: Path) -> float:
    """The same work by hand, unconfined: an environment with the project installed, the tests, two builds."""
    started = time.perf_counter()
    env_dir = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
                   check=True, capture_output=True)
    install = python_env.plan(Workspace(repo), env_dir, install_args(repo, load_config(repo)), PackageIndex())
    python = str(install.python)
    subprocess.run(install.argv, cwd=repo, check=True, capture_output=True, timeout=900)
    if tests:  # the same tests the pipeline ran; none if the change reached none
        subprocess.run([python, "-m", "coverage", "run", "--data-file", str(work / "coverage"), "-m", "pytest",
                        "-q", "-p", "no:cacheprovider", *tests], cwd=repo, check=True, capture_output=True,
                       timeout=1800)
    for n in (1, 2):
        subprocess.run([python, "-m", "build", "--no-isolation", "--outdir", str(work / f"dist{n}"), "."], cwd=repo,
                       check=True, capture_output=True, timeout=900, env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="the libraries to try (default: all)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one pipeline may take")
    args = parser.parse_args()
    chosen = [lib for lib in LIBRARIES if args.only is None or lib.name in args.only]
    tmp = Path(tempfile.mkdtemp(prefix="real-repos-"))
    home = tmp / "council"
    keys = Keyring(home / "keys")
    for name in ("alice", "bob"):
        keys.new(name)
    settings = Settings(store=f"sqlite:///{tmp / 'events.db'}", home=str(home), metrics_port=None)
    ray.init(address="local", namespace=names.NAMESPACE, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    council = Council.start(settings, team=load_team(DEFAULT_TEAM).members(leave_out={"worker"}))
    rows = []
    try:
        for library in chosen:
            repo = fetch(library, tmp / "sources")
            result = governed(council, repo, args.timeout)
            peer = None
            if result.outcome == "awaiting approval":
                checkout = tmp / "direct" / library.name
                subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
                peer = direct(checkout, result.tests, tmp / "direct" / f"{library.name}-work")
            rows.append((library, result, peer))
            print(f"{library.name} {library.version}: {result.outcome} ({result.reached} of 10 steps, "
                  f"{result.passed} tests passed) in "
                  f"{result.seconds:.1f} s" + (f"; direct {peer:.1f} s" if peer else "")
                  + (f"; stopped by {result.stopped}" if result.stopped else ""), flush=True)
    finally:
        shutdown()
        ray.shutdown()
    with open_store(settings.store, create=False) as log:
        verified = log.verify().ok
    print(f"\n{len(rows)} libraries; {os.cpu_count()} cores, ray {ray.__version__}")
    print(f"{'library':<24}{'steps':>6}{'tests':>7}{'outcome':>20}{'governed s':>12}{'direct s':>10}{'ratio':>7}"
          "  stopped by")
    for library, result, peer in rows:
        ratio = f"{result.seconds / peer:.2f}" if peer else "-"
        print(f"{library.name + ' ' + library.version:<24}{result.reached:>6}{result.passed:>7}{result.outcome:>20}"
              f"{result.seconds:>12.1f}{(f'{peer:.1f}' if peer else '-'):>10}{ratio:>7}  {result.stopped}")
    return log_checked(verified)


if __name__ == "__main__":
    sys.exit(main())
