"""Deploying locally: an artifact from the workspace copied into ``.deployments/<environment>/``, with a manifest."""

from __future__ import annotations

import json
import re
import time

from actors.tools.workspace import Workspace, WorkspaceError

ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def deploy(workspace: Workspace, artifact: str, environment: str) -> dict[str, str]:
    """Put ``artifact`` in ``.deployments/<environment>/`` and record what is deployed there; return the manifest."""
    if not ENVIRONMENT.match(environment or ""):
        raise WorkspaceError(f"{environment!r} is not an environment name (lowercase letters, digits, '-')")
    content = workspace.read(artifact)
    name = workspace.path(artifact).name
    digest = workspace.write(f".deployments/{environment}/{name}", content)
    manifest = {"artifact": artifact, "sha256": digest, "environment": environment,
                "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    workspace.write(f".deployments/{environment}/manifest.json", json.dumps(manifest, indent=2).encode())
    return manifest
