"""``council review``: the pipeline's static review of a repository, on its own — and the baseline it can commit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cluster.cli_app import app, out, text_table
from events import CouncilError


@app.command("review")
def review_command(
    repo: Annotated[str, typer.Option(help="The repository to review.")] = ".",
    write_baseline: Annotated[bool, typer.Option(
        "--write-baseline", help="Write every finding to the repository's review baseline (the file "
                                 "[tool.council.ci] review_baseline names, review-baseline.json unless set), for it "
                                 "to commit: a pipeline with no base to compare with then counts them as there "
                                 "before a change.")] = False,
) -> None:
    """Review REPO with ruff and bandit, in the sandbox, as the pipeline's review step does; say which findings its
    committed baseline already lists. Nothing is written unless --write-baseline."""
    from actors.pipeline.config import load_config
    from actors.tools import baseline as baselines
    from actors.tools import review as reviews
    from actors.tools.sandbox import Sandbox
    from actors.tools.workspace import Workspace
    from governance.confinement import SandboxTable

    root = Path(repo)
    if not root.is_dir():
        raise CouncilError(f"{repo} is not a directory; give the repository to review with --repo")
    name = load_config(root).review_baseline
    box = Sandbox(SandboxTable().terms(network=False, wall_time_s=600.0))
    found = reviews.review(Workspace(root.resolve()), ".", box=box).findings
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
        out.print(text_table(["severity", "tool", "rule", "where", "", "message"], rows))
    new = marks.count(False)
    out.print(f"{len(found)} finding(s): {new} new, {len(found) - new} in {name}" if before is not None else
              f"{len(found)} finding(s); {name} does not exist, so a pipeline with no base counts every one as new "
              "(write it with --write-baseline)", markup=False)


def _rank(severity: str) -> int:
    from events.catalogue.work import SEVERITIES

    return SEVERITIES.index(severity) if severity in SEVERITIES else -1
