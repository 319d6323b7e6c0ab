"""Running a program: an argument list, never a shell string, in the workspace, with a clean environment."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from actors.tools.workspace import Workspace, WorkspaceError

KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
"""The only variables a command inherits: nothing that could carry a secret."""


@dataclass(frozen=True)
class Completed:
    """How a command ended: its exit code and the tails of its output."""

    returncode: int
    stdout: str
    stderr: str


def run(workspace: Workspace, argv: list[str], cwd: str = ".", timeout: float = 300.0, tail: int = 4000) -> Completed:
    """Run ``argv`` (a list; the program is looked up on PATH) in ``cwd`` inside the workspace."""
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise WorkspaceError(f"a command is a non-empty list of strings, got {argv!r}")
    directory = workspace.path(cwd)
    if not directory.is_dir():
        raise WorkspaceError(f"{cwd} is not a directory in the workspace")
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    env["HOME"] = str(workspace.root)
    try:
        done = subprocess.run(argv, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout,
                              shell=False, check=False)
    except FileNotFoundError:
        raise WorkspaceError(f"{argv[0]} is not a program on PATH") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"{argv[0]} ran longer than {timeout:g} s and was stopped") from None
    return Completed(done.returncode, done.stdout[-tail:], done.stderr[-tail:])
