"""Running a project's tests with pytest and reading what they found from the JUnit XML report (and,
if asked, from coverage.py's JSON report).

Every report is written to a uniquely named file in ``cwd`` inside the workspace and removed
afterwards, whether the run succeeded or not.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import sys
import tomllib
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

from actors.tools import commands
from actors.tools.redact import scrub
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError

DETAILED = 20
"""How many failing tests keep their failure's text."""
DETAIL_CHARS = 1500
"""How much of each failure's text is kept: its tail, where pytest says what was asserted."""


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
    details: dict[str, str] = field(default_factory=dict)
    """Per failing test (the first :data:`DETAILED`): its message and the tail of its text, secrets scrubbed."""
    returncode: int = 0
    coverage: dict[str, float] = field(default_factory=dict)
    coverage_total: float | None = None
    retried: list[str] = field(default_factory=list)
    """The recognised flaky tests whose failure made this a second run (empty: the first run counts)."""

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
    details: dict[str, str] = {}
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0))
        errors += int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
        duration += float(suite.get("time", 0.0))
        for case in suite.iter("testcase"):
            found = case.find("failure")
            if found is None:
                found = case.find("error")
            if found is not None:
                test = f"{case.get('classname', '')}::{case.get('name', '')}"
                failures.append(test)
                if len(details) < DETAILED:
                    details[test] = _detail(found.get("message") or "", found.text or "")
    return TestReport(total - failed - errors - skipped, failed, errors, skipped, round(duration, 3), failures[:200],
                      hashlib.sha256(xml).hexdigest(), details)


def _detail(message: str, text: str) -> str:
    """A failure's message, then the tail of its text (the assertion pytest explains last), bounded and scrubbed."""
    tail = text.strip()[-DETAIL_CHARS:]
    first = message.strip().splitlines()[0][:300] if message.strip() else ""
    return scrub(f"{first}\n{tail}" if first and first not in tail else tail or first)


def run_pytest(workspace: Workspace, cwd: str = ".", args: list[str] | None = None, timeout: float = 900.0,
               coverage: bool = False, *, box: Sandbox, python: str = sys.executable,
               flaky: Collection[str] = ()) -> TestReport:
    """Run ``python -m pytest ARGS`` in ``cwd`` and return what its JUnit report says.

    With ``coverage``, pytest runs under ``python -m coverage run`` (the project's coverage
    configuration applies) and the report also carries per-file and total coverage. ``python`` is
    the interpreter (a request's own environment's, or the council's); ``timeout`` bounds each
    command; each runs in ``box``. ``flaky`` are tests recognised as flaky (a ``flaky-retry``
    strategy in effect): a run in which only they fail is run once more, and the second run counts
    (its report names them in ``retried``).
    """
    if flaky:
        first = run_pytest(workspace, cwd, args, timeout, coverage, box=box, python=python)
        only_flaky = (first.failures and first.failed + first.errors == len(first.failures)
                      and set(first.failures) <= set(flaky))
        if first.ok or not only_flaky:
            return first
        again = run_pytest(workspace, cwd, args, timeout, coverage, box=box, python=python)
        return replace(again, retried=list(first.failures))
    token = uuid.uuid4().hex[:12]
    report = f".council-junit-{token}.xml"
    data = f".council-coverage-{token}"
    directory = workspace.path(cwd)
    path = workspace.path(_join(cwd, report))
    pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *(args or [])]
    # --parallel-mode: the data always lands in DATA.<suffix> files that ``combine`` gathers into DATA,
    # whether or not the project's configuration asks for parallel mode.
    source = [f"--source={','.join(sources)}"] if coverage and (sources := source_of(directory)) else []
    argv = [python, "-m", "coverage", "run", "--parallel-mode", f"--data-file={data}", *source, *pytest] \
        if coverage else [python, *pytest]
    try:
        # No bytecode: a test run leaves nothing in the tree a later commit could pick up.
        done = commands.run(workspace, argv, cwd, timeout, env={"PYTHONDONTWRITEBYTECODE": "1"}, box=box)
        if not path.exists():
            said = done.stderr[-500:] or done.stdout[-500:]
            raise WorkspaceError(f"pytest wrote no report (exit {done.returncode}): {said}")
        found = parse_junit(path.read_bytes())
        files, total = _measure(workspace, cwd, data, timeout, box, python) if coverage else ({}, None)
    finally:
        path.unlink(missing_ok=True)
        if coverage:
            for leftover in directory.glob(f"{data}*"):
                leftover.unlink(missing_ok=True)
    return TestReport(found.passed, found.failed, found.errors, found.skipped, found.duration_s, found.failures,
                      found.report_digest, found.details, done.returncode, files, total)


def source_of(project: Path) -> list[str]:
    """What coverage measures in ``project`` when its own configuration does not say: the package's source.

    ``src/`` if there is one, else the top-level packages (directories with an ``__init__.py``,
    tests left out); nothing (coverage's default: the files the tests import) when the project
    configures coverage's ``source`` itself or has no package to name. Files the tests never
    import then count too, at 0%.
    """
    if _configures_source(project):
        return []
    if (project / "src").is_dir():
        return ["src"]
    return sorted(p.name for p in project.iterdir()
                  if p.is_dir() and (p / "__init__.py").is_file() and not p.name.startswith(("test", ".")))


def _configures_source(project: Path) -> bool:
    try:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        if "source" in pyproject.get("tool", {}).get("coverage", {}).get("run", {}):
            return True
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        pass
    for name, section in ((".coveragerc", "run"), ("setup.cfg", "coverage:run"), ("tox.ini", "coverage:run")):
        parser = configparser.ConfigParser()
        try:
            parser.read(project / name)
        except configparser.Error:
            continue
        if parser.has_option(section, "source"):
            return True
    return False


def _measure(workspace: Workspace, cwd: str, data: str, timeout: float, box: Sandbox,
             python: str) -> tuple[dict[str, float], float | None]:
    """The per-file and total percent covered that coverage.py recorded in ``data`` (in ``cwd``)."""
    out = f"{data}.json"
    for step in (["combine", "-q", f"--data-file={data}"], ["json", "-q", f"--data-file={data}", "-o", out]):
        done = commands.run(workspace, [python, "-m", "coverage", *step], cwd, timeout, box=box)
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
