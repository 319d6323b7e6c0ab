"""Deploying locally, blue-green: releases side by side, a ``current`` link switched atomically, rollback on a failed health check.

An environment is ``.deployments/<environment>/`` in the workspace: each deployment copies the
artifact into ``releases/<release>/`` (with a manifest), then points ``current`` at it by renaming a
new symbolic link over the old one — one atomic step, so ``current`` is always a whole release.
If a health-check command is given and fails against the new release, ``current`` is switched
back to the release it pointed at before (or removed, if there was none), and the deployment fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

from actors.tools import commands
from actors.tools.workspace import Workspace, WorkspaceError

ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class HealthCheckFailed(WorkspaceError):
    """The new release failed its health check; the environment was rolled back."""


def deploy(workspace: Workspace, artifact: str, environment: str, health: list[str] | None = None,
           timeout: float = 60.0) -> dict[str, str | None]:
    """Release ``artifact`` into ``environment``; check it with ``health`` (run in the release directory); return the manifest."""
    if not ENVIRONMENT.match(environment or ""):
        raise WorkspaceError(f"{environment!r} is not an environment name (lowercase letters, digits, '-')")
    content = workspace.read(artifact)
    name = workspace.path(artifact).name
    base = f".deployments/{environment}"
    digest = hashlib.sha256(content).hexdigest()
    release = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{digest[:12]}"
    workspace.write(f"{base}/releases/{release}/{name}", content)
    current = workspace.path(base) / "current"
    previous = os.readlink(current) if current.is_symlink() else None
    manifest = {"release": release, "previous": Path(previous).name if previous else None, "artifact": artifact,
                "sha256": digest, "environment": environment,
                "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    workspace.write(f"{base}/releases/{release}/manifest.json", json.dumps(manifest, indent=2).encode())
    _point(current, f"releases/{release}")
    if health:
        done = commands.run(workspace, list(health), f"{base}/current", timeout)
        if done.returncode != 0:
            if previous:
                _point(current, previous)
            else:
                current.unlink()
            back = f"rolled back to {Path(previous).name}" if previous else "no earlier release: current removed"
            raise HealthCheckFailed(f"release {release} of {artifact} failed its health check in {environment} "
                                    f"(exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}); {back}")
    return manifest


def _point(link: Path, target: str) -> None:
    """Make ``link`` point at ``target`` (relative) in one atomic rename."""
    fresh = link.with_name(f".current-{uuid.uuid4().hex[:8]}")
    os.symlink(target, fresh)
    os.replace(fresh, link)
