"""What an agent may read of a tree: its text files, walked without leaving it, and nothing that is not source.

The walk never follows a symlink, never enters version-control or environment directories, and
skips what is not text (a NUL byte near the start, or bytes that are not UTF-8) and what is too
large to be worth a model's context. The paths it returns are relative to the workspace, in POSIX
form, sorted — so the same tree reads the same way every time.
"""

from __future__ import annotations

import os
from pathlib import Path

SKIPPED_DIRECTORIES = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                                 ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".council", "build", "dist",
                                 ".eggs", ".deployments"})
"""Directories a walk never enters: version control, environments, caches, build output, the council's own."""

MAX_FILE_BYTES = 256 * 1024
"""The largest file a walk reads: anything bigger is data or generated, not source a model should read whole."""
MAX_TREE_BYTES = 16 * 1024 * 1024
"""The most text one read of a tree returns, all files together (those past it, in path order, are left out)."""


def text_files(root: Path, under: Path, *, max_bytes: int = MAX_FILE_BYTES, limit: int = 5000) -> list[str]:
    """The files under ``under`` (inside ``root``) a walk may read, as paths relative to ``root``, sorted; at most
    ``limit``. Whether each is text is for :func:`decode` to say once it is read."""
    found: list[str] = []
    for directory, subdirectories, files in os.walk(under, followlinks=False):
        here = Path(directory)
        subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRECTORIES and not d.endswith(
            ".egg-info") and not (here / d).is_symlink() and not (here / d / "pyvenv.cfg").exists())
        for name in sorted(files):
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            try:
                if path.stat().st_size > max_bytes:
                    continue
            except OSError:
                continue
            found.append(path.relative_to(root).as_posix())
            if len(found) >= limit:
                return sorted(found)
    return sorted(found)


def decode(data: bytes) -> str | None:
    """``data`` as text, or None if it is not: a NUL byte in its first 8 KiB, or bytes that are not UTF-8."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
