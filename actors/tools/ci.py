"""The gated tools a pipeline step uses beyond files, git and commands: impact, review, build with provenance.

Each is one action at the gate (``file.read`` of the tree for impact analysis, ``command.run``
for review, ``build`` for a build) and records what it found after its ``action.completed``:
``review.reported``, ``build.reported``. Review and build return the step's typed result
(:mod:`actors.pipeline.results`) made from that event, on a first run and on a replay alike. A
step also reads the results of the steps it depends on from the log, as their types
(:meth:`CiTools.upstream`), never from another agent's memory.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from actors.pipeline.config import PackageIndex
from actors.pipeline.results import BuildResult, ReviewResult, SetupResult, StepResult, read, severity
from actors.skills import PermanentFailure
from actors.tools import baseline as baselines
from actors.tools import build as builds
from actors.tools import commands, python_env
from actors.tools import impact as impacts
from actors.tools import review as reviews
from actors.tools.gated import Tools, action_key
from actors.tools.git import Git
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace
from events import RecordedEvent, streams
from events.catalogue import (
    Artefact,
    Budget,
    BuildReported,
    Finding,
    GitCommitted,
    ReviewReported,
    TaskCompleted,
    TaskStatus,
    status_after,
)
from events.catalogue.work import SEVERITIES, Severity
from governance import provenance
from governance.gate import ActionRequest

BUILD_TYPE = "https://agent-council.dev/pipeline/python-build/v1"
"""What kind of build the provenance describes: ``python -m build --no-isolation`` at SOURCE_DATE_EPOCH."""

R = TypeVar("R", bound=StepResult)
E = TypeVar("E", ReviewReported, BuildReported)


class CiTools(Tools):
    """:class:`Tools` plus the pipeline's own: what a change reaches, review, reproducible builds, upstream results."""

    def __init__(self, *args: Any, history: Callable[[str], list[RecordedEvent]] | None = None,
                 builder_id: str = "", **kwargs: Any) -> None:
        """``history`` reads a stream of the log; a build signs its provenance with ``signer`` (the agent's own key)."""
        super().__init__(*args, **kwargs)
        self.history, self.builder_id = history, builder_id

    def upstream(self, task_id: str, kind: type[R]) -> R:
        """The result completed task ``task_id`` recorded, as a ``kind``.

        :class:`PermanentFailure` if the task has not completed; :class:`~actors.pipeline.results.ResultMismatch`
        (a PermanentFailure) naming the task, the type and the field's path if its result does not fit ``kind``.
        """
        events = self.history(streams.task(task_id)) if self.history else []
        done = [e.payload for e in events if isinstance(e.payload, TaskCompleted)]
        if not done:
            raise PermanentFailure(f"task {task_id} has not completed; this step depends on its result")
        return read(done[-1].result, kind, f"task {task_id}")

    def status_of(self, task_id: str) -> TaskStatus | None:
        """Where a task is now (its stream folded), or None if its stream is empty."""
        return status_after(e.type for e in self.history(streams.task(task_id))) if self.history else None

    def impact(self, changed: list[str], scope: str = "tests") -> impacts.Impact:
        """``file.read`` of the tree: the tests the changed files reach through imports, or "run all" and why."""
        request = self._request("file.read", f"impact of {len(changed)} changed files", resource=scope,
                                arguments={"changed": sorted(changed)[:1000]})

        def analyse(_: Sandbox) -> dict[str, Any]:
            found = impacts.analyse(self.workspace.path("."), changed)
            return {"modules": list(found.modules), "tests": list(found.tests), "run_all": found.run_all,
                    "reason": found.reason}

        done = self._run(request, analyse, reads_only=True)
        return impacts.Impact(tuple(done["modules"]), tuple(done["tests"]), bool(done["run_all"]), str(done["reason"]))

    def lint_fixes(self, cwd: str = ".", paths: list[str] | None = None) -> str:
        """``command.run`` of ``ruff check --fix --diff``: ruff's safe fixes as a diff (bare paths), not applied —
        to ``paths`` only, if given (the files a change touched: a review never rewrites what the change left alone).
        """
        argv = [sys.executable, "-m", "ruff", "check", "--fix", "--diff", "--exit-zero", "--no-cache", "--",
                *(paths if paths is not None else ["."])]
        done = self.run(argv, cwd, 120.0, tail=1 << 22, reads_only=True)  # --diff writes nothing
        if done["returncode"] != 0:
            raise PermanentFailure(f"ruff failed (exit {done['returncode']}): {done['stderr'][-500:]}")
        return str(done["stdout"]) if done["stdout"].lstrip().startswith("---") else ""

    def dirty(self, cwd: str = ".") -> bool:
        """``command.run`` of ``git status``: whether files git tracks have changes not committed."""
        done = self.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd, 60.0, tail=1 << 20,
                        reads_only=True)
        return bool(str(done.get("stdout", "")).strip())

    def committed_by(self, name: str) -> str | None:
        """The commit the first call named ``name`` made (see :meth:`named`), from the log; None if none."""
        found = self.recorded(action_key(self.task_id, name, 1, self.requeues), GitCommitted)
        return found.commit if found is not None else None

    def review(self, cwd: str = ".", threshold: Severity = "high", fix_commit: str | None = None, *,
               base: str | None = None, baseline: str = baselines.DEFAULT_FILE,
               block_known: bool = False) -> ReviewResult:
        """``command.run`` of ruff and bandit; ``review.reported`` with the findings, each marked new or known, and how
        many stop the pipeline: the new ones at or above ``threshold`` (the known ones too if ``block_known``).

        Known findings are those of the same review of the ``base`` commit; with no base, those listed in the
        repository's ``baseline`` file if it has one; otherwise every finding is new. The result is made from the
        event, so an earlier attempt's review is replayed unchanged.
        """
        request = self._request("command.run", "review: ruff check, bandit" + (f"; and of the base {base[:12]}"
                                if base else ""), resource=cwd, environment="local",
                                arguments={"threshold": threshold, "base": base, "baseline": baseline,
                                           "block_known": block_known})

        def examine(box: Sandbox) -> tuple[ReviewReported, dict[str, Any]]:
            report = reviews.review(self.workspace, cwd, box=box)
            before, compared = self._before(cwd, box, base, baseline)
            marks = baselines.known((f.fingerprint for f in report.findings), before)
            findings = [Finding(tool=f.tool, rule=f.rule, severity=severity(f.severity), path=f.path,
                                line=max(0, f.line), message=f.message[:2000], known=known)
                        for f, known in zip(report.findings, marks, strict=True)]
            ranked = sorted(findings, key=lambda f: (f.known, -SEVERITIES.index(f.severity), f.path, f.line))
            stops = [f for f in findings if reviews.severity_at_least(f.severity, threshold)
                     and (block_known or not f.known)]
            event = ReviewReported(
                warrant_id=self.warrant_id or "", key=request.key,
                counts={severity(s): n for s, n in report.counts.items()}, threshold=threshold,
                blocking=len(stops), fix_commit=fix_commit, findings=ranked[:200], baseline=compared,
                known=sum(marks), block_known=block_known)
            return event, msgspec.to_builtins(ReviewResult.reported(event))

        return ReviewResult.reported(self._reported(request, ReviewReported, "review.reported", examine))

    def report_review(self, findings: list[Finding], threshold: Severity, fix_commit: str | None,
                      compared: str) -> ReviewReported:
        """``review.reported`` of a review made elsewhere (a model's, with the linters' findings on the change): the
        findings ranked most severe first, and how many stop the request — the new ones at or above ``threshold``.
        Recorded once; a rerun reads it back."""
        request = self._request("file.read", "code review of the change", arguments={"threshold": threshold})

        def report(_: Sandbox) -> tuple[ReviewReported, dict[str, Any]]:
            ranked = sorted(findings, key=lambda f: (-SEVERITIES.index(f.severity), f.known, f.path, f.line))
            stops = [f for f in findings if not f.known and reviews.severity_at_least(f.severity, threshold)]
            counts: dict[Severity, int] = {}
            for f in findings:
                counts[f.severity] = counts.get(f.severity, 0) + 1
            event = ReviewReported(warrant_id=self.warrant_id or "", key=request.key, counts=counts,
                                   findings=ranked[:200], threshold=threshold, blocking=len(stops),
                                   fix_commit=fix_commit, baseline=compared, known=sum(1 for f in findings if f.known))
            return event, {"findings": len(findings), "blocking": len(stops)}

        return self._reported(request, ReviewReported, "review.reported", report)

    def environment(self, install: list[str], index: PackageIndex, timeout: float = 900.0,
                    cache: str | None = None) -> SetupResult:
        """``command.install``: a Python environment of the request's own (:mod:`actors.tools.python_env`), beside
        its tree, with ``install`` (pip's arguments) installed from ``index``.

        pip's cache is ``cache``'s, shared by the requests of one repository (the request's own when None). The
        network is the policy's to grant this action; a failed install stops the step with pip's last error.
        """
        if self.environments is None:
            raise PermanentFailure("this agent has no environments directory to make a Python environment in")
        planned = python_env.plan(self.workspace, self.environments.path(f"python/{self.workspace.root.name}"),
                                  install, index)
        request = self._request("command.install", shlex.join(planned.argv[1:]), resource=".", environment="local",
                                arguments={"argv": planned.argv[1:]}, cost=Budget(wall_time_s=timeout))

        def make(box: Sandbox) -> dict[str, Any]:
            assert self.environments is not None
            cached = self.environments.path(f"python/.pip-cache/{cache or self.workspace.root.name}")
            done = python_env.make(self.workspace, planned, cached, index, timeout, box=box)
            if done.returncode != 0:
                raise PermanentFailure(python_env.failure(done))
            return {"python": str(planned.python), "returncode": done.returncode, "output_digest": done.output_digest}

        def replay() -> dict[str, Any]:
            return {"python": str(planned.python)} if planned.python.exists() else {}

        done = self._run(request, make, replay=replay, commands=True, timeout=timeout)
        return SetupResult(python=str(done["python"]), installed=list(install), isolated=planned.isolated)

    def _before(self, cwd: str, box: Sandbox, base: str | None, baseline: str) -> tuple[Counter[str], str]:
        """The findings there before the change, by fingerprint, and what they came from (empty: nothing)."""
        if base:
            git = Git(self.workspace, cwd, box)
            snapshot = git.snapshot(base, reviews.BASE_SNAPSHOT)
            try:
                earlier = reviews.review(self.workspace, f"{cwd}/{reviews.BASE_SNAPSHOT}", box=box)
            finally:
                shutil.rmtree(snapshot, ignore_errors=True)
            return Counter(f.fingerprint for f in earlier.findings), f"the base {base[:12]}"
        committed = self.workspace.path(f"{cwd}/{baseline}")
        if committed.is_file():
            return baselines.load(committed), baseline
        return Counter(), ""

    def smoke(self, argv: list[str], release: str, environment: str, timeout: float = 120.0) -> dict[str, Any]:
        """``command.run`` in ``environment``: ``argv`` in a release directory of the environments (it only reads)."""
        if self.environments is None:
            raise PermanentFailure("this agent has no environments to test")
        request = self._request("command.run", shlex.join(argv), environment=environment,
                                arguments={"argv": list(argv), "release": release}, cost=Budget(wall_time_s=timeout))

        def execute(box: Sandbox) -> dict[str, Any]:
            assert self.environments is not None
            # the release is the only writable place: not the environment, nor any other release
            done = commands.run(Workspace(self.environments.path(release)), list(argv), ".", timeout, box=box)
            return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                    "output_digest": done.output_digest}

        return self._run(request, execute, reads_only=True, commands=True, timeout=timeout)

    def build(self, cwd: str = ".", out: str = "dist", repository: str = "", python: str | None = None) -> BuildResult:
        """``build``: build twice at SOURCE_DATE_EPOCH, compare, sign SLSA provenance; ``build.reported``.

        ``python`` is the request's own environment's interpreter (read-only to the build), the council's if None.
        The result is made from that event, so an earlier attempt's build is replayed unchanged.
        """
        request = self._request("build", f"python -m build in {cwd}", resource=cwd, arguments={"out": out})
        started = _now()

        def make(box: Sandbox) -> tuple[BuildReported, dict[str, Any]]:
            if python is not None:
                box = box.reading(Path(python).parent.parent)
            built = builds.build(self.workspace, cwd, out, box=box, python=python or sys.executable)
            subjects = {a.name: a.sha256 for a in built.artifacts}
            statement = provenance.statement(
                subjects, builder_id=self.builder_id or f"agent-council/{self.gatekeeper.agent_id}",
                build_type=BUILD_TYPE,
                external_parameters={"repository": repository, "directory": cwd, "outdir": out},
                internal_parameters={"command": built.command, "SOURCE_DATE_EPOCH": built.source_date_epoch,
                                     "warrant": self.warrant_id, "reproducible": built.reproducible},
                dependencies=[{"uri": f"git+file://{repository}" if repository else "git+file:", "digest":
                               {"gitCommit": built.commit}}] if built.commit else [],
                invocation_id=self.task_id, started_on=started, finished_on=_now(),
                byproducts=[{"name": "build-output", "digest": {"sha256": built.output_digest}}])
            signed: dict[str, Any] | None = None
            where = None
            if self.signer is not None:
                signed = provenance.sign(statement, self.signer)
                where = f"{out}/provenance.intoto.jsonl" if cwd in ("", ".") else f"{cwd}/{out}/provenance.intoto.jsonl"
                self.workspace.write(where, (json.dumps(signed, sort_keys=True) + "\n").encode())
            artefacts = [Artefact(name=a.name, path=a.path, sha256=a.sha256, size=a.size) for a in built.artifacts]
            digest = self.workspace.digest(where) if where else None
            report = BuildReported(
                warrant_id=self.warrant_id or "", key=request.key, commit=built.commit,
                source_date_epoch=built.source_date_epoch, artefacts=artefacts, reproducible=built.reproducible,
                mismatches=list(built.mismatches), provenance=where, provenance_sha256=digest,
                signer=self.signer.public.fingerprint if self.signer else None)
            return report, {**msgspec.to_builtins(BuildResult.reported(report)),
                            "seconds": round(built.duration_s, 3), "output_digest": built.output_digest}

        return BuildResult.reported(self._reported(request, BuildReported, "build.reported", make))

    def _reported(self, request: ActionRequest, kind: type[E], what: str,
                  effect: Callable[[Sandbox], tuple[E, dict[str, Any]]]) -> E:
        """Run an action whose outcome is the event ``effect`` makes (recorded as ``what``); that event.

        The event is the result on a first run and on a replay alike: an action an earlier
        attempt ran is not run again, its event is read back from the warrant's stream
        (:class:`~actors.tools.gated.CannotReplay` if it failed then, or recorded none).
        """
        reported: list[E] = []

        def run(box: Sandbox) -> dict[str, Any]:
            event, result = effect(box)
            self._record(request.key, event, what)
            reported.append(event)
            return result

        def replay() -> dict[str, Any]:
            found = self.recorded(request.key, kind)
            if found is None:
                return {}
            reported.append(found)
            return {"replayed": what}

        self._run(request, run, replay=replay, commands=True)
        return reported[-1]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
