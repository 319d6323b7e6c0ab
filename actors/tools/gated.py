"""The tools a skill is handed: every call asks the gate first and records its outcome after.

A call becomes an :class:`governance.gate.ActionRequest` with an idempotency key made of the task
id and the call's place in the skill (its n-th call), so a skill run again after a crash asks for
the same keys: calls that already completed are not run again (their recorded digest is
returned), and only the rest run. A denial raises :class:`ActionRefused` (the task fails for good);
an action waiting for approvals or a vote raises :class:`AwaitingAuthority` (the task waits, as
events, holding no process).
"""

from __future__ import annotations

import hashlib
import shlex
import time
from typing import Any

from actors.gatekeeper import Gatekeeper
from actors.skills import PermanentFailure, progress
from actors.tools import commands
from actors.tools.deploy import deploy
from actors.tools.workspace import Workspace
from events.catalogue import Budget
from governance.gate import ActionRequest, Verdict


class ActionRefused(PermanentFailure):
    """The gate denied an action; the reason is the message."""


class AwaitingAuthority(Exception):  # noqa: N818 - a state the task enters, not a failure
    """The action needs approvals or a vote that are not in yet."""

    def __init__(self, authority_id: str, reason: str) -> None:
        super().__init__(reason)
        self.authority_id = authority_id


class Tools:
    """Gated effects for one task attempt, under one warrant."""

    def __init__(self, gatekeeper: Gatekeeper, warrant_id: str | None, task_id: str, workspace: Workspace) -> None:
        self.gatekeeper, self.warrant_id, self.task_id, self.workspace = gatekeeper, warrant_id, task_id, workspace
        self._calls = 0

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        """``file.write``: write ``content`` (text) to ``path`` in the workspace."""
        data = content.encode()
        digest = hashlib.sha256(data).hexdigest()
        request = self._request("file.write", path, resource=path, arguments={"sha256": digest, "bytes": len(data)})
        return self._run(request, lambda: {"path": path, "sha256": self.workspace.write(path, data)})

    def read_file(self, path: str) -> str:
        """``file.read``: the text of ``path`` in the workspace."""
        request = self._request("file.read", path, resource=path)
        result = self._run(request, lambda: {"path": path, "text": self.workspace.read(path).decode(errors="replace")})
        return result["text"] if "text" in result else self.workspace.read(path).decode(errors="replace")

    def run(self, argv: list[str], cwd: str = ".", timeout: float = 300.0) -> dict[str, Any]:
        """``command.run``: run ``argv`` (a list, no shell) in ``cwd`` inside the workspace."""
        request = self._request("command.run", shlex.join(argv), resource=cwd, arguments={"argv": list(argv)},
                                cost=Budget(wall_time_s=timeout))
        started = time.monotonic()

        def execute() -> dict[str, Any]:
            done = commands.run(self.workspace, list(argv), cwd, timeout)
            return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                    "seconds": round(time.monotonic() - started, 3)}

        return self._run(request, execute, actual=lambda r: Budget(wall_time_s=r.get("seconds", 0.0)))

    def deploy(self, artifact: str, environment: str) -> dict[str, Any]:
        """``deploy``: put ``artifact`` into ``environment`` (locally, under ``.deployments/``)."""
        digest = self.workspace.digest(artifact)
        request = self._request("deploy", environment, resource=artifact, environment=environment,
                                artifacts={artifact: digest})
        return self._run(request, lambda: deploy(self.workspace, artifact, environment))

    # -- the gate, around every call --------------------------------------------------------

    def _request(self, action: str, target: str, *, resource: str | None = None, environment: str | None = None,
                 arguments: dict[str, Any] | None = None, artifacts: dict[str, str] | None = None,
                 cost: Budget = Budget()) -> ActionRequest:
        self._calls += 1
        return ActionRequest(agent_id=self.gatekeeper.agent_id, action=action, target=target, resource=resource,
                             environment=environment, key=f"{self.task_id}#{self._calls}", arguments=arguments or {},
                             artifacts=artifacts or {}, cost=cost)

    def _run(self, request: ActionRequest, effect: Any, actual: Any = None) -> dict[str, Any]:
        verdict: Verdict = self.gatekeeper.authorize(request, self.warrant_id)
        if verdict.outcome == "denied":
            raise ActionRefused(f"{request.action} {request.target} denied: {verdict.reason}")
        if verdict.outcome == "pending":
            raise AwaitingAuthority(verdict.authority_id or "", verdict.reason)
        if verdict.outcome == "done":
            completed = verdict.completed
            return {"already_done": True, "ok": bool(completed and completed.ok),
                    "result_digest": completed.result_digest if completed else None}
        assert self.warrant_id is not None
        try:
            result = effect()
        except Exception as exc:
            self.gatekeeper.completed(self.warrant_id, request.key, ok=False, error=f"{type(exc).__name__}: {exc}")
            raise
        progress()
        cost = actual(result) if actual is not None else Budget()
        digest = hashlib.sha256(repr(sorted(result.items())).encode()).hexdigest()
        self.gatekeeper.completed(self.warrant_id, request.key, ok=True, cost=cost, result_digest=digest)
        return result
