"""The skills of the pipeline's steps: each turns its inputs (from the plan) into a result, through gated tools only.

Each is registered (``@skill``) with the CI toolset, like any plug-in's skill, through the
``agent_council.skills`` entry point ``pipeline``, and returns its step's typed result
(:mod:`actors.pipeline.results`); it reads the results of the steps before it as their types
(:meth:`CiTools.upstream`). A step raises :class:`PermanentFailure` when the pipeline must stop
there (a failing test, a blocking review finding, a build that fails, a health check that rolled
an environment back): the task is dead-lettered at once and every step after it with it. Anything
else it raises counts by its type (:func:`actors.skills.failure_kind`), and the step is retried if
that kind is. Every step can be run again after a crash: the actions an earlier attempt completed
are not done again (the gate answers "done" and the tools rebuild their results from what they
recorded; one that failed then has no result, and the step stops:
:class:`actors.tools.gated.CannotReplay`).
"""

from __future__ import annotations

import re
import time
from typing import Any, TypeVar

import msgspec

from actors.pipeline.config import PackageIndex, resolve
from actors.pipeline.plan import graph, mermaid
from actors.pipeline.results import (
    BuildResult,
    ChangesResult,
    DocsResult,
    ImpactResult,
    Release,
    ReviewResult,
    SetupResult,
    SmokeResult,
    StepResult,
    TestResult,
    pick,
    read,
    result_type,
    severity,
)
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools import baseline as baselines
from actors.tools.ci import CiTools
from actors.tools.git import Identity
from actors.tools.workspace import WorkspaceError

R = TypeVar("R", bound=StepResult)

CHANGELOG_STEPS = ("changes", "test", "review", "build", "staging", "smoke")
"""The steps whose results the changelog entry tells of."""


def identity(tools: CiTools) -> Identity:
    """Who the agent is in a commit: its id and role, and the warrant it acts under."""
    return Identity.agent(tools.gatekeeper.agent_id, tools.warrant_id)


@skill("ci.changes", toolset=Toolset.CI)
def changes(inputs: dict[str, Any], tools: CiTools) -> ChangesResult:
    """The files that differ between the base and HEAD (every tracked file when there is no base)."""
    base = inputs.get("base")
    argv = ["git", "diff", "--name-only", "--no-renames", base, "HEAD", "--"] if base else ["git", "ls-files"]
    done = tools.run(argv, ".", 60.0, tail=1 << 22, reads_only=True)
    if done.get("returncode") != 0:
        raise PermanentFailure(f"git could not list the changes: {str(done.get('stderr', ''))[-300:]}")
    files = [line for line in done["stdout"].splitlines() if line]
    return ChangesResult(base=base, head=inputs.get("head"), files=files[:5000], count=len(files))


@skill("ci.setup", toolset=Toolset.CI)
def setup(inputs: dict[str, Any], tools: CiTools) -> SetupResult:
    """Make the request's own Python environment with the project and its test dependencies (or use the council's,
    if the repository asks); a dependency that cannot be installed stops the pipeline here."""
    if inputs.get("environment") == "council":
        return SetupResult(reason="the repository asks for the council's own environment ([tool.council.ci] "
                                  "environment = \"council\")")
    try:
        index = PackageIndex.model_validate(inputs.get("index") or {})
    except ValueError as exc:
        raise PermanentFailure(f"the package index is not valid: {exc}") from None
    cache = str(inputs.get("cache") or "")
    return tools.environment([str(a) for a in inputs.get("install") or ["-e", "."]], index,
                             cache=cache if re.fullmatch(r"[0-9a-f]{16}", cache) else None)


@skill("ci.impact", toolset=Toolset.CI)
def impact(inputs: dict[str, Any], tools: CiTools) -> ImpactResult:
    """The tests the changes reach; every test when there is no base to compare with."""
    found = tools.upstream(str(inputs["changes"]), ChangesResult)
    if found.base is None:
        return ImpactResult(run_all=True, reason="no base to compare with: every test runs", changed=found.count)
    reach = tools.impact(found.files, str(inputs.get("tests", "tests")))
    return ImpactResult(modules=list(reach.modules), tests=list(reach.tests), run_all=reach.run_all,
                        reason=reach.reason, changed=found.count)


