"""The skills of the pipeline's steps: each turns its inputs (from the plan) into a result, through gated tools only.

A step raises :class:`PermanentFailure` when the pipeline must stop there (a failing test, a
blocking review finding, a build that fails, a health check that rolled an environment back): the
task is dead-lettered at once and every step after it with it. Anything else it raises is
transient, and the step is retried. Every step can be run again after a crash: the actions an
earlier attempt completed are not done again (the gate answers "done" and the tools rebuild their
results from what they recorded).
"""

from __future__ import annotations

import time
from typing import Any

from actors.pipeline.config import resolve
from actors.pipeline.plan import graph, mermaid
from actors.skills import PermanentFailure
from actors.tools.ci import CiTools
from actors.tools.git import Identity
from actors.tools.workspace import WorkspaceError


def identity(tools: CiTools) -> Identity:
    """Who the agent is in a commit: its id and role, and the warrant it acts under."""
    agent = tools.gatekeeper.agent_id
    return Identity(f"{agent} (agent-council)", f"{agent}@agent-council.invalid", tools.warrant_id or "none")


def changes(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """The files that differ between the base and HEAD (every tracked file when there is no base)."""
    base = inputs.get("base")
    argv = ["git", "diff", "--name-only", "--no-renames", base, "HEAD", "--"] if base else ["git", "ls-files"]
    done = tools.run(argv, ".", 60.0, tail=1 << 22, reads_only=True)
    if done["returncode"] != 0:
        raise PermanentFailure(f"git could not list the changes: {done['stderr'][-300:]}")
    files = [line for line in done["stdout"].splitlines() if line]
    return {"base": base, "head": inputs.get("head"), "files": files[:5000], "count": len(files)}


def impact(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """The tests the changes reach; every test when there is no base to compare with."""
    found = tools.upstream(str(inputs["changes"]))
    if found.get("base") is None:
        return {"modules": [], "tests": [], "run_all": True, "reason": "no base to compare with: every test runs",
                "changed": found.get("count", 0)}
    result = tools.impact(list(found.get("files", [])), str(inputs.get("tests", "tests")))
    return {**{k: result.get(k) for k in ("modules", "tests", "run_all", "reason")}, "changed": found.get("count", 0)}


def test(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Run the tests the change reaches (or all); any failure stops the pipeline."""
    reach = tools.upstream(str(inputs["impact"]))
    tests_dir = str(inputs.get("tests", "tests"))
    if reach.get("run_all"):
        args = [tests_dir]
    elif reach.get("tests"):
        args = list(reach["tests"])
    else:
        return {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "ran": [], "ok": True,
                "reason": "the change reaches no test"}
    report = tools.run_tests(".", args, coverage=bool(inputs.get("coverage", True)))
    if not report.get("ok"):
        failing = ", ".join(report.get("failures", [])[:5]) or "no test passed"
        raise PermanentFailure(f"tests failed ({report.get('failed', 0)} failed, {report.get('errors', 0)} errors): "
                               f"{failing}")
    return {**report, "ran": args}


def review(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Apply ruff's safe fixes as a commit of their own, then review with ruff and bandit; a finding at
    or above the policy's threshold stops the pipeline."""
    # Named calls: whether the fixes are applied and committed depends on what an earlier attempt
    # already did (the diff is empty once they are applied), so positions would not line up.
    with tools.named("lint"):
        diff = tools.lint_fixes(".")
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
    threshold = str(inputs.get("threshold") or "high")
    with tools.named("review"):
        found = tools.review(".", threshold, fix_commit)
    if found.get("blocking"):
        worst = found["blocking"][0]
        raise PermanentFailure(f"{len(found['blocking'])} review finding(s) at or above {threshold}, first: "
                               f"{worst['tool']} {worst['rule']} ({worst['severity']}) {worst['path']}:{worst['line']} "
                               f"{worst['message']}")
    return {**found, "fix_commit": fix_commit}


def build(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Build twice at SOURCE_DATE_EPOCH, compare, and sign the provenance with the builder's key."""
    try:
        built = tools.build(".", str(inputs.get("out", "dist")), str(inputs.get("repository", "")))
    except WorkspaceError as exc:
        raise PermanentFailure(str(exc)) from None
    if not built.get("artefacts"):
        raise PermanentFailure("the build produced no artefact")
    return built


def deploy(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Deploy the build's wheel (else its first artefact) to the environment, blue-green, with the health check."""
    built = tools.upstream(str(inputs["build"]))
    artefacts = built.get("artefacts", [])
    wheel = next((a for a in artefacts if a["name"].endswith(".whl")), artefacts[0] if artefacts else None)
    if wheel is None:
        raise PermanentFailure("the build has no artefact to deploy")
    health = inputs.get("health")
    try:
        release = tools.deploy(wheel["path"], str(inputs["environment"]), resolve(health) if health else None)
    except WorkspaceError as exc:
        raise PermanentFailure(str(exc)) from None
    return {**release, "artefact": wheel["name"], "sha256": wheel["sha256"]}


def smoke(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Run the smoke test in the release live in staging; a failure stops the pipeline before production."""
    live = tools.upstream(str(inputs["staging"]))
    argv = inputs.get("argv")
    if not argv:
        return {"ran": False, "reason": "the repository names no smoke test ([tool.council.ci] smoke)"}
    if tools.environments is None:
        raise PermanentFailure("no environments to smoke-test")
    environment = str(inputs["environment"])
    release = f"{environment}/releases/{live['release']}"
    done = tools.smoke(resolve(list(argv)), release, environment)
    if done.get("returncode", 0) != 0:
        raise PermanentFailure(f"the smoke test failed in {environment} (exit {done['returncode']}): "
                               f"{(done.get('stderr') or done.get('stdout') or '')[-300:]}")
    return {"ran": True, "release": live["release"], "returncode": done.get("returncode", 0),
            "output": (done.get("stdout") or "")[-500:]}


def docs(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Add the run to the changelog (from its steps' recorded results) and draw its task graph in Mermaid."""
    steps: dict[str, str] = dict(inputs["steps"])
    results = {name: tools.upstream(steps[name]) for name in ("changes", "test", "review", "build", "staging", "smoke")}
    status = {task: tools.status_of(task) for task in steps.values()}
    request = str(inputs["request"])
    log = tools.run(["git", "log", "--format=%h %s", f"{inputs['base']}..HEAD" if inputs.get("base") else "-20"], ".",
                    60.0, tail=20_000, reads_only=True)
    entry = _changelog_entry(request, inputs, results, log.get("stdout", ""))
    page = f"# Pipeline {request}\n\n```mermaid\n{mermaid(graph(steps), status)}```\n\n{entry}"
    existing = _read(tools, "CHANGELOG.md")
    header = "# Changelog\n\n"
    body = existing[len(header):] if existing.startswith(header) else existing
    tools.write_file(f"docs/pipeline/{request}.md", page)
    tools.write_file("CHANGELOG.md", header + entry + ("\n" + body if body else ""))
    done = tools.commit(f"docs: changelog and task graph of {request}", identity(tools),
                        paths=["CHANGELOG.md", f"docs/pipeline/{request}.md"])
    return {"changelog": "CHANGELOG.md", "graph": f"docs/pipeline/{request}.md", "commit": done.get("commit")}


def _read(tools: CiTools, path: str) -> str:
    try:
        return tools.workspace.read(path).decode(errors="replace")
    except WorkspaceError:
        return ""


def _changelog_entry(request: str, inputs: dict[str, Any], results: dict[str, dict[str, Any]], log: str) -> str:
    test, review_, built, staging = results["test"], results["review"], results["build"], results["staging"]
    lines = [f"## {time.strftime('%Y-%m-%d', time.gmtime())} — pipeline {request}", ""]
    lines.append(f"- Source: `{inputs.get('repository', '')}` at `{str(inputs.get('head', ''))[:12]}`"
                 + (f", compared with `{str(inputs['base'])[:12]}`" if inputs.get("base") else ", no base"))
    commits = [line for line in log.splitlines() if line.strip()]
    if commits:
        lines.append("- Commits:")
        lines += [f"  - {c}" for c in commits[:30]]
    lines.append(f"- Changed files: {results['changes'].get('count', 0)}")
    coverage = test.get("coverage_total")
    lines.append(f"- Tests: {test.get('passed', 0)} passed, {test.get('failed', 0)} failed, {test.get('skipped', 0)} skipped"
                 + (f"; line coverage {coverage:.1f}%" if isinstance(coverage, int | float) else ""))
    counts = review_.get("counts", {})
    lines.append("- Review: " + (", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings")
                 + (f"; safe fixes in {str(review_['fix_commit'])[:12]}" if review_.get("fix_commit") else ""))
    for a in built.get("artefacts", []):
        lines.append(f"- Artefact `{a['name']}` sha256 `{a['sha256']}`")
    lines.append(f"- Reproducible: {'yes' if built.get('reproducible') else 'no'}; provenance `{built.get('provenance')}`"
                 f" signed by `{built.get('signer')}`")
    lines.append(f"- Staging: release `{staging.get('release')}`"
                 + (", smoke test passed" if results["smoke"].get("ran") else ", no smoke test"))
    return "\n".join(lines) + "\n"


SKILLS = {"ci.changes": changes, "ci.impact": impact, "ci.test": test, "ci.review": review, "ci.build": build,
          "ci.deploy": deploy, "ci.smoke": smoke, "ci.docs": docs}
"""Capability → the step's skill."""
