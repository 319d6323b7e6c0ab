"""What the setup step installs into a request's environment: the project and its test dependencies, found where
projects declare them, and nothing that could choose where packages come from.

Unless the repository says (``[tool.council.ci] install``), the project is installed editable
with the first of its extras named ``test``, ``tests``, ``testing`` or ``dev``; the dependency
group (PEP 735 ``[dependency-groups]``) of the first such name is added, its ``include-group``
entries followed. A project that declares neither gets the first conventional requirements file
it has (:data:`REQUIREMENT_FILES`), as tox and nox files usually name them.

The package index is the council's choice (the policy's ``[tool.pipeline]``), never the
repository's: an argument or a requirements-file line that names an index, extra links or trusted
hosts is refused with the file and line, as is anything that would reach pip as an option it was
not meant to be (a requirement string starting with ``-``) or a path outside the repository.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from actors.pipeline.config import PipelineConfig, PipelineConfigError

TEST_NAMES = ("test", "tests", "testing", "dev")
"""The extras and dependency groups a project's test dependencies are looked for under, in this order."""

REQUIREMENT_FILES = ("requirements-test.txt", "requirements-tests.txt", "test-requirements.txt",
                     "tests-requirements.txt", "requirements/test.txt", "requirements/tests.txt",
                     "tests/requirements.txt", "requirements-dev.txt", "dev-requirements.txt", "requirements/dev.txt")
"""Where a project without a test extra or group keeps its test dependencies, in the order they are looked for."""

_HARMLESS = frozenset({"--pre", "--prefer-binary", "--only-binary", "--no-binary", "--require-hashes", "--no-deps"})
"""Options that change how pip chooses among what the index offers, never where it looks."""
_FILES = {"-r": "requirement", "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint"}
_EDITABLE = ("-e", "--editable")
_INDEX = frozenset({"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index", "--trusted-host"})
_INCLUDES = 20
"""How deep requirement files may include one another, and dependency groups each other."""
_BOUNDS = "the package index is the council's choice (the policy's [tool.pipeline] index_url, find_links, no_index)"


def install_args(tree: str | Path, config: PipelineConfig) -> list[str]:
    """pip's arguments for the setup step in the repository at ``tree`` (see the module's description).

    Raises :class:`PipelineConfigError` naming the file and line of anything refused.
    """
    root = Path(tree).resolve()
    if config.install is not None:
        _screen_args(root, list(config.install), "[tool.council.ci] install")
        return list(config.install)
    project, groups = _declared(root)
    extras = project.get("optional-dependencies", {})
    extra = next((e for e in TEST_NAMES if isinstance(extras, dict) and e in extras), None)
    args = ["-e", f".[{extra}]" if extra else "."]
    group = next((g for g in TEST_NAMES if g in groups), None)
    if group is not None:
        args += dependency_group(groups, group)
    if extra is None and group is None:
        found = next((f for f in REQUIREMENT_FILES if (root / f).is_file()), None)
        if found is not None:
            screen_file(root, root / found)
            args += ["-r", found]
    return args


def dependency_group(groups: dict[str, Any], name: str) -> list[str]:
    """The requirements of dependency group ``name`` (PEP 735), its ``include-group`` entries followed.

    ``groups`` is the ``[dependency-groups]`` table with normalised names. Raises
    :class:`PipelineConfigError` for a missing or cyclic include, or an entry that is not a requirement.
    """
    found: list[str] = []

    def follow(group: str, path: tuple[str, ...]) -> None:
        if group in path or len(path) > _INCLUDES:
            raise PipelineConfigError(f"pyproject.toml [dependency-groups] {group} includes itself "
                                      f"({' → '.join((*path, group))}); remove the cycle")
        entries = groups.get(group)
        if not isinstance(entries, list):
            raise PipelineConfigError(f"pyproject.toml [dependency-groups] has no group {group!r} "
                                      f"(included by {path[-1]!r})" if path else
                                      f"pyproject.toml [dependency-groups] {group} must be a list")
        for entry in entries:
            if isinstance(entry, dict) and set(entry) == {"include-group"}:
                follow(_normal(str(entry["include-group"])), (*path, group))
            elif isinstance(entry, str) and entry.strip() and not entry.strip().startswith("-"):
                found.append(entry.strip())
            else:
                raise PipelineConfigError(f"pyproject.toml [dependency-groups] {group}: {entry!r} is neither a "
                                          "requirement (like \"pytest>=8\") nor {include-group = \"name\"}")

    follow(name, ())
    return list(dict.fromkeys(found))