@skill("ci.test", toolset=Toolset.CI)
def test(inputs: dict[str, Any], tools: CiTools) -> TestResult:
    """Run the tests the change reaches (or all); any failure stops the pipeline."""
    reach = tools.upstream(str(inputs["impact"]), ImpactResult)
    tests_dir = str(inputs.get("tests", "tests"))
    if reach.run_all:
        args = [tests_dir]
    elif reach.tests:
        args = list(reach.tests)
    else:
        return TestResult(passed=0, failed=0, errors=0, skipped=0, ok=True, reason="the change reaches no test")
    python = tools.upstream(str(inputs["setup"]), SetupResult).python if inputs.get("setup") else None
    report = read(tools.run_tests(".", args, coverage=bool(inputs.get("coverage", True)), python=python), TestResult,
                  "the test run")
    if not report.ok:
        failing = ", ".join(report.failures[:5]) or "no test passed"
        first = next(iter(report.details.items()), None)
        said = f"\n{first[0]}:\n{first[1][-1200:]}" if first else ""
        raise PermanentFailure(f"tests failed ({report.failed} failed, {report.errors} errors): {failing}{said}")
    return msgspec.structs.replace(report, ran=args)


@skill("ci.review", toolset=Toolset.CI)
def review(inputs: dict[str, Any], tools: CiTools) -> ReviewResult:
    """Apply ruff's safe fixes as a commit of their own, then review with ruff and bandit; a finding at
    or above the policy's threshold stops the pipeline."""
    try:
        threshold = severity(str(inputs.get("threshold") or "high"))
    except ValueError as exc:
        raise PermanentFailure(f"the review threshold is not valid: {exc} (the policy's [tool.pipeline] "
                               "review_block_at)") from None
    base = inputs.get("base")
    touched: list[str] | None = None
    if base and inputs.get("changes"):  # the fixes go only to the Python files the change touched
        changed = tools.upstream(str(inputs["changes"]), ChangesResult)
        touched = [f for f in changed.files if f.endswith(".py") and tools.workspace.path(f).is_file()]
    # Named calls: whether the fixes are applied and committed depends on what an earlier attempt
    # already did (the diff is empty once they are applied), so positions would not line up.
    with tools.named("lint"):
        diff = tools.lint_fixes(".", touched) if touched is None or touched else ""
    if diff:
        with tools.named("lint-patch"):
            tools.patch(diff, ".", strip=0)
    dirty = False
    if not diff:  # an earlier attempt may have applied the fixes and stopped before committing them
        with tools.named("lint-status"):
            dirty = tools.dirty(".")
    with tools.named("lint-commit"):
        fix_commit = None
        if diff or dirty:
            fix_commit = tools.commit("review: ruff's safe automatic fixes", identity(tools),
                                      tracked_only=True).get("commit")
        fix_commit = fix_commit or tools.committed_by("lint-commit")  # an earlier attempt's
    with tools.named("review"):
        found = tools.review(".", threshold, fix_commit, base=str(base) if base else None,
                             baseline=str(inputs.get("baseline") or baselines.DEFAULT_FILE),
                             block_known=bool(inputs.get("block_known", False)))
    if found.stopping():
        first = (f", first: {f.tool} {f.rule} ({f.severity}) {f.path}:{f.line} {f.message}"
                 if (f := next(iter(found.blocking), None)) else "")
        raise PermanentFailure(f"{found.stopping()} review finding(s) at or above {threshold} "
                               f"{'in the tree' if found.blocking and found.blocking[0].known else 'added'}{first}"
                               + ("" if found.baseline else "; with no base or baseline every finding counts as new "
                                  "(commit one with `council review --write-baseline`)"))
    return found


@skill("ci.build", toolset=Toolset.CI, signs=True)
def build(inputs: dict[str, Any], tools: CiTools) -> BuildResult:
    """Build twice at SOURCE_DATE_EPOCH, compare, and sign the provenance with the builder's key."""
    python = tools.upstream(str(inputs["setup"]), SetupResult).python if inputs.get("setup") else None
    try:
        built = tools.build(".", str(inputs.get("out", "dist")), str(inputs.get("repository", "")), python=python)
    except WorkspaceError as exc:
        raise PermanentFailure(str(exc)) from None
    if not built.artefacts:
        raise PermanentFailure("the build produced no artefact")
    return built


@skill("ci.deploy", toolset=Toolset.CI, actions=("deploy",))
def deploy(inputs: dict[str, Any], tools: CiTools) -> Release:
    """Deploy the build's wheel (else its first artefact) to the environment, blue-green, with the health check."""
    built = tools.upstream(str(inputs["build"]), BuildResult)
    wheel = built.deployable()
    if wheel is None:
        raise PermanentFailure("the build has no artefact to deploy")
    environment = str(inputs["environment"])
    health = inputs.get("health")
    try:
        done = tools.deploy(wheel.path, environment, resolve(health) if health else None)
    except WorkspaceError as exc:
        raise PermanentFailure(str(exc)) from None
    release = read({**done, "artefact": wheel.name, "sha256": wheel.sha256}, Release, f"the deploy to {environment}")
    if release.path is None and tools.environments is not None:  # replayed: the manifest is not read again
        release = msgspec.structs.replace(release, path=str(tools.environments.path(environment) / "current"))
    return release


