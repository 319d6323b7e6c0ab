"""Each request's tests run in a Python environment of its own, with the project and its test dependencies installed
from the package index the policy names — here a local directory of wheels, so no test needs the network. A
dependency that cannot be installed stops the request at its setup step with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from actors.pipeline.results import BuildResult, SetupResult, TestResult
from cluster.driver import Council
from cluster.pipeline import follow, start_ci
from cluster.report import report
from cluster.settings import DEFAULT_POLICY, DEFAULT_TEAM, Settings
from cluster.system import shutdown
from cluster.team import load_team
from governance.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-service"
DEPENDENCY = "councilfixture-greeting"
BACKEND = ROOT / "tests" / "fixtures" / "own-backend"

pytestmark = pytest.mark.slow


def wheel_of_a_dependency(directory: Path) -> Path:
    """Wheels of a tiny package and of a build backend the council's own environment does not have, built offline."""
    project = directory / "greeting"
    (project / "src" / "councilfixture_greeting").mkdir(parents=True)
    (project / "src" / "councilfixture_greeting" / "__init__.py").write_text('def hello():\n    return "hello"\n')
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{DEPENDENCY}"\nversion = "1.0"\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/councilfixture_greeting"]\n')
    wheels = directory / "wheels"
    for source in (project, BACKEND):
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(wheels),
                        str(source)], check=True, capture_output=True, timeout=300)
    return wheels


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Council]:
    home = tmp_path_factory.mktemp("environments")
    wheels = wheel_of_a_dependency(home)
    policy = home / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text().replace(
        'review_block_at = "high"', f'review_block_at = "high"\nfind_links = ["{wheels}"]\nno_index = true'))
    keys = Keyring(home / ".council" / "keys")
    for name in ("alice", "bob"):
        keys.new(name)
    settings = Settings(store=f"sqlite:///{home / 'events.db'}", home=str(home / ".council"), policy=str(policy),
                        metrics_port=None, health=False)
    handle = Council.start(settings, team=load_team(DEFAULT_TEAM).members(leave_out={"worker"}),
                           dispatch={"backoff_base": 0.05})
    yield handle
    shutdown()
    ray.shutdown()


def project(tmp_path: Path, dependency: str) -> Path:
    """The sample service, whose tests now import a package only its test extra brings."""
    repo = tmp_path / "needs-a-dependency"
    shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    config = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(config.replace(
        'license = { text = "Apache-2.0" }', f'license = {{ text = "Apache-2.0" }}\n\n[project.optional-dependencies]\n'
                                             f'test = ["{dependency}"]'))
    (repo / "tests" / "test_greeting.py").write_text(
        "from councilfixture_greeting import hello\n\n\ndef test_a_dependency_of_the_tests() -> None:\n"
        "    assert hello() == 'hello'\n")
    return repo


def test_the_tests_run_in_the_requests_own_environment_with_its_test_dependencies(council: Council,
                                                                                  tmp_path: Path) -> None:
    run = start_ci(council, project(tmp_path, DEPENDENCY))
    follow(council, run, lambda line: None, timeout=300)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    made, tested = found.results["setup"], found.results["test"]
    assert isinstance(made, SetupResult) and made.installed == ["-e", ".[test]"] and not made.isolated
    assert made.python and Path(made.python).parent.parent.name == run.request_id
    assert not str(made.python).startswith(str(run.tree))  # beside the tree, never in it
    assert isinstance(tested, TestResult) and tested.passed == 6 and tested.failed == 0
    assert tested.coverage_total is not None and tested.coverage_total > 80  # measured in the tree's source
    assert f"environment: {made.python}" in found.text()
    installs = [a for a in council.store.read_all(1, None, ["action.authorized"])
                if a.payload.action == "command.install"]
    assert len(installs) >= 1 and all(a.payload.network for a in installs)  # the one action the policy lets out


def test_a_dependency_that_cannot_be_installed_stops_the_request_at_setup_in_one_line(council: Council,
                                                                                     tmp_path: Path) -> None:
    run = start_ci(council, project(tmp_path, "councilfixture-nowhere"))
    follow(council, run, lambda line: None, timeout=300)
    found = report(council, run)
    assert found.outcome == "failed at setup", found.text()
    error = found.errors["setup"]
    assert "the project's dependencies could not be installed" in error and "councilfixture-nowhere" in error
    assert "\n" not in error and "setup" not in found.tracebacks  # a refusal, not a crash
    statuses = {s["step"]: s["status"] for s in found.steps}
    assert statuses["test"] == "dead_lettered" and statuses["impact"] == "completed"


