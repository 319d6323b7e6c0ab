"""``council review``: the pipeline's static review of a repository, on its own — and the baseline it can commit; with
``--model``, the reviewer's own review (``code.review``) through a running council."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cluster.cli_app import AddressOption, StoreOption, app, council_for, out, settings_for, text_table
from cluster.cli_run import InvalidInput, UnknownCapability
from events import CouncilError

if TYPE_CHECKING:
    from events.catalogue import Finding

CODE_REVIEW = "code.review"
"""The capability of the agent that reviews with a model (:mod:`actors.coding.reviewer`)."""


class ReviewFailed(CouncilError):
    """The review task did not complete, for another reason than the findings it reported."""


@app.command("review")
def review_command(
    repo: Annotated[str, typer.Option(help="The repository to review.")] = ".",
    base: Annotated[str | None, typer.Option(help="Review only the change from this revision (branch, tag, commit) "
                                                  "to HEAD: the findings on the files it touched.")] = None,
    model: Annotated[bool, typer.Option(
        "--model", help="Review with the team's model too, as the reviewer's code.review skill on a running council "
                        "(`council up`), in a copy of REPO of the request's own; exits 1 if a finding stops the "
                        "change. Without --base: the change of the last commit, or of the changes not yet "
                        "committed.")] = False,
    fix: Annotated[bool, typer.Option(
        "--fix", help="With --model: apply the findings the model can fix, as the reviewer's own commit in the "
                      "request's copy (never in REPO itself), and print that commit.")] = False,
    write_baseline: Annotated[bool, typer.Option(
        "--write-baseline", help="Write every finding to the repository's review baseline (the file "
                                 "[tool.council.ci] review_baseline names, review-baseline.json unless set), for it "
                                 "to commit: a pipeline with no base to compare with then counts them as there "
                                 "before a change.")] = False,
    timeout: Annotated[float, typer.Option(help="With --model: seconds to wait for the review.")] = 900.0,
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Review REPO with ruff and bandit, in the sandbox, as the pipeline's review step does; say which findings its
    committed baseline already lists. Nothing is written unless --write-baseline (or --fix, in a copy)."""
    root = Path(repo)
    if not root.is_dir():
        raise CouncilError(f"{repo} is not a directory; give the repository to review with --repo")
    if base is not None and (not base or base.startswith("-")):
        raise InvalidInput(f"--base {base!r} is not a revision; give a branch, tag or commit id")
    if fix and not model:
        raise InvalidInput("--fix applies the fixes the model finds: give --model too")
    if write_baseline and (model or base):
        raise InvalidInput("--write-baseline records every finding of the whole repository: leave out --base and "
                           "--model")
    if model:
        _model_review(root, base, fix, timeout, store, address)
    else:
        _static_review(root, base, write_baseline)


def _static_review(root: Path, base: str | None, write_baseline: bool) -> None:
    """ruff and bandit over ``root`` (the files ``base``..HEAD touched only, if given), compared with the baseline."""
    from actors.pipeline.config import load_config
    from actors.tools import baseline as baselines
    from actors.tools import review as reviews
    from actors.tools.git import Git, GitError
    from actors.tools.sandbox import Sandbox
    from actors.tools.workspace import Workspace
    from governance.confinement import SandboxTable

    name = load_config(root).review_baseline
    box = Sandbox(SandboxTable().terms(network=False, wall_time_s=600.0))
    workspace = Workspace(root.resolve())
    found = reviews.review(workspace, ".", box=box).findings
    if base is not None:
        try:
            changed = Git(workspace, ".", box).run("diff", "--name-only", "-z", "--relative", "--diff-filter=d",
                                                   base, "HEAD", "--").stdout
        except GitError as exc:
            raise InvalidInput(f"--base {base}: {exc}; give a revision {root} has") from None
        touched = {p for p in changed.split("\0") if p}
        found = [f for f in found if f.path in touched]
    path = root / name
    if write_baseline:
        written = baselines.write(path, found, [f.fingerprint for f in found], [f.message for f in found])
        out.print(f"wrote {written} finding(s) to {path}; commit it (git add {name}) and the pipeline counts them as "
                  "there before a change", markup=False)
        return
    before = baselines.load(path) if path.is_file() else None
    marks = baselines.known((f.fingerprint for f in found), before) if before is not None else [False] * len(found)
    rows = [(f.severity, f.tool, f.rule, f"{f.path}:{f.line}", "known" if known else "new", f.message[:100])
            for f, known in zip(found, marks, strict=True)]
    rows.sort(key=lambda r: (r[4] == "known", -_rank(r[0]), r[3]))
    if rows:
        out.print(text_table(["severity", "tool", "rule", "where", "", "message"], _plain_rows(rows)))
    new = marks.count(False)
    where = f" on the files changed since {base}" if base else ""
    out.print(f"{len(found)} finding(s){where}: {new} new, {len(found) - new} in {name}" if before is not None else
              f"{len(found)} finding(s){where}; {name} does not exist, so a pipeline with no base counts every one "
              "as new (write it with --write-baseline)", markup=False)


