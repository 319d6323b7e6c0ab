"""Static review of a project's Python: ruff for correctness and style, bandit for security.

Both tools run in ``cwd`` inside the workspace, so the project's own configuration (pyproject's
``[tool.ruff]``, a ``.bandit`` file) applies. Each writes its JSON report to a uniquely named file
in ``cwd`` that is removed afterwards, so no report is cut short by the output cap of
:func:`actors.tools.commands.run`.

Ruff gives no severity; a finding's severity is :func:`ruff_severity` of its rule:

=========================================================  ========
rule                                                       severity
=========================================================  ========
syntax errors (``invalid-syntax``, no code, ``E9xx``)      high
undefined names (``F82x``: F821, F822, F823)               high
other pyflakes rules (``Fxxx``)                            medium
flake8-bandit (``Sxxx``, when the project selects them)    medium
everything else                                            low
=========================================================  ========

Bandit's ``LOW``/``MEDIUM``/``HIGH`` become ``low``/``medium``/``high``; anything else ``info``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from actors.tools import baseline as baselines
from actors.tools import commands
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError
from events import CouncilError
from events.catalogue.work import SEVERITIES, Severity

BASE_SNAPSHOT = ".council-base"
"""Where the pipeline lays out the base revision's files, inside the tree, to review them too (removed after)."""

EXCLUDED_DIRS = (".git", ".venv", "venv", "__pycache__", ".tox", ".eggs", "node_modules", "dist", "build",
                 ".deployments", BASE_SNAPSHOT)
"""Directories neither tool looks into when it walks a directory (a path given explicitly is still reviewed)."""

_BANDIT_SEVERITY = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
_LISTING_TAIL = 64 * 1024 * 1024


class ReviewFailed(WorkspaceError):
    """A reviewing tool crashed or wrote a report that cannot be read."""


@dataclass(frozen=True)
class Finding:
    """One thing a reviewing tool found, at ``path`` (relative to the reviewed ``cwd``) and ``line``."""

    tool: str
    rule: str
    severity: str
    path: str
    line: int
    message: str
    fingerprint: str = ""
    """Its identity across revisions: tool, rule, file and the code on its line (:mod:`actors.tools.baseline`)."""


@dataclass(frozen=True)
class ReviewReport:
    """Every finding (sorted by path, line, tool, rule), the digests of both raw reports, and counts per severity."""

    findings: list[Finding]
    ruff_digest: str
    bandit_digest: str
    counts: dict[Severity, int] = field(default_factory=dict)


