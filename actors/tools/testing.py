"""Running a project's tests with pytest and reading what they found from the JUnit XML report (and,
if asked, from coverage.py's JSON report).

Every report is written to a uniquely named file in ``cwd`` inside the workspace and removed
afterwards, whether the run succeeded or not.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from actors.tools import commands
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError


@dataclass(frozen=True)
class TestReport:
    """A test run's outcome: counts, failing test ids, the duration, the report's digest and, if measured, coverage.

    ``coverage`` maps each measured file (relative to the run's ``cwd``) to the percent of it that ran,
    rounded to 0.1; ``coverage_total`` is the same for all of them together. Both are empty/None
    when coverage was not measured.
    """

    passed: int
    failed: int
    errors: int
    skipped: int
    duration_s: float
    failures: list[str] = field(default_factory=list)
    report_digest: str | None = None
    returncode: int = 0
    coverage: dict[str, float] = field(default_factory=dict)
    coverage_total: float | None = None

    @property
    def ok(self) -> bool:
        """Whether every test that ran passed (and some ran)."""
        return self.failed == 0 and self.errors == 0 and self.passed > 0


def parse_junit(xml: bytes) -> TestReport:
    """The counts and failures in a JUnit XML report (pytest's ``--junitxml``)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise WorkspaceError(f"the test report is not JUnit XML ({exc})") from None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    failed = errors = skipped = total = 0
    duration = 0.0
    failures: list[str] = []
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0))
        errors += int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
        duration += float(suite.get("time", 0.0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failures.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return TestReport(total - failed - errors - skipped, failed, errors, skipped, round(duration, 3), failures[:200],
                      hashlib.sha256(xml).hexdigest())


def run_pytest(workspace: Workspace, cwd: str = ".", args: list[str] | None = None, timeout: float = 900.0,
               coverage: bool = False, *, box: Sandbox) -> TestReport:
    """Run ``python -m pytest ARGS`` in ``cwd`` and return what its JUnit report says.

    With ``coverage``, pytest runs under ``python -m coverage run`` (the project's coverage
    configuration applies) and the report also carries per-file and total coverage. ``timeout``
    bounds each command; each runs in ``box``.
    """
    token = uuid.uuid4().hex[:12]
    report = f".council-junit-{token}.xml"
    data = f".council-coverage-{token}"
    directory = workspace.path(cwd)
    path = workspace.path(_join(cwd, report))
    pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *(args or [])]
    # --parallel-mode: the data always lands in DATA.<suffix> files that ``combine`` gathers into DATA,
    # whether or not the project's configuration asks for parallel mode.
    argv = [sys.executable, "-m", "coverage", "run", "--parallel-mode", f"--data-file={data}", *pytest] if coverage \
        else [sys.executable, *pytest]
    try:
        # No bytecode: a test run leaves nothing in the tree a later commit could pick up.
        done = commands.run(workspace, argv, cwd, timeout, env={"PYTHONDONTWRITEBYTECODE": "1"}, box=box)
        if not path.exists():
            said = done.stderr[-500:] or done.stdout[-500:]
            raise WorkspaceError(f"pytest wrote no report (exit {done.returncode}): {said}")
        found = parse_junit(path.read_bytes())
        files, total = _measure(workspace, cwd, data, timeout, box) if coverage else ({}, None)
    finally:
        path.unlink(missing_ok=True)
        if coverage:
            for leftover in directory.glob(f"{data}*"):
                leftover.unlink(missing_ok=True)
    return TestReport(found.passed, found.failed, found.errors, found.skipped, found.duration_s, found.failures,
                      found.report_digest, done.returncode, files, total)


def _measure(workspace: Workspace, cwd: str, data: str, timeout: float,
             box: Sandbox) -> tuple[dict[str, float], float | None]:
    """The per-file and total percent covered that coverage.py recorded in ``data`` (in ``cwd``)."""
    out = f"{data}.json"
    for step in (["combine", "-q", f"--data-file={data}"], ["json", "-q", f"--data-file={data}", "-o", out]):
        done = commands.run(workspace, [sys.executable, "-m", "coverage", *step], cwd, timeout, box=box)
        if done.returncode != 0:
            raise WorkspaceError(f"coverage {step[0]} failed (exit {done.returncode}); check the project's coverage "
                                 f"configuration: {done.stderr[-500:].strip() or done.stdout[-500:].strip()}")
    try:
        measured = json.loads(workspace.path(_join(cwd, out)).read_bytes())
        directory = workspace.path(cwd)
        files = {_relative(name, directory): round(float(entry["summary"]["percent_covered"]), 1)
                 for name, entry in measured["files"].items()}
        total = measured.get("totals", {}).get("percent_covered")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WorkspaceError(f"coverage wrote a JSON report that cannot be read ({type(exc).__name__}: "
                             f"{exc})") from None
    return dict(sorted(files.items())), None if total is None else round(float(total), 1)


def _join(cwd: str, relative: str) -> str:
    return relative if cwd in ("", ".") else f"{cwd}/{relative}"


def _relative(filename: str, directory: Path) -> str:
    absolute = filename if os.path.isabs(filename) else os.path.join(directory, filename)
    return Path(os.path.relpath(absolute, directory)).as_posix()