def _model_review(root: Path, base: str | None, fix: bool, timeout: float, store: str | None,
                  address: str | None) -> None:
    """Submit one ``code.review`` task over a copy of ``root`` to the running council; print its findings."""
    from actors.coding.reviewer import CodeReviewed, reported_by
    from actors.pipeline.results import read
    from actors.tools.checkout import prepare
    from actors.tools.sandbox import Sandbox
    from actors.tools.workspace import Workspace
    from cluster.driver import new_request_id
    from cluster.team import load_team
    from events import streams
    from events.catalogue import ReviewReported, TaskCompleted, TaskFailed, TaskSpec
    from governance.confinement import SandboxTable

    config = load_team(settings_for(store, address).team_file()).models
    if not (os.environ.get("COUNCIL_MODEL") or config.default or config.roles.get("reviewer")):
        raise InvalidInput("no model is configured for the reviewer: set COUNCIL_MODEL=provider:model, or [models] "
                           "default (or reviewer in [models.roles]) in the team file, and start the council with it")
    council = council_for(store, address)
    if CODE_REVIEW not in council.capabilities():
        raise UnknownCapability(f"no agent can review with a model: none running has the {CODE_REVIEW} capability; "
                                f"give the team file's reviewer the capability {CODE_REVIEW} (its skill is in the "
                                "module actors.coding.reviewer), then start the council again")
    settings = council.settings.absolute()
    if settings.workspace is None:
        raise CouncilError("the council has no workspace; start it with a home (`council up`)")
    policy = council.policy()
    table = policy.sandbox if policy is not None else SandboxTable()
    workspace = Workspace(settings.workspace)
    box = Sandbox(table.terms(network=False, wall_time_s=300.0), hidden=(settings.home, str(workspace.root)))
    request_id = new_request_id()
    checkout = prepare(workspace, request_id, root, base, box=box)  # the request's own copy: REPO is never written
    inputs: dict[str, Any] = {"fix": fix}
    if checkout.base:
        inputs["base"] = checkout.base
    elif checkout.carried:
        inputs["files"] = checkout.carried[:200]
    else:
        raise InvalidInput(f"{root} has one commit and no change not yet committed: there is no change to review; "
                           "give --base REV")
    task_id = f"{request_id}-review"
    council.request(f"review {Path(checkout.source).name} @ {checkout.commit[:12]}",
                    [TaskSpec(capability=CODE_REVIEW, inputs=inputs, task_id=task_id, title="code review")],
                    request_id=request_id)
    outcome = council.wait([task_id], timeout=timeout)[task_id]
    history = [e.payload for e in council.store.read_stream(streams.task(task_id))]
    if outcome == "completed":
        done = read(next(e.result for e in reversed(history) if isinstance(e, TaskCompleted)), CodeReviewed,
                    f"task {task_id}")
        _print_review(done.findings, done.fix_commit, workspace.path(checkout.path), root)
        out.print(f"{done.calls} model call(s) to {done.model or 'no model'}, ${done.cost:.6f}"
                  + (f"; left out (past the first 20 files): {', '.join(done.left_out)}" if done.left_out else ""),
                  markup=False)
        return
    failures = [e for e in history if isinstance(e, TaskFailed)]
    said = failures[-1].error if failures else f"it is {outcome}"
    reported = [e.payload for e in council.store.read_all(1, None, [ReviewReported.type_name])
                if isinstance(e.payload, ReviewReported) and reported_by(task_id, e.payload)]
    if not reported:
        raise ReviewFailed(f"the review task {task_id} did not complete: {said}")
    _print_review(reported[-1].findings, reported[-1].fix_commit, workspace.path(checkout.path), root)
    out.print(said, markup=False)
    raise typer.Exit(1)


def _print_review(findings: Sequence[Finding], fix_commit: str | None, tree: Path, repo: Path) -> None:
    """The findings table, and where the reviewer's own fix commit is (and how to take it)."""
    rows = [(f"{f.path}:{f.line}", f.kind or f.rule, f.severity, f.message[:300], f.suggestion[:300],
             "yes" if f.fixable else "") for f in findings]
    if rows:
        out.print(text_table(["where", "kind", "severity", "message", "suggestion", "fixable"], _plain_rows(rows)))
    out.print(f"{len(rows)} finding(s)", markup=False)
    if fix_commit:
        out.print(f"the automatic fixes are the commit {fix_commit} in the request's own copy {tree}; to take them: "
                  f"git -C {repo} fetch {tree} HEAD && git -C {repo} cherry-pick {fix_commit[:12]}", markup=False)


def _plain_rows(rows: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Cells as text, never markup: a finding's words (``[bold]``, ``[/x]``) are printed as they are."""
    from rich.markup import escape

    return [tuple(escape(cell) for cell in row) for row in rows]


def _rank(severity: str) -> int:
    from events.catalogue.work import SEVERITIES

    return SEVERITIES.index(severity) if severity in SEVERITIES else -1
