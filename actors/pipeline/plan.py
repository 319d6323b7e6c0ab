"""The pipeline as a graph of tasks: each step a task for an agent with the capability, under its own warrant.

::

    changes → setup ─┐
            └→ impact ┴→ test → review → build → staging → smoke ─┬→ docs ─┐
                                                                  └───────┴→ prod (waits for approvals)

A step's task is queued once the steps it depends on have completed; a step that fails for good
dead-letters every step after it, so a failing test never reaches a build and nothing reaches
production without passing staging. Task ids are the request id and the step's name, so the plan
is the same however often it is read, and a step finds the results it needs in its inputs' task
ids. The plan, the request and its tasks are appended in one group commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.pipeline.config import PackageIndex, PipelineConfig
from actors.tools.checkout import Checkout
from events.catalogue import PipelinePlanned, PlannedStep, TaskSpec, TaskStatus
from events.catalogue.work import Severity


@dataclass(frozen=True)
class Step:
    """One step: its name, the capability that carries it out, what it waits for, and a title."""

    name: str
    capability: str
    depends_on: tuple[str, ...]
    title: str


STEPS = (
    Step("changes", "ci.changes", (), "detect the changes"),
    Step("setup", "ci.setup", ("changes",), "make the request's Python environment: the project, its test "
                                            "dependencies"),
    Step("impact", "ci.impact", ("changes",), "find the tests the changes reach"),
    Step("test", "ci.test", ("impact", "setup"), "run the tests"),
    Step("review", "ci.review", ("test",), "review: ruff (safe fixes as their own commit), bandit"),
    Step("build", "ci.build", ("review",), "build twice, compare, sign provenance"),
    Step("staging", "ci.deploy", ("build",), "deploy to staging"),
    Step("smoke", "ci.smoke", ("staging",), "smoke-test staging"),
    Step("docs", "ci.docs", ("smoke",), "changelog and task graph"),
    Step("prod", "ci.deploy", ("smoke", "docs"), "deploy to production (approvals)"),
)
"""The steps of ``council run ci``, in order."""

CAPABILITIES = tuple(sorted({s.capability for s in STEPS}))


def task_id(request_id: str, step: str) -> str:
    """The task that carries out ``step`` of ``request_id``."""
    return f"{request_id}-{step}"


def plan(request_id: str, checkout: Checkout, config: PipelineConfig, threshold: Severity, block_known: bool = False,
         install: list[str] | None = None, index: PackageIndex | None = None) -> tuple[PipelinePlanned, list[TaskSpec]]:
    """The ``pipeline.planned`` event and the task specs (for :meth:`cluster.driver.Council.request`) of a CI run.

    ``threshold`` is the policy's review severity that stops the pipeline; ``block_known`` whether findings that
    were there before the change stop it too; ``install`` what the setup step installs (the project, editable,
    when not given) from the policy's package ``index``.
    """
    ids = {s.name: task_id(request_id, s.name) for s in STEPS}
    inputs: dict[str, dict[str, Any]] = {
        "changes": {"base": checkout.base, "head": checkout.commit},
        "setup": {"environment": config.environment, "install": install if install is not None else ["-e", "."],
                  "index": (index or PackageIndex()).model_dump(), "cache": cache_key(checkout.source)},
        "impact": {"changes": ids["changes"], "tests": config.tests},
        "test": {"impact": ids["impact"], "setup": ids["setup"], "tests": config.tests, "coverage": config.coverage},
        "review": {"threshold": threshold, "base": checkout.base, "baseline": config.review_baseline,
                   "block_known": block_known, "changes": ids["changes"]},
        "build": {"repository": checkout.source, "out": "dist", "setup": ids["setup"]},
        "staging": {"build": ids["build"], "environment": config.staging, "health": config.health},
        "smoke": {"staging": ids["staging"], "environment": config.staging, "argv": config.smoke},
        "docs": {"request": request_id, "steps": ids, "base": checkout.base, "head": checkout.commit,
                 "repository": checkout.source},
        "prod": {"build": ids["build"], "environment": config.production, "health": config.health},
    }
    specs = [TaskSpec(task_id=ids[s.name], capability=s.capability, title=f"{s.name}: {s.title}",
                      inputs={"step": s.name, **inputs[s.name]}, depends_on=[ids[d] for d in s.depends_on],
                      max_attempts=3) for s in STEPS]
    planned = PipelinePlanned(request_id=request_id, repository=checkout.source, tree=checkout.path,
                              commit=checkout.commit, base=checkout.base, carried=checkout.carried[:1000],
                              steps=graph(ids))
    return planned, specs


def cache_key(source: str) -> str:
    """The pip cache a repository's requests share: one per repository, so what one repository's install leaves
    in a cache (a wheel its build backend made) is never installed for another."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def graph(ids: dict[str, str]) -> list[PlannedStep]:
    """The task graph of a run whose steps are carried out by the tasks ``ids`` (step name → task id)."""
    return [PlannedStep(step=s.name, task_id=ids[s.name], capability=s.capability,
                        depends_on=[ids[d] for d in s.depends_on]) for s in STEPS]


def mermaid(steps: list[PlannedStep], status: Mapping[str, TaskStatus]) -> str:
    """A Mermaid flowchart of the request's task graph, each task labelled with its step and its status in
    ``status`` (task id → status; a task not in it is drawn as planned)."""
    lines = ["flowchart LR"]
    for s in steps:
        now = status.get(s.task_id)
        shown = "planned" if now is None else _WORDS.get(now, str(now))
        lines.append(f'    {_node(s.task_id)}["{s.step}<br/>{shown}"]')
    for s in steps:
        lines += [f"    {_node(d)} --> {_node(s.task_id)}" for d in s.depends_on]
    for s in steps:
        now = status.get(s.task_id)
        if now is not None and now in _CLASSES:
            lines.append(f"    class {_node(s.task_id)} {_CLASSES[now]}")
    lines += ["    classDef done fill:#d4edda,stroke:#28a745", "    classDef failed fill:#f8d7da,stroke:#dc3545",
              "    classDef waiting fill:#fff3cd,stroke:#ffc107"]
    return "\n".join(lines) + "\n"


_WORDS = {TaskStatus.AWAITING_APPROVAL: "awaiting approval", TaskStatus.DEAD_LETTERED: "stopped"}
"""How a status reads in the picture; the others read as themselves."""
_CLASSES = {TaskStatus.COMPLETED: "done", TaskStatus.FAILED: "failed", TaskStatus.DEAD_LETTERED: "failed",
            TaskStatus.AWAITING_APPROVAL: "waiting"}


def _node(task: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in task)
