"""The tools a skill is handed: every call asks the gate first and records its outcome after.

A call becomes an :class:`governance.gate.ActionRequest` with an idempotency key
(:func:`action_key`) made of the task id and the call's place in the skill — its n-th call, or
its n-th call inside a scope named with :meth:`Tools.named` — so a skill run again after a crash
asks for the same keys: calls that already completed are not run again (the tools rebuild their
results from what was recorded), and only the rest run. A requeued task is a fresh run, with keys
of its own. The gate checks that a key names the same
action it named before: a retry that takes another path (its n-th call is another action) is
refused as nondeterministic (:class:`Nondeterministic`) rather than handed the first attempt's
outcome. A denial raises :class:`ActionRefused` (the task fails for good); an action waiting for
approvals or a vote raises :class:`AwaitingAuthority` (the task waits, as events, holding no process).

Calls whose result depends only on their inputs (a model's answer, later) are keyed by content
instead (:func:`content_key`): the same inputs find the recorded result, other inputs are new work.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from actors.gatekeeper import Gatekeeper
from actors.skills import PermanentFailure, progress
from actors.tools import commands, reading
from actors.tools.commands import Interrupted
from actors.tools.deploy import HealthCheckFailed, deploy
from actors.tools.git import Git, Identity
from actors.tools.sandbox import Sandbox
from actors.tools.testing import run_pytest
from actors.tools.workspace import Workspace, WorkspaceError
from events import streams
from events.blobs import Blobs
from events.catalogue import (
    Budget,
    FailureKind,
    FileChanged,
    GitCommitted,
    LimitName,
    ReleaseDeployed,
    TestsReported,
    TreeRead,
)
from governance import budget, signing
from governance.gate import ActionRequest, Verdict
from governance.keys import SigningKey
from projections.strategies import StrategyBook

if TYPE_CHECKING:  # the model calls are built on these tools: a type only, no import cycle
    from actors.llm.calls import ModelCalls


def action_key(task_id: str, scope: str, n: int, requeues: int = 0) -> str:
    """The idempotency key of the ``n``-th call (from 1) a skill makes in ``scope`` during task ``task_id``.

    ``scope`` is "" for the skill as a whole, or the name given to :meth:`Tools.named`. Every
    attempt of the task that takes the same path asks for the same keys — within one run of it:
    after its ``requeues``-th requeue the keys are new, so a step a person requeued is done again,
    not answered from what the run before did.
    """
    run = run_of(task_id, requeues)
    return f"{run}#{scope}.{n}" if scope else f"{run}#{n}"


def run_of(task_id: str, requeues: int = 0) -> str:
    """The run of task ``task_id`` after its ``requeues``-th requeue, as its actions' keys begin (``<run>#...``)."""
    return f"{task_id}~{requeues}" if requeues else task_id


def content_key(task_id: str, name: str, digest: str) -> str:
    """The idempotency key of a call named ``name`` keyed by the digest of its inputs: new inputs, new key."""
    return f"{task_id}#{name}@{digest[:32]}"


class ActionRefused(PermanentFailure):
    """The gate denied an action; the reason is the message, ``denial`` the gate's kind of denial."""

    kind: FailureKind = "denied"

    def __init__(self, message: str, denial: str = "") -> None:
        super().__init__(message)
        self.denial = denial

    def __reduce__(self) -> tuple[type[ActionRefused], tuple[str, str]]:
        return type(self), (str(self), self.denial)


class Nondeterministic(ActionRefused):
    """A retried attempt asked for an action under a key that named another action on the first attempt.

    The skill took another path than before, so the key cannot tell the two apart; retrying can
    never succeed. The fix is in the skill: name the calls it makes only sometimes
    (``with tools.named("fix"): ...``) or key them by their content.
    """

    kind: FailureKind = "permanent"


