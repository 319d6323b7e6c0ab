"""Reproducible builds: a Python project built twice from the same commit, and the two compared byte for byte.

``python -m build --no-isolation`` runs offline, so the project's build backend (hatchling,
setuptools...) must be installed in the environment. Both builds run with ``SOURCE_DATE_EPOCH``
set to the commit's time; a build is reproducible when both produce the same artefact names with
the same SHA-256. Only a complete, successful pair of builds leaves artefacts in ``out``: on any
failure ``out`` is left empty, never half-filled.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from actors.tools import commands
from actors.tools.redact import scrub
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError

SETUPTOOLS_LEFTOVERS = ("build", "*.egg-info", "src/*.egg-info")
"""What setuptools leaves in a project directory; removed only if a build created it."""

FAILURE_TAIL = 2000
"""How many characters of a failed build's output its error carries."""


class BuildFailed(WorkspaceError):
    """A build could not run or did not succeed; the message carries the tail of its output."""


@dataclass(frozen=True)
class Artifact:
    """A built file: its path relative to the workspace, its file name, SHA-256 (hex) and size in bytes."""

    path: str
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class BuildResult:
    """The artefacts of the first build, and whether the second build reproduced them byte for byte."""

    artifacts: list[Artifact]
    reproducible: bool
    mismatches: list[str]
    """Artefact names whose SHA-256 differs between the builds, or that only one build produced; sorted."""
    source_date_epoch: int
    commit: str | None
    command: list[str]
    output_digest: str
    """SHA-256 over the output digests of both builds."""
    duration_s: float


LEGACY_REQUIRES = ["setuptools>=40.8.0", "wheel"]
"""What a project that names no ``[build-system] requires`` builds with (PEP 518's default, as pip and build use it:
an older setuptools cannot build a wheel without the ``wheel`` package)."""


def build_requires(project: Path) -> list[str]:
    """The requirements ``project`` names in ``[build-system] requires`` (:data:`LEGACY_REQUIRES` when it names
    none)."""
    try:
        system = tomllib.loads((project / "pyproject.toml").read_text()).get("build-system", {})
    except FileNotFoundError:
        return list(LEGACY_REQUIRES)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list):
        return list(LEGACY_REQUIRES)
    return [r for r in requires if isinstance(r, str) and r.strip()][:64]


def missing_requires(project: Path) -> list[str]:
    """Which of ``project``'s ``[build-system] requires`` this environment does not satisfy (by distribution name
    and version): those a build without isolation would lack. A requirement that cannot be parsed counts as missing.
    """
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for text in build_requires(project):
        try:
            wanted = Requirement(text)
            if wanted.marker is not None and not wanted.marker.evaluate():
                continue
            have = metadata.version(wanted.name)
        except (InvalidRequirement, metadata.PackageNotFoundError):
            missing.append(text)
            continue
        if not wanted.specifier.contains(have, prereleases=True):
            missing.append(text)
    return missing


def build_backend(project: Path) -> str | None:
    """The top-level module of the build backend ``project`` names in ``[build-system] build-backend`` (``hatchling``
    for ``hatchling.build``); ``setuptools`` for a project that names none, as pip and build assume; None if its
    pyproject.toml cannot be read."""
    try:
        text = (project / "pyproject.toml").read_text()
    except FileNotFoundError:
        return "setuptools"
    except (OSError, UnicodeDecodeError):
        return None
    try:
        system = tomllib.loads(text).get("build-system", {})
    except tomllib.TOMLDecodeError:
        return None
    named = system.get("build-backend") if isinstance(system, dict) else None
    if not isinstance(named, str) or not named:
        return "setuptools"
    return named.split(":")[0].split(".")[0] or None


def compare(first: dict[str, str], second: dict[str, str]) -> list[str]:
    """The names (sorted) that are in only one of two ``name -> sha256`` maps, or whose digests differ."""
    return sorted(name for name in first.keys() | second.keys() if first.get(name) != second.get(name))