def screen_file(root: Path, path: Path, depth: int = 0) -> None:
    """Refuse a requirements file (and those it includes) with a line that names where packages come from, an
    option pip would take from the repository, or a path outside ``root``."""
    where = _inside(root, path, "a requirements file")
    if depth > _INCLUDES:
        raise PipelineConfigError(f"{where}: requirement files include one another more than {_INCLUDES} deep")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineConfigError(f"{where} cannot be read ({exc}); fix it or set [tool.council.ci] install") from None
    for number, line in _lines(text):
        if not line.startswith("-"):
            continue  # a requirement; per-requirement options (--hash=...) come after it
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise PipelineConfigError(f"{where} line {number}: {exc}") from None
        option, _, value = tokens[0].partition("=")
        value = value or (tokens[1] if len(tokens) > 1 else "")
        if option in _INDEX:
            raise PipelineConfigError(f"{where} line {number}: {option} names where packages come from, but "
                                      f"{_BOUNDS}; remove the line, or list what to install in [tool.council.ci] "
                                      "install")
        if option in _FILES:
            screen_file(root, path.parent / value, depth + 1)
        elif option in _EDITABLE:
            _local(root, path.parent, value, f"{where} line {number}")
        elif option not in _HARMLESS:
            raise PipelineConfigError(f"{where} line {number}: {option} is not an option the council passes to pip; "
                                      "remove it, or list what to install in [tool.council.ci] install")


def _screen_args(root: Path, args: list[str], where: str) -> None:
    """The same rules as :func:`screen_file`, for arguments the repository's configuration gives."""
    rest = iter(args)
    for arg in rest:
        option, _, value = arg.partition("=")
        if not arg.startswith("-"):
            continue
        if option in _INDEX:
            raise PipelineConfigError(f"{where}: {option} names where packages come from, but {_BOUNDS}")
        if option in _FILES or option in _EDITABLE:
            value = value or next(rest, "")
            if option in _FILES:
                screen_file(root, root / value)
            else:
                _local(root, root, value, where)
        elif option not in _HARMLESS:
            raise PipelineConfigError(f"{where}: {arg} is not an option the council passes to pip")


def _local(root: Path, base: Path, value: str, where: str) -> None:
    """An editable install must be a directory of the repository (``.``, ``.[test]``, ``sub/pkg``)."""
    if not value or "://" in value or value.startswith(("git+", "hg+", "svn+", "bzr+")):
        raise PipelineConfigError(f"{where}: an editable install must be a directory of the repository, not "
                                  f"{value!r}")
    _inside(root, base / re.sub(r"\[.*\]$", "", value), "an editable install")


def _inside(root: Path, path: Path, what: str) -> str:
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise PipelineConfigError(f"{what} must be inside the repository, and {path} is not")
    return str(resolved.relative_to(root))


def _declared(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``[project]`` table and the ``[dependency-groups]`` table (names normalised) of ``pyproject.toml``."""
    try:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}, {}
    project = pyproject.get("project", {})
    groups = pyproject.get("dependency-groups", {})
    return (project if isinstance(project, dict) else {},
            {_normal(k): v for k, v in groups.items()} if isinstance(groups, dict) else {})


def _normal(name: str) -> str:
    """A group's name as PEP 735 compares them (PEP 503's normalisation)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _lines(text: str) -> list[tuple[int, str]]:
    """The logical lines of a requirements file with their first line's number: continuations joined, comments
    and blank lines dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = re.sub(r"(^|\s)#.*$", "", pending + raw).strip()
        pending = ""
        if line:
            out.append((start, line))
    return out