class CannotReplay(PermanentFailure):
    """An action an earlier attempt of the task ran has no result to give: it failed then, or recorded nothing.

    An action is never run twice under its key, so the step cannot go on; the work must start again
    as a new task (for the pipeline: run it again).
    """

    def __init__(self, request: ActionRequest, why: str) -> None:
        super().__init__(f"{request.action} {request.target[:200]} ({request.key}) {why} in an earlier attempt of "
                         "this task, and an action is never run twice under its key: start the work again (for the "
                         "pipeline: run it again)")


class AwaitingAuthority(Exception):
    """The action needs approvals or a vote that are not in yet."""

    def __init__(self, authority_id: str, reason: str) -> None:
        super().__init__(reason)
        self.authority_id = authority_id


class Tools:
    """Gated effects for one task attempt, under one warrant."""

    def __init__(self, gatekeeper: Gatekeeper, warrant_id: str | None, task_id: str, workspace: Workspace,
                 environments: Workspace | None = None, signer: SigningKey | None = None,
                 hidden: tuple[str, ...] = (), requeues: int = 0) -> None:
        """``environments`` is where deployments go (default: ``.deployments/`` in the workspace); ``signer`` is
        the agent's own key, for a skill that signs (None otherwise); ``hidden`` are the paths no command may
        see (the council's home, the workspace root), whatever the sandbox binds; ``requeues`` how often the task
        was requeued (see :func:`action_key`)."""
        self.gatekeeper, self.warrant_id, self.task_id, self.workspace = gatekeeper, warrant_id, task_id, workspace
        self.environments, self.signer, self.hidden, self.requeues = environments, signer, hidden, requeues
        self._calls = 0
        self._scope = ""
        self._records: list[tuple[str, Any, str]] = []
        self.thinking: ModelCalls | None = None  # set by the toolset when the agent has a model configuration

    @property
    def models(self) -> ModelCalls:
        """The governed way to call a model (:class:`actors.llm.calls.ModelCalls`); a skill run by an agent with no
        model configuration is refused with one line."""
        if self.thinking is None:
            raise PermanentFailure(f"agent {self.gatekeeper.agent_id} has no model configuration; start the council "
                                   "with a [models] table in its team file, or COUNCIL_MODEL set")
        return self.thinking

    def read_file(self, path: str, first: int | None = None, last: int | None = None) -> str:
        """``file.read``: the text of ``path`` in the workspace — lines ``first`` to ``last`` only (1-based, both
        included), if given; :class:`PermanentFailure` if it is missing, too large or not text. Read afresh on every
        attempt."""
        request = self._request("file.read", path, resource=path, arguments={"first": first, "last": last})

        def read(_: Sandbox) -> dict[str, Any]:
            text = reading.decode(self.workspace.read(path))
            if text is None:
                raise PermanentFailure(f"{path} is not text (UTF-8); it cannot be read as source")
            if first is not None or last is not None:
                lines = text.splitlines(keepends=True)
                text = "".join(lines[max(0, (first or 1) - 1):last])
            return {"path": path, "text": text}

        try:
            return str(self._run(request, read, reads_only=True)["text"])
        except WorkspaceError as exc:
            raise PermanentFailure(str(exc)) from None

    def read_tree(self, root: str = ".", *, remember: Blobs | None = None) -> dict[str, str]:
        """``file.read`` of a tree: every text file under ``root`` that the warrant and the policy would let this
        agent read one by one (path → text; what a rule denies, such as secrets, is left out: see
        :meth:`Gatekeeper.permitted`), skipping version control, environments, caches, binaries, files over
        256 KiB, and whatever is past 16 MiB in all. One action.

        Read afresh on every attempt — unless ``remember`` is given: then what the first attempt read is kept as a
        blob there (``tree.read``), and every later attempt of the task gets exactly that, whatever the tree holds
        by then (an agent that works from what it read sees the same thing after a crash).
        """
        request = self._request("file.read", f"tree {root}", resource=root, arguments={"remember": bool(remember)})

        def read(_: Sandbox) -> dict[str, Any]:
            paths = reading.text_files(self.workspace.root, self.workspace.path(root))
            files, size = {}, 0
            for path in self.gatekeeper.permitted(self.warrant_id or "", "file.read", paths):
                text = reading.decode(self.workspace.read(path))
                if text is not None and size + len(text) <= reading.MAX_TREE_BYTES:
                    files[path] = text
                    size += len(text)
            if remember is not None:
                blob = remember.put(signing.canonical(files))
                self._record(request.key, TreeRead(warrant_id=self.warrant_id or "", key=request.key, root=root,
                                                   files=len(files), blob=blob), "tree.read")
            return {"files": files}

        def replay() -> dict[str, Any]:
            found = self.recorded(request.key, TreeRead)
            if found is None or remember is None:
                return {}
            return {"files": msgspec.msgpack.decode(remember.get(found.blob), type=dict[str, str])}

        try:
            done = self._run(request, read, replay=replay, reads_only=remember is None)
        except WorkspaceError as exc:
            raise PermanentFailure(str(exc)) from None
        return dict(done["files"])

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        """``file.write``: write ``content`` (text) to ``path`` in the workspace."""
        data = content.encode()
        digest = hashlib.sha256(data).hexdigest()
        request = self._request("file.write", path, resource=path, arguments={"sha256": digest, "bytes": len(data)})

        def write(_: Sandbox) -> dict[str, Any]:
            before = self._digest(path)
            after = self.workspace.write(path, data)
            self._record(request.key, FileChanged(warrant_id=self.warrant_id or "", key=request.key, path=path,
                                                  before=before, after=after), "file.changed")
            return {"path": path, "sha256": after}

        return self._run(request, write)

    def patch(self, diff: str, repo: str = ".", strip: int = 1) -> dict[str, Any]:
        """``file.write`` for every file a unified diff touches (each checked by the gate), then applied all or nothing.

        ``strip``: the leading path components of the diff's names to drop (see :meth:`Git.apply`).
        """
        checked = Git(self.workspace, repo, self._box(None, git=True))
        files = [f"{repo}/{f}" if repo not in ("", ".") else f for f in checked.changed_files(diff, strip)]
        if not files:
            raise PermanentFailure("the patch changes no file")
        digest = hashlib.sha256(diff.encode()).hexdigest()
        requests = [self._request("file.write", f, resource=f, arguments={"patch": digest}) for f in files]
        for request in requests[:-1]:  # each path passes the gate; the last request carries the change
            self._run(request, lambda _: {"checked": True})
        before = {f: self._digest(f) for f in files}

        def apply(box: Sandbox) -> dict[str, Any]:
            Git(self.workspace, repo, box).apply(diff, strip)
            for f, request in zip(files, requests, strict=True):
                self._record(request.key, FileChanged(warrant_id=self.warrant_id or "", key=request.key, path=f,
                                                      before=before[f], after=self._digest(f)), "file.changed")
            return {"files": files, "patch_sha256": digest}

        return self._run(requests[-1], apply, commands=True)

    def commit(self, message: str, identity: Identity, repo: str = ".", branch: str | None = None,
               paths: list[str] | None = None, tracked_only: bool = False) -> dict[str, Any]:
        """``git.commit``: commit the changes in ``repo`` (``paths`` only, if given; tracked files only, if
        ``tracked_only``) on ``branch`` (made if missing) as ``identity``."""
        request = self._request("git.commit", f"{repo}@{branch or 'HEAD'}: {message.splitlines()[0][:200]}",
                                resource=repo, arguments={"message": message, "branch": branch})

        def commit(box: Sandbox) -> dict[str, Any]:
            git = Git(self.workspace, repo, box)
            if branch:
                git.branch(branch)
            sha, files = git.commit(message, identity, paths, tracked_only)
            author = f"{identity.name} <{identity.email}>"
            self._record(request.key, GitCommitted(warrant_id=self.warrant_id or "", key=request.key, commit=sha,
                                                   branch=git.current_branch(), author=author,
                                                   message=message[:4000], files=files), "git.committed")
            return {"commit": sha, "files": files}

        def replay() -> dict[str, Any]:
            found = self.recorded(request.key, GitCommitted)
            return {} if found is None else {"commit": found.commit, "files": list(found.files)}

        return self._run(request, commit, replay=replay, commands=True)

    @contextmanager
    def named(self, name: str) -> Iterator[None]:
        """Key the calls made inside by ``name`` and their place within it, not by their place in the skill.

        A call's idempotency key must be the same on every attempt. For calls a skill makes only
        sometimes (a fix applied only if there is one), a position in the whole skill would shift
        from one attempt to the next; a name does not.
        """
        saved = self._scope, self._calls
        self._scope, self._calls = name, 0
        try:
            yield
        finally:
            self._scope, self._calls = saved

    def authorize(self, action: str, target: str, *, arguments: dict[str, Any] | None = None) -> None:
        """An action whose only effect is its decision: the gate authorises it (or waits for its approvals or vote,
        or denies it: :class:`ActionRefused`) and it is recorded as done. Once done, never asked again."""
        request = self._request(action, target, arguments=arguments)
        self._run(request, lambda _: {"decided": True}, replay=lambda: {"decided": True})

    def run_tests(self, cwd: str = ".", args: list[str] | None = None, timeout: float = 900.0,
                  coverage: bool = False, python: str | None = None) -> dict[str, Any]:
        """``command.run`` of pytest in ``cwd`` (under coverage if asked) with the interpreter ``python`` (a request's
        own environment, read-only to the tests; the council's when None); the JUnit report (and the line coverage
        per file) becomes a ``tests.reported`` event."""
        argv = [python or "python", "-m", *(["coverage", "run", "-m"] if coverage else []), "pytest", *(args or [])]
        request = self._request("command.run", shlex.join(argv), resource=cwd, environment="local",
                                arguments={"argv": argv}, cost=Budget(wall_time_s=timeout))

        def test(box: Sandbox) -> dict[str, Any]:
            if python is not None:
                box = box.reading(Path(python).parent.parent)  # the environment, outside the tree
            flaky = StrategyBook.of(self.gatekeeper.log.read_stream(streams.STRATEGIES)).flaky()
            report = run_pytest(self.workspace, cwd, args, timeout, coverage=coverage, box=box,
                                python=python or sys.executable, flaky=flaky)
            self._record(request.key, TestsReported(
                warrant_id=self.warrant_id or "", key=request.key, passed=report.passed, failed=report.failed,
                errors=report.errors, skipped=report.skipped, duration_s=report.duration_s, failures=report.failures,
                details=dict(report.details),
                report_digest=report.report_digest, coverage=dict(list(report.coverage.items())[:2000]),
                coverage_total=report.coverage_total, retried=report.retried), "tests.reported")
            return _tests_result(report)

        def replay() -> dict[str, Any]:
            found = self.recorded(request.key, TestsReported)
            return _tests_result(found) if found is not None else {}

        return self._run(request, test, replay=replay, commands=True)

    def run(self, argv: list[str], cwd: str = ".", timeout: float = 300.0, *, environment: str = "local",
            tail: int = 4000, reads_only: bool = False, action: str = "command.run") -> dict[str, Any]:
        """``command.run``: run ``argv`` (a list, no shell) in ``cwd`` inside the workspace, in the sandbox.

        ``environment`` is what the command acts on, for the policy: ``local`` (the workspace)
        unless it checks a deployment. ``action`` names it for the policy when it is a kind of
        command a rule may treat apart (``command.install`` for a dependency install, which a rule
        may grant the network); it must start with ``command.``. The result keeps the last
        ``tail`` characters of each output stream and the digest of all of it. A command that
        ``reads_only`` (our own tools say so, never an agent's input) is run again for its output
        if an earlier attempt ran it.
        """
        if not action.startswith("command.") or action == "command.":
            raise PermanentFailure(f"{action!r} is not a command action; name it command.<what>, like command.install")
        request = self._request(action, shlex.join(argv), resource=cwd, arguments={"argv": list(argv)},
                                environment=environment, cost=Budget(wall_time_s=timeout))
        started = time.monotonic()

        def execute(box: Sandbox) -> dict[str, Any]:
            done = commands.run(self.workspace, list(argv), cwd, timeout, tail=tail, box=box)
            return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                    "output_digest": done.output_digest, "seconds": round(time.monotonic() - started, 3)}

        return self._run(request, execute, actual=lambda r: Budget(wall_time_s=r.get("seconds", 0.0)),
                         reads_only=reads_only, commands=True, timeout=timeout)

    def deploy(self, artifact: str, environment: str, health: list[str] | None = None) -> dict[str, Any]:
        """``deploy``: release ``artifact`` into ``environment`` (blue-green, under ``.deployments/``); roll back if
        ``health`` fails."""
        digest = self.workspace.digest(artifact)
        request = self._request("deploy", environment, resource=artifact, environment=environment,
                                artifacts={artifact: digest}, arguments={"health": list(health or [])})

        def release(box: Sandbox) -> dict[str, Any]:
            try:
                manifest = deploy(self.workspace, artifact, environment, health, environments=self.environments,
                                  box=box)
            except HealthCheckFailed as failed:
                self._released(request.key, failed.manifest, "rolled_back", str(failed))
                raise
            self._released(request.key, manifest, "live", "")
            return manifest

        def replay() -> dict[str, Any]:
            found = self.recorded(request.key, ReleaseDeployed)
            return {} if found is None else {"release": found.release, "previous": found.previous,
                                             "artifact": found.artefact, "sha256": found.sha256,
                                             "environment": found.environment}

        return self._run(request, release, replay=replay, commands=bool(health))

    def _released(self, key: str, manifest: dict[str, Any], outcome: Literal["live", "rolled_back"],
                  detail: str) -> None:
        self._record(key, ReleaseDeployed(
            warrant_id=self.warrant_id or "", key=key, environment=str(manifest["environment"]),
            release=str(manifest["release"]), artefact=str(manifest["artifact"]), sha256=str(manifest["sha256"]),
            previous=manifest.get("previous"), outcome=outcome, detail=detail[:2000]), "release.deployed")

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
                 cost: Budget = budget.NOTHING) -> ActionRequest:
        self._calls += 1
        if resource in ("", "."):
            resource = None  # the workspace as a whole: no path to scope (rules with resources do not apply)
        return ActionRequest(agent_id=self.gatekeeper.agent_id, action=action, target=target, resource=resource,
                             environment=environment,
                             key=action_key(self.task_id, self._scope, self._calls, self.requeues),
                             arguments=arguments or {}, artifacts=artifacts or {}, cost=cost)

    def recorded(self, key: str, kind: type) -> Any | None:
        """What an action (by its key) recorded of ``kind`` in the warrant's stream, or None."""
        if self.warrant_id is None:
            return None
        for event in reversed(self.gatekeeper.log.read_stream(streams.warrant(self.warrant_id))):
            if isinstance(event.payload, kind) and getattr(event.payload, "key", None) == key:
                return event.payload
        return None

    def _box(self, verdict: Verdict | None, *, network: bool = False, timeout: float = 300.0,
             git: bool = False) -> Sandbox:
        """The sandbox an action's commands run in: the policy's ``[sandbox]`` terms, the rule's network grant."""
        table = verdict.sandbox if verdict is not None and verdict.sandbox is not None else self.gatekeeper.sandbox()
        granted = verdict.network if verdict is not None else network
        box = Sandbox(table.terms(network=granted, wall_time_s=timeout), hidden=self.hidden)
        return box.for_git() if git else box

    def _run(self, request: ActionRequest, effect: Callable[[Sandbox], dict[str, Any]],
             actual: Callable[[dict[str, Any]], Budget] | None = None,
             replay: Callable[[], dict[str, Any]] | None = None, *, reads_only: bool = False,
             commands: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Ask the gate, run ``effect`` in the sandbox the verdict gives, record the outcome; the effect's result,
        marked ``already_done`` if an earlier attempt of the task ran the action.

        Such an action is not run again under its key, unless it ``reads_only``: then it is run
        again for its result, whatever became of it before. Otherwise ``replay`` rebuilds the result
        from what the action recorded, and :class:`CannotReplay` is raised if it failed then or
        recorded nothing. Without ``replay`` the caller needs no result: only the recorded outcome
        (``ok``, ``result_digest``) comes back. An action that runs ``commands`` records the terms
        they ran under (and any limit one broke) on its ``action.completed``.
        """
        verdict: Verdict = self.gatekeeper.authorize(request, self.warrant_id)
        if verdict.outcome == "denied":
            denial = verdict.denial or ""
            refused = Nondeterministic if denial == "nondeterministic" else ActionRefused
            raise refused(f"{request.action} {request.target} denied: {verdict.reason}", denial)
        if verdict.outcome == "pending":
            raise AwaitingAuthority(verdict.authority_id or "", verdict.reason)
        wall = timeout if timeout is not None else (request.cost.wall_time_s or 300.0)
        box = self._box(verdict, timeout=wall)
        if verdict.outcome == "done":
            again = (lambda: effect(box)) if reads_only else replay
            return {**self._again(request, verdict, again, reads_only), "already_done": True}
        assert self.warrant_id is not None
        confinement = box.terms if commands else None
        started = time.monotonic()
        try:
            result = effect(box)
        except Interrupted:
            raise  # cut short from outside: no outcome is recorded, so the next attempt runs the action again
        except Exception as exc:
            self.gatekeeper.completed(self.warrant_id, request.key, ok=False, error=f"{type(exc).__name__}: {exc}",
                                      cost=Budget(wall_time_s=round(time.monotonic() - started, 3)),
                                      confinement=confinement, limits_hit=_limits_hit(exc))
            self._flush()
            raise
        progress()
        cost = actual(result) if actual is not None else Budget()
        if cost.wall_time_s is None:  # the estimate (a timeout) is replaced by the time the effect really took
            cost = msgspec.structs.replace(cost, wall_time_s=round(time.monotonic() - started, 3))
        digest = signing.digest(result)
        self.gatekeeper.completed(self.warrant_id, request.key, ok=True, cost=cost, result_digest=digest,
                                  output_digest=result.get("output_digest"), confinement=confinement)
        self._flush()
        return result

    def _again(self, request: ActionRequest, verdict: Verdict, replay: Callable[[], dict[str, Any]] | None,
               reads_only: bool) -> dict[str, Any]:
        """The result of an action an earlier attempt ran (see :meth:`_run`)."""
        completed = verdict.completed
        ok = completed is not None and completed.ok
        if replay is None:
            return {"ok": ok, "result_digest": completed.result_digest if completed else None}
        if not ok and not reads_only:
            raise CannotReplay(request, "failed")
        replayed = replay()
        self._records.clear()  # a replay records nothing: the first run's records stand
        if not replayed:
            raise CannotReplay(request, "left no record to rebuild its result from")
        return replayed


def _limits_hit(exc: BaseException) -> list[LimitName]:
    """The limits named by a :class:`~actors.tools.commands.LimitExceeded` in ``exc`` or what caused it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, commands.LimitExceeded):
            return list(seen.limits_hit)
        seen = seen.__cause__ or seen.__context__
    return []


def _tests_result(report: Any) -> dict[str, Any]:
    """A test run's result, from a :class:`TestReport` or the ``tests.reported`` event it became."""
    ok = report.failed == 0 and report.errors == 0 and report.passed > 0
    return {"passed": report.passed, "failed": report.failed, "errors": report.errors, "skipped": report.skipped,
            "failures": list(report.failures), "details": dict(report.details), "ok": ok,
            "coverage_total": getattr(report, "coverage_total", None)}