def build(workspace: Workspace, cwd: str = ".", out: str = "dist", timeout: float = 600.0,
          source_date_epoch: int | None = None, *, box: Sandbox, python: str = sys.executable) -> BuildResult:
    """Build the project at ``cwd`` into ``out`` (both relative to the workspace), then rebuild it to check.

    ``python`` runs the build (``python -m build --no-isolation``): a request's own environment, where its
    setup step installed the project's build backend, or the council's.

    ``out`` is emptied first. ``source_date_epoch`` defaults to the committer time of HEAD of the
    git repository at ``cwd``; without a repository it must be given. Raises :class:`BuildFailed`
    (with the build's output) if either build fails, and leaves ``out`` empty then.

    ``out`` must lie outside the project, or be its ``dist/`` (the directory backends leave out of
    an sdist): otherwise the second build packs the first one's artefacts and is reported as not
    reproducible.
    """
    started = time.monotonic()
    project, target = workspace.path(cwd), workspace.path(out)
    if not project.is_dir():
        raise BuildFailed(f"{cwd} is not a directory in the workspace; give the directory holding pyproject.toml")
    if target == workspace.root or target == project or target in project.parents:
        raise BuildFailed(f"out={out!r} would empty the workspace or the project; give a separate directory such "
                          "as 'dist'")
    if target.exists() and not target.is_dir():
        raise BuildFailed(f"out={out!r} is a file, not a directory; remove it or choose another out")
    commit, committed_at = _head(workspace, cwd, box)
    if source_date_epoch is None:
        if committed_at is None:
            raise BuildFailed(f"{cwd} is not in a git repository with a commit, so there is no commit time to build "
                              "with; commit the project, or pass source_date_epoch")
        source_date_epoch = committed_at
    if isinstance(source_date_epoch, bool) or not isinstance(source_date_epoch, int) or source_date_epoch < 0:
        raise BuildFailed("source_date_epoch must be a non-negative integer (seconds since 1970), got "
                          f"{source_date_epoch!r}")
    env = {"SOURCE_DATE_EPOCH": str(source_date_epoch), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    # The rebuild goes inside `out`, so whatever leaves `out` out of an sdist leaves it out too.
    scratch = target / f".rebuild-{uuid.uuid4().hex[:12]}"
    preexisting = _leftovers(project)
    try:
        _empty(target)
        first = _run(workspace, cwd, target, timeout, env, box, python)
        _clean(project, preexisting)
        second = _run(workspace, cwd, scratch, timeout, env, box, python)
        _clean(project, preexisting)
        built, rebuilt = _digests(target), _digests(scratch)
        shutil.rmtree(scratch)
    except BaseException:
        _clean(project, preexisting)
        _empty(target)
        raise
    if not built:
        _empty(target)
        raise BuildFailed(f"the build of {cwd} succeeded but wrote no artefacts to {out}")
    mismatches = compare(built, rebuilt)
    artifacts = [Artifact(path=(target / name).relative_to(workspace.root).as_posix(), name=name, sha256=digest,
                          size=(target / name).stat().st_size) for name, digest in sorted(built.items())]
    return BuildResult(artifacts=artifacts, reproducible=not mismatches, mismatches=mismatches,
                       source_date_epoch=source_date_epoch, commit=commit, command=_argv(str(target), python),
                       output_digest=hashlib.sha256(f"{first}\0{second}".encode()).hexdigest(),
                       duration_s=time.monotonic() - started)


def _argv(outdir: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "build", "--no-isolation", "--outdir", outdir, "."]


def _run(workspace: Workspace, cwd: str, outdir: Path, timeout: float, env: dict[str, str], box: Sandbox,
         python: str) -> str:
    """One build into ``outdir``; its output digest, or :class:`BuildFailed` with the tail of its output."""
    done = commands.run(workspace, _argv(str(outdir), python), cwd, timeout, env=env, box=box)
    if done.returncode != 0:
        output = scrub(f"{done.stdout}\n{done.stderr}".strip())
        if len(output) > FAILURE_TAIL:
            output = "..." + output[-FAILURE_TAIL:].partition("\n")[2]
        hint = ""
        if "Missing dependencies" in output or "BackendUnavailable" in output or "No module named" in output:
            backend = build_backend(workspace.path(cwd)) or "its build backend"
            hint = (f" The project's build backend ({backend}) is not installed where the build runs: the build runs "
                    "offline (--no-isolation) in the request's own environment, where the setup step installs the "
                    "project's [build-system] requires from the package index (or in the council's environment when "
                    "the repository asks for it).")
        raise BuildFailed(f"building {cwd} failed (exit {done.returncode}).{hint} Output:\n{output}")
    return done.output_digest


def _head(workspace: Workspace, cwd: str, box: Sandbox) -> tuple[str | None, int | None]:
    """HEAD's commit id and committer time, or (None, None) if ``cwd`` is not in a repository with a commit."""
    # The ceiling keeps git from finding a repository above the workspace root.
    env = {"GIT_CEILING_DIRECTORIES": str(workspace.root.parent), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_TERMINAL_PROMPT": "0"}
    done = commands.run(workspace, ["git", "log", "-1", "--format=%H %ct"], cwd, 60.0, env=env, box=box)
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 2 or not fields[1].isdigit():
        return None, None
    return fields[0], int(fields[1])


def _leftovers(project: Path) -> set[Path]:
    return {p for pattern in SETUPTOOLS_LEFTOVERS for p in project.glob(pattern) if p.is_dir()}


def _clean(project: Path, preexisting: set[Path]) -> None:
    """Remove build leftovers that were not in the project before the first build (never anything else)."""
    for path in _leftovers(project) - preexisting:
        if not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _empty(directory: Path) -> None:
    """Make ``directory`` exist and hold nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _digests(directory: Path) -> dict[str, str]:
    """``file name -> SHA-256`` of the artefacts (regular files, not hidden) directly in ``directory``."""
    found = {}
    for entry in directory.iterdir():
        if entry.is_file() and not entry.is_symlink() and not entry.name.startswith("."):
            digest = hashlib.sha256()
            with entry.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            found[entry.name] = digest.hexdigest()
    return found

