"""A coding request as a graph of tasks: the team makes the change, then the pipeline ships it like any other.

::

    code → tests → fix-1 → retest-1 → … → fix-N → retest-N → critique → document
                                                                            └→ changes → … → prod (the CI pipeline)

``code`` writes the change (``code.write``); ``tests`` writes tests for it and runs them
(``test.write``); each ``fix-k`` makes the code pass the last run's failures, or says there was
nothing to fix (``code.fix``), and ``retest-k`` runs the tests again (``test.run``) — the last one
stops the request if they still fail. ``critique`` is the model's review with its automatic fixes
(``code.review``), ``document`` updates the documentation (``docs.write``). Then the CI pipeline
(:mod:`actors.pipeline.plan`) runs over the result, compared with the commit the request started
from: the tests again in the request's own environment, ruff and bandit, the reproducible build,
staging, and production after its approvals.

Like the pipeline's, task ids are the request id and the step's name, and the plan, the request
and its tasks are appended in one group commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import msgspec

from actors.coding.coder import CodeWritten
from actors.coding.documenter import DocsWritten
from actors.coding.reviewer import CodeReviewed
from actors.coding.tester import Fixed, TestsWritten
from actors.pipeline.config import PackageIndex, PipelineConfig
from actors.pipeline.plan import Step, plan, task_id
from actors.pipeline.results import StepResult, TestResult
from actors.tools.checkout import Checkout
from events.catalogue import PipelinePlanned, PlannedStep, TaskSpec
from events.catalogue.work import Severity

RESULTS: Mapping[str, type[StepResult]] = {
    "code.write": CodeWritten, "test.write": TestsWritten, "code.fix": Fixed, "test.run": TestResult,
    "code.review": CodeReviewed, "docs.write": DocsWritten,
}
"""Capability → the type of the result the team's skill hands on (the pipeline's are in
:data:`actors.pipeline.results.RESULTS`)."""

FIX_ROUNDS = 2
"""Fix rounds planned unless asked otherwise (at most :data:`MOST_FIX_ROUNDS`)."""
MOST_FIX_ROUNDS = 3


def coding_steps(fix_rounds: int) -> tuple[Step, ...]:
    """The team's steps, in order, with ``fix_rounds`` fix-and-retest pairs (1 to :data:`MOST_FIX_ROUNDS`)."""
    if not 1 <= fix_rounds <= MOST_FIX_ROUNDS:
        raise ValueError(f"fix rounds must be 1 to {MOST_FIX_ROUNDS}, not {fix_rounds}")
    steps = [Step("code", "code.write", (), "write the change"),
             Step("tests", "test.write", ("code",), "write tests for the change and run them")]
    last = "tests"
    for k in range(1, fix_rounds + 1):
        steps += [Step(f"fix-{k}", "code.fix", (last,), f"fix round {k}: make the failing tests pass"),
                  Step(f"retest-{k}", "test.run", (f"fix-{k}",), f"run the tests after fix round {k}")]
        last = f"retest-{k}"
    steps += [Step("critique", "code.review", (last,), "review the change: a model, ruff and bandit; automatic "
                                                        "fixes"),
              Step("document", "docs.write", ("critique",), "document the change: README, changelog, API pages")]
    return tuple(steps)


def plan_code(request_id: str, instruction: str, checkout: Checkout, config: PipelineConfig, threshold: Severity,
              block_known: bool = False, install: list[str] | None = None, index: PackageIndex | None = None,
              fix_rounds: int = FIX_ROUNDS) -> tuple[PipelinePlanned, list[TaskSpec]]:
    """The ``pipeline.planned`` event and the task specs of a coding request: the team's steps, then the CI
    pipeline's over their result (compared with the commit the request starts from)."""
    steps = coding_steps(fix_rounds)
    ids = {s.name: task_id(request_id, s.name) for s in steps}
    start = checkout.commit
    runs = ["tests", *[f"retest-{k}" for k in range(1, fix_rounds + 1)]]
    inputs: dict[str, dict[str, Any]] = {
        "code": {"instruction": instruction},
        "tests": {"instruction": instruction, "code": ids["code"]},
        "critique": {"base": start, "threshold": threshold},
        "document": {"instruction": instruction, "code": ids["code"], "base": start},
    }
    for k in range(1, fix_rounds + 1):
        inputs[f"fix-{k}"] = {"instruction": instruction, "after": ids[runs[k - 1]]}
        inputs[f"retest-{k}"] = {"fix": ids[f"fix-{k}"], "after": ids[runs[k - 1]], "last": k == fix_rounds}
    specs = [TaskSpec(task_id=ids[s.name], capability=s.capability, title=f"{s.name}: {s.title}",
                      inputs={"step": s.name, **inputs[s.name]}, depends_on=[ids[d] for d in s.depends_on],
                      max_attempts=3) for s in steps]
    # The pipeline compares what the team made with where the request started.
    shipped, pipeline = plan(request_id, replace(checkout, base=start), config, threshold, block_known, install,
                             index)
    after = ids[steps[-1].name]
    pipeline = [msgspec.structs.replace(spec, depends_on=[after]) if not spec.depends_on else spec
                for spec in pipeline]
    team = [PlannedStep(step=s.name, task_id=ids[s.name], capability=s.capability,
                        depends_on=[ids[d] for d in s.depends_on]) for s in steps]
    ci = [msgspec.structs.replace(s, depends_on=[after]) if not s.depends_on else s for s in shipped.steps]
    planned = msgspec.structs.replace(shipped, base=start, steps=[*team, *ci])
    return planned, [*specs, *pipeline]
