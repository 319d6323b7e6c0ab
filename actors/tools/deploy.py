"""Deploying locally, blue-green: releases side by side, a ``current`` link switched atomically, rollback on a
failed health check.


An environment is a directory ``<environment>/`` of the environments root (by default
``.deployments/`` in the workspace): each deployment copies the artifact into
``releases/<release>/`` (a wheel is also unpacked there, so the release can run), with a manifest,
then points ``current`` at it by renaming a new symbolic link over the old one — one atomic step,
so ``current`` is always a whole release.
A health-check command runs in the sandbox with the new release as its only writable place. If it
fails against the new release (or breaks a limit), ``current`` is switched
back to the release it pointed at before (or removed, if there was none), and the deployment fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
import zipfile
from io import BytesIO
from pathlib import Path

from actors.tools import commands
from actors.tools.redact import scrub
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError

ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class HealthCheckFailed(WorkspaceError):
    """The new release failed its health check; the environment was rolled back."""

    def __init__(self, message: str, manifest: dict[str, str | None]) -> None:
        super().__init__(message)
        self.manifest = manifest


def deploy(workspace: Workspace, artifact: str, environment: str, health: list[str] | None = None,
           timeout: float = 60.0, environments: Workspace | None = None, *,
           box: Sandbox) -> dict[str, str | None]:
    """Release ``artifact`` (a file in ``workspace``) into ``environment`` under ``environments``; check it
    with ``health`` (run in the new release's directory); return the release's manifest."""
    if not ENVIRONMENT.match(environment or ""):
        raise WorkspaceError(f"{environment!r} is not an environment name (lowercase letters, digits, '-')")
    content = workspace.read(artifact)
    name = workspace.path(artifact).name
    target = environments or Workspace(workspace.path(".") / ".deployments")
    digest = hashlib.sha256(content).hexdigest()
    release = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{digest[:12]}"
    target.write(f"{environment}/releases/{release}/{name}", content)
    if name.endswith(".whl"):
        _unpack(target, f"{environment}/releases/{release}", content, name)
    current = target.path(environment) / "current"
    previous = os.readlink(current) if current.is_symlink() else None
    manifest = {"release": release, "previous": Path(previous).name if previous else None, "artifact": artifact,
                "sha256": digest, "environment": environment,
                "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target.write(f"{environment}/releases/{release}/manifest.json", json.dumps(manifest, indent=2).encode())
    _point(current, f"releases/{release}")
    manifest["path"] = str(target.path(environment) / "current")
    if health:
        try:
            done = commands.run(Workspace(target.path(f"{environment}/releases/{release}")), list(health), ".",
                                timeout, box=box)
        except commands.LimitExceeded as exc:
            done = commands.Completed(-1, "", str(exc))
            breach: commands.LimitExceeded | None = exc
        else:
            breach = None
        if done.returncode != 0:
            if previous:
                _point(current, previous)
            else:
                current.unlink()
            back = f"rolled back to {Path(previous).name}" if previous else "no earlier release: current removed"
            raise HealthCheckFailed(f"release {release} of {artifact} failed its health check in {environment} "
                                    f"(exit {done.returncode}: {scrub((done.stderr or done.stdout).strip())[-300:]}); "
                                    f"{back}",
                                    manifest) from breach
    return manifest


def _unpack(target: Workspace, release: str, wheel: bytes, name: str) -> None:
    """Unpack a wheel's files into the release directory; a member naming a path outside it is refused."""
    try:
        archive = zipfile.ZipFile(BytesIO(wheel))
    except zipfile.BadZipFile:
        raise WorkspaceError(f"{name} is not a wheel (not a zip archive)") from None
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            if member.filename.startswith("/") or ".." in Path(member.filename).parts:
                raise WorkspaceError(f"{name} holds {member.filename!r}, a path outside the release; it is refused")
            target.write(f"{release}/{member.filename}", archive.read(member))


def _point(link: Path, target: str) -> None:
    """Make ``link`` point at ``target`` (relative) in one atomic rename."""
    fresh = link.with_name(f".current-{uuid.uuid4().hex[:8]}")
    os.symlink(target, fresh)
    os.replace(fresh, link)