def test_a_project_whose_build_backend_the_council_lacks_gets_it_from_the_index_and_builds(council: Council,
                                                                                         tmp_path: Path) -> None:
    repo = tmp_path / "own-backend-app"
    (repo / "src" / "councilfixture_app").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "src" / "councilfixture_app" / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests" / "test_app.py").write_text("from councilfixture_app import add\n\n\ndef test_add():\n"
                                                "    assert add(2, 3) == 5\n")
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["councilfixture-backend"]\nbuild-backend = "councilfixture_backend"\n\n'
        '[project]\nname = "councilfixture-app"\nversion = "1.0"\n')
    run = start_ci(council, repo)
    follow(council, run, lambda line: None, timeout=300)
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    made = found.results["setup"]
    assert isinstance(made, SetupResult) and made.isolated  # the backend came from the index
    built = found.results["build"]
    assert isinstance(built, BuildResult) and built.reproducible
    assert sorted(a.name for a in built.artefacts) == ["councilfixture_app-1.0-py3-none-any.whl",
                                                       "councilfixture_app-1.0.tar.gz"]


def test_a_build_where_the_projects_backend_is_missing_says_which_and_where_it_comes_from(tmp_path: Path) -> None:
    from actors.tools.build import BuildFailed, build
    from actors.tools.sandbox import Sandbox
    from actors.tools.workspace import Workspace
    from governance.confinement import SandboxTable

    (tmp_path / "src" / "councilfixture_app").mkdir(parents=True)
    (tmp_path / "src" / "councilfixture_app" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["councilfixture-backend"]\n'
                                             'build-backend = "councilfixture_backend"\n\n'
                                             '[project]\nname = "councilfixture-app"\nversion = "1.0"\n')
    box = Sandbox(SandboxTable().terms(network=False, wall_time_s=120.0))
    with pytest.raises(BuildFailed, match=r"build backend \(councilfixture_backend\) is not installed where the "
                                          r"build runs.*the setup step installs"):
        build(Workspace(tmp_path), ".", "dist", source_date_epoch=0, box=box)  # in the council's environment


def test_a_backend_without_the_editable_hook_installs_the_project_as_a_wheel(tmp_path: Path) -> None:
    from actors.pipeline.config import PackageIndex
    from actors.tools import python_env
    from actors.tools.sandbox import Sandbox
    from actors.tools.workspace import Workspace
    from governance.confinement import SandboxTable

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(wheels), str(BACKEND)],
                   check=True, capture_output=True, timeout=300)
    tree = tmp_path / "requests" / "r-1"
    (tree / "src" / "councilfixture_old").mkdir(parents=True)
    (tree / "src" / "councilfixture_old" / "__init__.py").write_text("ANSWER = 42\n")
    backend = (BACKEND / "councilfixture_backend.py").read_text()
    (tree / "old_backend.py").write_text(backend.split("def build_editable")[0]  # no PEP 660 hook, as older backends
                                         + "def build_sdist" + backend.split("def build_sdist")[1])
    # It requires what the council lacks, so pip builds it in an isolated environment — where no setuptools
    # offers pip its legacy `setup.py develop` — and refuses `-e` for want of the hook.
    (tree / "pyproject.toml").write_text('[build-system]\nrequires = ["councilfixture-backend"]\n'
                                         'build-backend = "old_backend"\nbackend-path = ["."]\n\n'
                                         '[project]\nname = "councilfixture-old"\nversion = "1.0"\n')
    index = PackageIndex(find_links=[str(wheels)], no_index=True)
    install = python_env.plan(Workspace(tree), tmp_path / "python" / "r-1", ["-e", "."], index)
    assert install.isolated
    done = python_env.make(Workspace(tree), install, tmp_path / "python" / ".pip-cache", index, 300.0,
                           box=Sandbox(SandboxTable().terms(network=False, wall_time_s=300.0)))
    assert done.returncode == 0, done.stderr[-2000:]
    found = subprocess.run([str(install.python), "-c", "import councilfixture_old; print(councilfixture_old.ANSWER)"],
                           capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == "42", found.stderr