@skill("ci.smoke", toolset=Toolset.CI)
def smoke(inputs: dict[str, Any], tools: CiTools) -> SmokeResult:
    """Run the smoke test in the release live in staging; a failure stops the pipeline before production."""
    live = tools.upstream(str(inputs["staging"]), Release)
    argv = inputs.get("argv")
    if not argv:
        return SmokeResult(ran=False, reason="the repository names no smoke test ([tool.council.ci] smoke)")
    if tools.environments is None:
        raise PermanentFailure("no environments to smoke-test")
    environment = str(inputs["environment"])
    done = tools.smoke(resolve(list(argv)), f"{environment}/releases/{live.release}", environment)
    if done["returncode"] != 0:
        raise PermanentFailure(f"the smoke test failed in {environment} (exit {done['returncode']}): "
                               f"{(done.get('stderr') or done.get('stdout') or '')[-300:]}")
    return SmokeResult(ran=True, release=live.release, returncode=done["returncode"],
                       output=(done.get("stdout") or "")[-500:])


@skill("ci.docs", toolset=Toolset.CI)
def docs(inputs: dict[str, Any], tools: CiTools) -> DocsResult:
    """Add the run to the changelog (from its steps' recorded results) and draw its task graph in Mermaid."""
    steps: dict[str, str] = dict(inputs["steps"])
    results = {name: tools.upstream(steps[name], result_type(name)) for name in CHANGELOG_STEPS}
    status = {task: now for task in steps.values() if (now := tools.status_of(task)) is not None}
    request = str(inputs["request"])
    log = tools.run(["git", "log", "--format=%h %s", f"{inputs['base']}..HEAD" if inputs.get("base") else "-20"], ".",
                    60.0, tail=20_000, reads_only=True)
    entry = _changelog_entry(request, inputs, results, str(log.get("stdout", "")))
    page = f"# Pipeline {request}\n\n```mermaid\n{mermaid(graph(steps), status)}```\n\n{entry}"
    existing = _read(tools, "CHANGELOG.md")
    header = "# Changelog\n\n"
    body = existing[len(header):] if existing.startswith(header) else existing
    tools.write_file(f"docs/pipeline/{request}.md", page)
    tools.write_file("CHANGELOG.md", header + entry + ("\n" + body if body else ""))
    done = tools.commit(f"docs: changelog and task graph of {request}", identity(tools),
                        paths=["CHANGELOG.md", f"docs/pipeline/{request}.md"])
    return DocsResult(changelog="CHANGELOG.md", graph=f"docs/pipeline/{request}.md", commit=done.get("commit"))


def _changelog_entry(request: str, inputs: dict[str, Any], results: dict[str, StepResult], log: str) -> str:
    """The changelog entry of a run: its source, commits (``log``: ``git log --format='%h %s'``) and the results of
    :data:`CHANGELOG_STEPS` (a step missing from ``results`` is left out)."""
    lines = [f"## {time.strftime('%Y-%m-%d', time.gmtime())} — pipeline {request}", ""]
    lines.append(f"- Source: `{inputs.get('repository', '')}` at `{str(inputs.get('head', ''))[:12]}`"
                 + (f", compared with `{str(inputs['base'])[:12]}`" if inputs.get("base") else ", no base"))
    commits = [line for line in log.splitlines() if line.strip()]
    if commits:
        lines.append("- Commits:")
        lines += [f"  - {c}" for c in commits[:30]]
    if changed := pick(results, "changes", ChangesResult):
        lines.append(f"- Changed files: {changed.count}")
    if tested := pick(results, "test", TestResult):
        lines.append(f"- Tests: {tested.summary()}")
    if reviewed := pick(results, "review", ReviewResult):
        lines.append(f"- Review: {reviewed.summary()}"
                     + (f"; safe fixes in {reviewed.fix_commit[:12]}" if reviewed.fix_commit else ""))
    if built := pick(results, "build", BuildResult):
        lines += [f"- Artefact `{a.name}` sha256 `{a.sha256}`" for a in built.artefacts]
        lines.append(f"- Reproducible: {'yes' if built.reproducible else 'no'}; provenance `{built.provenance}`"
                     f" signed by `{built.signer}`")
    if staged := pick(results, "staging", Release):
        smoked = pick(results, "smoke", SmokeResult)
        lines.append(f"- Staging: release `{staged.release}`"
                     + (", smoke test passed" if smoked and smoked.ran else ", no smoke test"))
    return "\n".join(lines) + "\n"


def _read(tools: CiTools, path: str) -> str:
    try:
        return tools.workspace.read(path).decode(errors="replace")
    except WorkspaceError:
        return ""
