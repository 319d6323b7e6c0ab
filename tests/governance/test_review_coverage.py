"""Static review and coverage on small real projects: real ruff, real bandit, real coverage.py, no Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
from governance_support import BOX

from actors.tools import review as static
from actors.tools.testing import run_pytest, source_of
from actors.tools.workspace import Workspace, WorkspaceError
from events import CouncilError

RISKY = "import os\nimport subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
CLEAN = '"""Arithmetic."""\n\n\ndef add(a: int, b: int) -> int:\n    """The sum."""\n    return a + b\n'


def project(root: Path, files: dict[str, str]) -> Workspace:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return Workspace(root)


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith((".council-", ".coverage")) or p.name in (".ruff_cache", ".cache"))


def test_fix_applies_safe_fixes_and_review_reports_shell_injection_as_high(tmp_path: Path) -> None:
    ws = project(tmp_path, {"src/risky.py": RISKY, "src/clean.py": CLEAN})
    assert static.fix(ws, "src", box=BOX) == ["risky.py"]
    fixed = (tmp_path / "src" / "risky.py").read_text()
    assert "import os" not in fixed and "subprocess.call(cmd, shell=True)" in fixed
    assert (tmp_path / "src" / "clean.py").read_text() == CLEAN
    assert static.fix(ws, "src", box=BOX) == []

    report = static.review(ws, box=BOX)
    [shell] = [f for f in report.findings if f.rule == "B602"]
    assert shell == static.Finding("bandit", "B602", "high", "src/risky.py", 5, shell.message, shell.fingerprint)
    assert len(shell.fingerprint) == 24
    assert "shell=True" in shell.message
    assert not [f for f in report.findings if f.path == "src/clean.py"]
    assert report.counts["high"] == 1 and sum(report.counts.values()) == len(report.findings)
    assert list(report.counts) == list(static.SEVERITIES)
    assert len(report.ruff_digest) == len(report.bandit_digest) == 64
    assert shell in static.blocking(report.findings, "high")
    assert static.blocking(report.findings, "critical") == []
    assert leftovers(tmp_path) == []


def test_review_sees_ruff_findings_relative_to_cwd(tmp_path: Path) -> None:
    ws = project(tmp_path, {"pkg/unused.py": "import os\n\nvalue = missing_name\n"})
    findings = static.review(ws, "pkg", ["unused.py"], box=BOX).findings
    assert [(f.tool, f.rule, f.severity, f.path, f.line) for f in findings] == [
        ("ruff", "F401", "medium", "unused.py", 1), ("ruff", "F821", "high", "unused.py", 3)]


def test_unsafe_fixes_are_never_applied_even_when_the_project_allows_them(tmp_path: Path) -> None:
    unused_local = "def f():\n    x = 1\n"  # F841: ruff's fix for it is unsafe
    ws = project(tmp_path, {"pyproject.toml": "[tool.ruff]\nunsafe-fixes = true\n", "local.py": unused_local})
    assert static.fix(ws, box=BOX) == [] and (tmp_path / "local.py").read_text() == unused_local
    assert [f.rule for f in static.review(ws, box=BOX).findings] == ["F841"]


def test_a_broken_ruff_configuration_is_a_review_failure(tmp_path: Path) -> None:
    ws = project(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = \"long\"\n", "ok.py": CLEAN})
    with pytest.raises(static.ReviewFailed, match="ruff failed"):
        static.review(ws, box=BOX)
    with pytest.raises(static.ReviewFailed, match="ruff failed"):
        static.fix(ws, box=BOX)
    assert leftovers(tmp_path) == []


def test_a_clean_file_has_no_findings(tmp_path: Path) -> None:
    report = static.review(project(tmp_path, {"clean.py": CLEAN}), paths=["clean.py"], box=BOX)
    assert report.findings == [] and set(report.counts.values()) == {0}


def test_a_syntax_error_is_a_high_ruff_finding_not_a_crash(tmp_path: Path) -> None:
    report = static.review(project(tmp_path, {"broken.py": "def f(:\n    pass\n"}), box=BOX)
    assert report.findings and all((f.tool, f.severity, f.path, f.line) == ("ruff", "high", "broken.py", 1)
                                   for f in report.findings)


def test_excluded_directories_are_not_reviewed(tmp_path: Path) -> None:
    ws = project(tmp_path, {"ok.py": CLEAN, "build/risky.py": RISKY, ".deployments/live/risky.py": RISKY,
                            "builder.py": RISKY})
    assert {f.path for f in static.review(ws, box=BOX).findings} == {"builder.py"}


def test_paths_outside_the_workspace_or_missing_are_refused(tmp_path: Path) -> None:
    ws = project(tmp_path / "ws", {"ok.py": CLEAN})
    (tmp_path / "outside.py").write_text(RISKY)
    for bad in (["../outside.py"], [str(tmp_path / "outside.py")], ["missing.py"]):
        with pytest.raises(WorkspaceError):
            static.review(ws, paths=bad, box=BOX)
    with pytest.raises(WorkspaceError):
        static.review(ws, cwd="..", box=BOX)
    with pytest.raises(WorkspaceError):
        static.fix(ws, cwd="../..", box=BOX)


def test_severities_are_ordered_and_unknown_ones_refused() -> None:
    assert static.severity_at_least("critical", "high") and static.severity_at_least("high", "high")
    assert not static.severity_at_least("medium", "high")
    assert [static.ruff_severity(c) for c in ("E999", "invalid-syntax", None, "F822", "F401", "S602", "E501")] == [
        "high", "high", "high", "high", "medium", "medium", "low"]
    with pytest.raises(CouncilError, match="unknown severity"):
        static.severity_at_least("severe", "high")


def test_coverage_is_reported_per_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    ws = project(tmp_path, {
        "app/__init__.py": "",
        # six statements; the test runs the first three
        "app/half.py": "def pick(flag):\n    if flag:\n        return 1\n    a = 2\n    b = a\n    return b\n",
        "tests/test_half.py": "from app.half import pick\n\n\ndef test_pick():\n    assert pick(True) == 1\n\n\n"
                              "def test_fails():\n    assert pick(True) == 2\n",
    })
    report = run_pytest(ws, args=["tests"], coverage=True, box=BOX)
    assert (report.passed, report.failed, report.ok, report.returncode) == (1, 1, False, 1)
    assert report.failures == ["tests.test_half::test_fails"]
    assert report.coverage == {"app/half.py": 50.0, "app/__init__.py": 100.0}  # the package, not its tests
    assert report.coverage_total == 50.0
    said = report.details["tests.test_half::test_fails"]  # what pytest said: the assertion, where it failed
    assert "E       assert 1 == 2" in said and said.endswith("tests/test_half.py:9: AssertionError")
    assert leftovers(tmp_path) == []

    plain = run_pytest(ws, args=["tests"], box=BOX)
    assert (plain.passed, plain.failed, plain.coverage, plain.coverage_total) == (1, 1, {}, None)
    assert leftovers(tmp_path) == []


def test_a_module_no_test_imports_counts_at_zero_and_the_projects_own_source_setting_wins(tmp_path: Path) -> None:
    files = {"src/pkg/__init__.py": "", "src/pkg/used.py": "def one():\n    return 1\n",
             "src/pkg/admin.py": "def unused():\n    return 2\n",
             "tests/test_used.py": "import sys\nsys.path.insert(0, 'src')\nfrom pkg.used import one\n\n\n"
                                   "def test_one():\n    assert one() == 1\n"}
    report = run_pytest(project(tmp_path / "a", files), args=["tests"], coverage=True, box=BOX)
    assert report.coverage["src/pkg/admin.py"] == 0.0 and report.coverage["src/pkg/used.py"] == 100.0
    assert report.coverage_total is not None and report.coverage_total < 100.0
    configured = {**files, "pyproject.toml": "[tool.coverage.run]\nsource = ['src/pkg/used.py']\n"}
    own = project(tmp_path / "b", configured)
    assert source_of(own.root) == [] and source_of(project(tmp_path / "c", files).root) == ["src"]


def test_coverage_in_a_subdirectory_is_relative_to_it(tmp_path: Path) -> None:
    ws = project(tmp_path, {"svc/mod.py": "def one():\n    return 1\n",
                            "svc/test_mod.py": "from mod import one\n\n\ndef test_one():\n    assert one() == 1\n"})
    report = run_pytest(ws, "svc", ["test_mod.py"], coverage=True, box=BOX)
    assert report.ok and report.coverage == {"mod.py": 100.0, "test_mod.py": 100.0} and report.coverage_total == 100.0
    assert leftovers(tmp_path) == []
