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
from actors.tools.git import Git, Identity
from actors.tools.testing import run_pytest
from actors.tools.workspace import Workspace, WorkspaceError
from events.catalogue import Budget, FileChanged, GitCommitted, TestsReported
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
        self._records: list[tuple[str, Any, str]] = []

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        """``file.write``: write ``content`` (text) to ``path`` in the workspace."""
        data = content.encode()
        digest = hashlib.sha256(data).hexdigest()
        request = self._request("file.write", path, resource=path, arguments={"sha256": digest, "bytes": len(data)})

        def write() -> dict[str, Any]:
            before = self._digest(path)
            after = self.workspace.write(path, data)
            self._record(request.key, FileChanged(warrant_id=self.warrant_id or "", key=request.key, path=path,
                                                  before=before, after=after), "file.changed")
            return {"path": path, "sha256": after}

        return self._run(request, write)

    def patch(self, diff: str, repo: str = ".") -> dict[str, Any]:
        """``file.write`` for every file a unified diff touches (each checked by the gate), then applied all or nothing."""
        git = Git(self.workspace, repo)
        files = [f"{repo}/{f}" if repo not in ("", ".") else f for f in git.changed_files(diff)]
        if not files:
            raise PermanentFailure("the patch changes no file")
        digest = hashlib.sha256(diff.encode()).hexdigest()
        requests = [self._request("file.write", f, resource=f, arguments={"patch": digest}) for f in files]
        for request in requests[:-1]:  # each path passes the gate; the last request carries the change
            self._run(request, lambda: {"checked": True})
        before = {f: self._digest(f) for f in files}

        def apply() -> dict[str, Any]:
            git.apply(diff)
            for f, request in zip(files, requests, strict=True):
                self._record(request.key, FileChanged(warrant_id=self.warrant_id or "", key=request.key, path=f,
                                                      before=before[f], after=self._digest(f)), "file.changed")
            return {"files": files, "patch_sha256": digest}

        return self._run(requests[-1], apply)

    def commit(self, message: str, identity: Identity, repo: str = ".", branch: str | None = None) -> dict[str, Any]:
        """``git.commit``: commit every change in ``repo`` (on ``branch``, made if missing) as ``identity``."""
        git = Git(self.workspace, repo)
        request = self._request("git.commit", f"{repo}@{branch or 'HEAD'}: {message.splitlines()[0][:200]}",
                                resource=repo, arguments={"message": message, "branch": branch})

        def commit() -> dict[str, Any]:
            if branch:
                git.branch(branch)
            sha, files = git.commit(message, identity)
            self._record(request.key, GitCommitted(warrant_id=self.warrant_id or "", key=request.key, commit=sha,
                                                   branch=git.current_branch(), author=f"{identity.name} <{identity.email}>",
                                                   message=message[:4000], files=files), "git.committed")
            return {"commit": sha, "files": files}

        return self._run(request, commit)

    def run_tests(self, cwd: str = ".", args: list[str] | None = None, timeout: float = 900.0) -> dict[str, Any]:
        """``command.run`` of pytest in ``cwd``; the JUnit report becomes a ``tests.reported`` event."""
        request = self._request("command.run", shlex.join(["python3", "-m", "pytest", *(args or [])]), resource=cwd,
                                arguments={"argv": ["pytest", *(args or [])]}, cost=Budget(wall_time_s=timeout))

        def test() -> dict[str, Any]:
            report = run_pytest(self.workspace, cwd, args, timeout)
            self._record(request.key, TestsReported(
                warrant_id=self.warrant_id or "", key=request.key, passed=report.passed, failed=report.failed,
                errors=report.errors, skipped=report.skipped, duration_s=report.duration_s, failures=report.failures,
                report_digest=report.report_digest), "tests.reported")
            return {"passed": report.passed, "failed": report.failed, "errors": report.errors,
                    "skipped": report.skipped, "failures": report.failures, "ok": report.ok}

        return self._run(request, test, actual=lambda r: Budget())

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

    def deploy(self, artifact: str, environment: str, health: list[str] | None = None) -> dict[str, Any]:
        """``deploy``: release ``artifact`` into ``environment`` (blue-green, under ``.deployments/``); roll back if ``health`` fails."""
        digest = self.workspace.digest(artifact)
        request = self._request("deploy", environment, resource=artifact, environment=environment,
                                artifacts={artifact: digest}, arguments={"health": list(health or [])})
        return self._run(request, lambda: deploy(self.workspace, artifact, environment, health))

    # -- the gate, around every call --------------------------------------------------------

    def _digest(self, path: str) -> str | None:
        try:
            return self.workspace.digest(path)
        except WorkspaceError:
            return None

    def _record(self, key: str, event: Any, what: str) -> None:
        """Keep what the effect did; it is appended after the action's ``action.completed``."""
        self._records.append((key, event, what))

    def _flush(self) -> None:
        records, self._records = self._records, []
        if self.warrant_id is not None:
            for key, event, what in records:
                self.gatekeeper.record(self.warrant_id, key, event, what)

    def _request(self, action: str, target: str, *, resource: str | None = None, environment: str | None = None,
                 arguments: dict[str, Any] | None = None, artifacts: dict[str, str] | None = None,
                 cost: Budget = Budget()) -> ActionRequest:
        self._calls += 1
        if resource in ("", "."):
            resource = None  # the workspace as a whole: no path to scope (rules with resources do not apply)
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
            self._flush()
            raise
        progress()
        cost = actual(result) if actual is not None else Budget()
        digest = hashlib.sha256(repr(sorted(result.items())).encode()).hexdigest()
        self.gatekeeper.completed(self.warrant_id, request.key, ok=True, cost=cost, result_digest=digest)
        self._flush()
        return result