def severity_at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is ``threshold`` or more severe; an unknown severity on either side is refused."""
    for name in (severity, threshold):
        if name not in SEVERITIES:
            raise CouncilError(f"unknown severity {name!r}; use one of {', '.join(SEVERITIES)}")
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def blocking(findings: Iterable[Finding], threshold: str) -> list[Finding]:
    """The findings at ``threshold`` or above, in their order."""
    return [f for f in findings if severity_at_least(f.severity, threshold)]


def ruff_severity(code: str | None) -> str:
    """The severity of a ruff rule (see the module's table)."""
    if not code or code == "invalid-syntax" or code.startswith(("E9", "F82")):
        return "high"
    if code.startswith(("F", "S")):
        return "medium"
    return "low"


def fix(workspace: Workspace, cwd: str = ".", timeout: float = 120.0, *, box: Sandbox) -> list[str]:
    """Apply ruff's safe fixes to the files ruff checks in ``cwd``; return those it changed (relative to ``cwd``,
    sorted).

    Unsafe fixes are never applied, whatever the project's configuration says. Nothing is committed.
    """
    directory = _directory(workspace, cwd)
    listed = _ruff(workspace, cwd, ["--show-files"], timeout, box, tail=_LISTING_TAIL)
    files = [Path(line) if os.path.isabs(line) else directory / line
             for line in listed.stdout.splitlines() if line.strip()]
    before = {f: _digest(f) for f in files}
    _ruff(workspace, cwd, ["--fix", "--no-unsafe-fixes", "--exit-zero", "--quiet"], timeout, box)
    return sorted(_relative(str(f), directory) for f in files if _digest(f) != before[f])


def review(workspace: Workspace, cwd: str = ".", paths: list[str] | None = None,
           timeout: float = 300.0, *, box: Sandbox) -> ReviewReport:
    """Run ruff and bandit over ``paths`` (relative to ``cwd``; all of ``cwd`` if none) and gather what they found.

    A path outside the workspace or missing is a :class:`WorkspaceError`; a tool that crashes or writes
    no readable report is a :class:`ReviewFailed`. Findings are not failures.
    """
    directory = _directory(workspace, cwd)
    targets = _targets(workspace, cwd, paths)
    ruff_raw = _report(workspace, cwd, "ruff", lambda out: _ruff(
        workspace, cwd, ["--no-fix", "--exit-zero", "--output-format", "json", "--output-file", out, "--", *targets],
        timeout, box))
    bandit_raw = _report(workspace, cwd, "bandit", lambda out: _bandit(workspace, cwd, out, targets, timeout, box))
    findings = _ruff_findings(_parse("ruff", ruff_raw, list), directory)
    findings += _bandit_findings(_parse("bandit", bandit_raw, dict).get("results", []), directory)
    findings = [replace(f, fingerprint=baselines.fingerprint(directory, f)) for f in findings]
    findings.sort(key=lambda f: (f.path, f.line, f.tool, f.rule))
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    return ReviewReport(findings, hashlib.sha256(ruff_raw).hexdigest(), hashlib.sha256(bandit_raw).hexdigest(), counts)


def _directory(workspace: Workspace, cwd: str) -> Path:
    directory = workspace.path(cwd)
    if not directory.is_dir():
        raise WorkspaceError(f"{cwd} is not a directory in the workspace; review a directory")
    return directory


def _targets(workspace: Workspace, cwd: str, paths: list[str] | None) -> list[str]:
    if paths is None:
        return ["."]
    if not paths:
        raise WorkspaceError("no paths to review; give at least one, or None for the whole directory")
    for p in paths:
        if not workspace.path(_join(cwd, p)).exists():
            raise WorkspaceError(f"{p} does not exist in {cwd} of the workspace; review a file or directory that does")
    return list(paths)


def _join(cwd: str, relative: str) -> str:
    return relative if cwd in ("", ".") else f"{cwd}/{relative}"


def _ruff(workspace: Workspace, cwd: str, args: list[str], timeout: float, box: Sandbox,
          tail: int = 4000) -> commands.Completed:
    # --no-cache: reviewing never leaves a .ruff_cache behind in the project.
    argv = [sys.executable, "-m", "ruff", "check", "--no-cache", "--extend-exclude", ",".join(EXCLUDED_DIRS), *args]
    done = commands.run(workspace, argv, cwd, timeout, tail=tail, box=box)
    if done.returncode != 0:  # with --exit-zero only a crash or a bad configuration exits non-zero
        raise ReviewFailed(f"ruff failed (exit {done.returncode}); check the project's ruff configuration: "
                           f"{done.stderr[-800:].strip()}")
    return done


def _bandit(workspace: Workspace, cwd: str, out: str, targets: list[str], timeout: float,
            box: Sandbox) -> commands.Completed:
    excluded = ",".join(f"*/{d}/*" for d in EXCLUDED_DIRS)  # globs: bandit also matches plain substrings
    config = ["-c", "pyproject.toml"] if _has_bandit_table(workspace.path(cwd) / "pyproject.toml") else []
    argv = [sys.executable, "-m", "bandit", *config, "-f", "json", "-o", out, "-q", "-x", excluded, "-r", "--",
            *targets]
    # bandit's plugin loader caches entry points under $XDG_CACHE_HOME (else $HOME): in the sandbox HOME is private;
    # unconfined, HOME is the workspace, so the cache goes to a directory of its own.
    if box.confined:
        done = commands.run(workspace, argv, cwd, timeout, box=box)
    else:
        with tempfile.TemporaryDirectory(prefix="council-bandit-") as cache:
            done = commands.run(workspace, argv, cwd, timeout, env={"XDG_CACHE_HOME": cache}, box=box)
    if done.returncode not in (0, 1):  # 1 means issues were found
        raise ReviewFailed(f"bandit failed (exit {done.returncode}): {done.stderr[-800:].strip()}")
    return done


def _report(workspace: Workspace, cwd: str, tool: str, produce: Callable[[str], commands.Completed]) -> bytes:
    name = f".council-{tool}-{uuid.uuid4().hex[:12]}.json"
    path = workspace.path(_join(cwd, name))
    try:
        done = produce(name)
        if not path.exists():
            raise ReviewFailed(f"{tool} wrote no report (exit {done.returncode}): {done.stderr[-800:].strip()}")
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _parse(tool: str, raw: bytes, shape: type) -> Any:
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ReviewFailed(f"{tool} wrote a report that is not JSON ({exc})") from None
    if not isinstance(parsed, shape):
        raise ReviewFailed(f"{tool} wrote a JSON {type(parsed).__name__} where a {shape.__name__} was expected")
    return parsed


def _ruff_findings(items: list[dict[str, Any]], directory: Path) -> list[Finding]:
    return [Finding("ruff", item.get("code") or "invalid-syntax", ruff_severity(item.get("code")),
                    _relative(item.get("filename", ""), directory), int((item.get("location") or {}).get("row") or 0),
                    item.get("message", "")) for item in items]


def _bandit_findings(items: list[dict[str, Any]], directory: Path) -> list[Finding]:
    return [Finding("bandit", item.get("test_id", ""), _BANDIT_SEVERITY.get(item.get("issue_severity", ""), "info"),
                    _relative(item.get("filename", ""), directory), int(item.get("line_number") or 0),
                    item.get("issue_text", "")) for item in items]


def _relative(filename: str, directory: Path) -> str:
    absolute = filename if os.path.isabs(filename) else os.path.join(directory, filename)
    return Path(os.path.relpath(absolute, directory)).as_posix()


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _has_bandit_table(pyproject: Path) -> bool:
    """Whether the project configures bandit in ``[tool.bandit]`` (bandit reads pyproject.toml only when told to)."""
    try:
        return "bandit" in tomllib.loads(pyproject.read_text()).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
