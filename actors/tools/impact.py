"""Impact analysis: from the files a change touches, the tests that can see it — so only those run.

Python files are read with ``ast`` (never imported). A changed module reaches every module that
imports it, directly or through others, and a test is affected when it imports any module
reached, or is itself changed. Whenever the answer could miss something — a changed
``conftest.py``, packaging or tool configuration, a file that does not parse — the answer is
"run all", with the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RUN_ALL_FILES = ("conftest.py", "pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "pytest.ini",
                 "requirements.txt", "noxfile.py")
"""Changing any of these can change what any test does."""


@dataclass(frozen=True)
class Impact:
    """What a change reaches: the modules, the tests to run, or ``run_all`` (with ``reason``)."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]
    run_all: bool
    reason: str


def module_name(path: str) -> str | None:
    """The dotted module a ``.py`` path (relative to the project) defines; ``src/`` layouts are understood."""
    if not path.endswith(".py"):
        return None
    parts = Path(path).with_suffix("").parts
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def _imports(source: str, path: str = "") -> set[str]:
    """The modules ``source`` imports, by their dotted names; relative imports are resolved against ``path``, the
    file's place in the project (``from .exceptions import X`` in ``src/pkg/__init__.py`` is ``pkg.exceptions``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module if not node.level else _absolute(path, node.level, node.module)
            if module:
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _absolute(path: str, level: int, module: str | None) -> str | None:
    """The dotted name a relative import (``level`` dots, then ``module``) in the file at ``path`` refers to."""
    own = module_name(path)
    if own is None:
        return None
    package = own.split(".") if Path(path).name == "__init__.py" else own.split(".")[:-1]
    if level - 1 > len(package):
        return None  # above the top package: it imports nothing this analysis can see
    base = package[:len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])]) or None


def _is_test(path: str) -> bool:
    name = Path(path).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def analyse(root: str | Path, changed: Iterable[str]) -> Impact:
    """The impact of changing ``changed`` (paths relative to ``root``, the project directory)."""
    root = Path(root)
    changed = sorted(set(changed))
    for path in changed:
        if Path(path).name in RUN_ALL_FILES:
            return Impact((), (), True, f"{path} changed: it can affect every test")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if not any(part.startswith(".") for part in p.relative_to(root).parts))
    imports: dict[str, set[str]] = {}
    for path in files:
        try:
            imports[path] = _imports((root / path).read_text(errors="replace"), path)
        except SyntaxError as exc:
            return Impact((), (), True, f"{path} does not parse ({exc.msg}, line {exc.lineno}): running everything")
    modules = {name: p for p in files if not _is_test(p) and (name := module_name(p)) is not None}
    reached = {m for m in (module_name(p) for p in changed if not _is_test(p)) if m}
    grew = True
    while grew:  # a module that imports a reached module is reached too
        grew = False
        for module, path in modules.items():
            if module not in reached and any(_touches(i, reached) for i in imports[path]):
                reached.add(module)
                grew = True
    tests = sorted(p for p in files if _is_test(p) and (p in changed or any(_touches(i, reached) for i in imports[p])))
    reason = (f"{len(tests)} test file(s) import what changed" if tests else
              "no test imports what changed" if reached else "no Python module changed")
    return Impact(tuple(sorted(reached)), tuple(tests), False, reason)


def _touches(imported: str, reached: set[str]) -> bool:
    """Whether importing ``imported`` can see a change to any module in ``reached``.

    Importing ``a.b`` runs ``a/__init__`` too, so a reached package reaches its submodules'
    importers. The other way round needs nothing here: a package whose ``__init__`` imports a
    reached submodule is itself reached, through the import graph.
    """
    return any(imported == m or imported.startswith(m + ".") for m in reached)
