"""A directory agents may touch, and nothing outside it.

Every path is taken relative to the workspace root, normalised, and resolved with symlinks
followed; a path that ends up outside the root (``..``, an absolute path, a symlink pointing
out) is refused before anything is read or written. Writes are atomic (a temporary file, then a
rename), so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from events import CouncilError

MAX_FILE_BYTES = 10 * 1024 * 1024


class WorkspaceError(CouncilError):
    """A path is outside the workspace, or a file cannot be read or written there."""


class Workspace:
    """The files under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, relative: str) -> Path:
        """The absolute path of ``relative`` inside the workspace; :class:`WorkspaceError` if it is outside."""
        if not isinstance(relative, str) or not relative or "\0" in relative:
            raise WorkspaceError(f"{relative!r} is not a path; give a path relative to the workspace")
        if os.path.isabs(relative):
            raise WorkspaceError(f"{relative} is absolute; give a path relative to the workspace {self.root}")
        candidate = (self.root / relative).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise WorkspaceError(f"{relative} leads outside the workspace {self.root}; it is refused")
        return candidate

    def write(self, relative: str, content: bytes) -> str:
        """Write ``content`` to ``relative`` atomically; return its SHA-256 (hex)."""
        if len(content) > MAX_FILE_BYTES:
            raise WorkspaceError(f"{relative} would be {len(content)} bytes; the limit is {MAX_FILE_BYTES}")
        target = self.path(relative)
        if target.is_dir():
            raise WorkspaceError(f"{relative} is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return hashlib.sha256(content).hexdigest()

    def read(self, relative: str) -> bytes:
        """The bytes of ``relative``."""
        target = self.path(relative)
        try:
            if target.stat().st_size > MAX_FILE_BYTES:
                raise WorkspaceError(f"{relative} is over {MAX_FILE_BYTES} bytes")
            return target.read_bytes()
        except FileNotFoundError:
            raise WorkspaceError(f"{relative} does not exist in the workspace") from None

    def digest(self, relative: str) -> str:
        """The SHA-256 of a file in the workspace."""
        return hashlib.sha256(self.read(relative)).hexdigest()
