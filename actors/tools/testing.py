"""Running a project's tests with pytest and reading what they found from the JUnit XML report."""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ElementTree  # noqa: S405 - the report is written by pytest in our own workspace
from dataclasses import dataclass, field

from actors.tools import commands
from actors.tools.workspace import Workspace, WorkspaceError


@dataclass(frozen=True)
class TestReport:
    """A test run's outcome: counts, failing test ids, the duration, and the report's digest."""

    passed: int
    failed: int
    errors: int
    skipped: int
    duration_s: float
    failures: list[str] = field(default_factory=list)
    report_digest: str | None = None
    returncode: int = 0

    @property
    def ok(self) -> bool:
        """Whether every test that ran passed (and some ran)."""
        return self.failed == 0 and self.errors == 0 and self.passed > 0


def parse_junit(xml: bytes) -> TestReport:
    """The counts and failures in a JUnit XML report (pytest's ``--junitxml``)."""
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 - see the module import
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


def run_pytest(workspace: Workspace, cwd: str = ".", args: list[str] | None = None, timeout: float = 900.0) -> TestReport:
    """Run ``python -m pytest ARGS`` in ``cwd`` and return what its JUnit report says."""
    report = f".council-junit-{uuid.uuid4().hex[:8]}.xml"
    path = workspace.path(f"{cwd}/{report}" if cwd not in ("", ".") else report)
    try:
        done = commands.run(workspace, ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                                        *(args or [])], cwd, timeout)
        if not path.exists():
            raise WorkspaceError(f"pytest wrote no report (exit {done.returncode}): {done.stderr[-500:] or done.stdout[-500:]}")
        found = parse_junit(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)
    return TestReport(found.passed, found.failed, found.errors, found.skipped, found.duration_s, found.failures,
                      found.report_digest, done.returncode)
