"""Running a program: an argument list, never a shell string, in the workspace, with a clean environment."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass

from actors.tools.workspace import Workspace, WorkspaceError

KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
"""The only variables a command inherits: nothing that could carry a secret."""


@dataclass(frozen=True)
class Completed:
    """How a command ended: its exit code, the tails of its output, and the digest of all of it."""

    returncode: int
    stdout: str
    stderr: str
    output_digest: str = ""
    """SHA-256 of stdout then stderr, whole: what an event records instead of the output itself."""


def run(workspace: Workspace, argv: list[str], cwd: str = ".", timeout: float = 300.0, tail: int = 4000,
        env: dict[str, str] | None = None, stdin: str | None = None) -> Completed:
    """Run ``argv`` (a list; the program is looked up on PATH) in ``cwd`` inside the workspace.

    The command inherits only :data:`KEPT_ENV` (plus ``env``), never a shell, and is stopped
    after ``timeout`` seconds. Its output is capped to the last ``tail`` characters of each
    stream; ``output_digest`` covers all of it.
    """
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise WorkspaceError(f"a command is a non-empty list of strings, got {argv!r}")
    directory = workspace.path(cwd)
    if not directory.is_dir():
        raise WorkspaceError(f"{cwd} is not a directory in the workspace")
    environment = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    environment["HOME"] = str(workspace.root)
    environment.update(env or {})
    try:
        done = subprocess.run(argv, cwd=directory, env=environment, capture_output=True, text=True, timeout=timeout,
                              shell=False, check=False, input=stdin)
    except FileNotFoundError:
        raise WorkspaceError(f"{argv[0]} is not a program on PATH") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"{argv[0]} ran longer than {timeout:g} s and was stopped") from None
    digest = hashlib.sha256(done.stdout.encode() + b"\0" + done.stderr.encode()).hexdigest()
    return Completed(done.returncode, done.stdout[-tail:], done.stderr[-tail:], digest)
