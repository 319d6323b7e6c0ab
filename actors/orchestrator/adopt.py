"""A validated plan as work: the request's tasks, each skill's inputs wired from the plan's dependencies, and one
phase grant per phase and role.

Task ids are the request's id and the plan's name for the task (``r-…-code-auth``; a revision's
carry its number, ``r-…-r1-code-auth``), so adopting the same plan twice gives the same tasks and
the second submission is refused by the log. Each skill reads its own inputs, so the plan is
translated per capability (:data:`WIRING`): the coder gets the task's words, its acceptance
criteria and the files to look at (the design note among them, once an architect wrote one); a
test writer, a fixer or a documenter finds the coder's or the last test run's result through the
task it depends on, nearest first. A task of ``ci.deploy`` stands for the CI pipeline over the
request's result: its steps, planned when the request was submitted, wait for every other task
of the plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from actors.orchestrator.validate import SHIP, Roster, order
from events.catalogue import FeatureRequested, PhaseGrant, Plan, PlanTask, TaskSpec


def design_path(request_id: str) -> str:
    """Where the architect's design note for ``request_id`` goes in the request's tree."""
    return f"docs/design/{request_id}.md"


def task_ids(request_id: str, revision: int, plan: Plan) -> dict[str, str]:
    """Plan task → task id (revision 0: ``<request>-<task>``; later: ``<request>-r<n>-<task>``)."""
    prefix = request_id if revision == 0 else f"{request_id}-r{revision}"
    return {t.id: f"{prefix}-{t.id}" for t in plan.tasks() if t.capability != SHIP}


def specs(feature: FeatureRequested, revision: int, plan: Plan, earlier: Mapping[str, str] | None = None,
          kinds: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[TaskSpec], list[str]]:
    """The plan's tasks as task specs: (plan task → task id, the specs, the pipeline's task ids if it ships).

    ``earlier`` maps tasks of an earlier plan that completed (plan task → task id) a revision may depend on, and
    ``kinds`` their capabilities (by task id), so a revision's fixer still finds the test run before it.
    """
    ids = task_ids(feature.request_id, revision, plan)
    known = {**(earlier or {}), **ids}
    capability = {**(kinds or {}), **{ids[t.id]: t.capability for t in plan.tasks() if t.id in ids}}
    depends = {ids[t.id]: [known[d] for d in t.depends_on if d in known] for t in plan.tasks() if t.id in ids}
    designed = [ids[t.id] for t in plan.tasks() if t.capability == "design.write"]
    out: list[TaskSpec] = []
    for task in order(plan):
        if task.capability == SHIP:
            continue
        tid = ids[task.id]
        inputs = WIRING.get(task.capability, _generic)(Wiring(feature, task, tid, depends, capability, bool(designed)))
        out.append(TaskSpec(task_id=tid, capability=task.capability, title=f"{task.id}: {task.title}"[:500],
                            inputs={"step": task.id, **inputs}, depends_on=depends[tid], max_attempts=3))
    pipeline: list[str] = []
    if any(t.capability == SHIP for t in plan.tasks()) and feature.pipeline:
        blocking = {d for deps in depends.values() for d in deps}
        last = [tid for tid in ids.values() if tid not in blocking]  # the plan's sinks: the pipeline waits for them
        for spec in feature.pipeline:
            out.append(msgspec.structs.replace(spec, depends_on=list(spec.depends_on) or last))
            pipeline.append(spec.task_id or "")
    return ids, out, pipeline


def grants(request_id: str, revision: int, plan: Plan, team: Roster) -> list[PhaseGrant]:
    """One grant per phase and role: the actions its tasks' skills declare (all the role is granted, if one
    declares none), for the tasks of that role in the phase."""
    ids = task_ids(request_id, revision, plan)
    out = []
    for phase in plan.phases:
        roles: dict[str, list[PlanTask]] = {}
        for task in phase.tasks:
            if task.capability != SHIP:
                roles.setdefault(task.role, []).append(task)
        for role, tasks in roles.items():
            sheet = team.roles[role]
            declared = [sheet.capabilities.get(t.capability, []) for t in tasks]
            everything = any(not d for d in declared)
            actions = sorted(sheet.granted) if everything else sorted({a for d in declared for a in d})
            out.append(PhaseGrant(phase=phase.name, role=role, actions=actions, tasks=[ids[t.id] for t in tasks],
                                  warrant_id=phase_warrant_id(request_id, revision, phase.name, role)))
    return out


def phase_warrant_id(request_id: str, revision: int, phase: str, role: str) -> str:
    """The id of the warrant of ``phase`` for ``role`` in a request's plan (revision ``revision``)."""
    return "wp-" + hashlib.sha256(f"{request_id}\0{revision}\0{phase}\0{role}".encode()).hexdigest()[:24]


class Wiring(msgspec.Struct, frozen=True):
    """What a task's inputs are made from."""

    feature: FeatureRequested
    task: PlanTask
    task_id: str
    depends: Mapping[str, list[str]]
    """Task id → the task ids it depends on (this plan's and earlier ones')."""
    capability: Mapping[str, str]
    """Task id → its capability."""
    designed: bool
    """Whether the plan has a design note the task may read."""

    def instruction(self) -> str:
        """The task's words for its skill: title, instructions, and the request it serves."""
        design = (f"\n\nThe design note is {design_path(self.feature.request_id)}: follow it."
                  if self.designed and self.task.capability != "design.write" else "")
        return (f"{self.task.title}\n\n{self.task.instructions}\n\nThis is part of the request: "
                f"{self.feature.instruction}{design}")[:20_000]

    def nearest(self, *capabilities: str, start: str | None = None) -> str | None:
        """The nearest task upstream (breadth first through the dependencies) of one of ``capabilities``."""
        queue, seen = list(self.depends.get(start or self.task_id, [])), set()
        while queue:
            tid = queue.pop(0)
            if tid in seen:
                continue
            seen.add(tid)
            if self.capability.get(tid) in capabilities:
                return tid
            queue += self.depends.get(tid, [])
        return None

    def files(self, *, design: bool = True) -> list[str]:
        """The files the plan names for the task (and the design note, once written)."""
        found = list(self.task.files)
        if design and self.designed and self.task.capability != "design.write":
            found.insert(0, design_path(self.feature.request_id))
        return list(dict.fromkeys(f for f in found if f and len(f) <= 1000))[:50]


def _design(w: Wiring) -> dict[str, Any]:
    return {"instruction": w.instruction(), "acceptance": list(w.task.acceptance)[:50],
            "path": design_path(w.feature.request_id), "files": w.files(design=False)}


def _code(w: Wiring) -> dict[str, Any]:
    return {"instruction": w.instruction(), "acceptance": list(w.task.acceptance)[:50], "files": w.files()}


def _tests(w: Wiring) -> dict[str, Any]:
    code = w.nearest("code.write", "code.fix")
    return {"instruction": w.instruction(), "code": code} if code else {"instruction": w.instruction(),
                                                                        "files": w.files(design=False)}


def _fix(w: Wiring) -> dict[str, Any]:
    return {"instruction": w.instruction(), "after": w.nearest("test.write", "test.run") or ""}


def _run(w: Wiring) -> dict[str, Any]:
    fix = w.nearest("code.fix") or ""
    return {"fix": fix, "after": w.nearest("test.write", "test.run", start=fix) or "", "last": True}


def _review(w: Wiring) -> dict[str, Any]:
    return {"base": w.feature.commit, "threshold": w.feature.threshold}


def _docs(w: Wiring) -> dict[str, Any]:
    code = w.nearest("code.write", "code.fix")
    found: dict[str, Any] = {"instruction": w.instruction(), "base": w.feature.commit}
    return {**found, "code": code} if code else {**found, "files": w.files(design=False)}


def _generic(w: Wiring) -> dict[str, Any]:
    return {"instruction": w.instruction(), "acceptance": list(w.task.acceptance), "files": w.files()}


WIRING: Mapping[str, Callable[[Wiring], dict[str, Any]]] = {
    "design.write": _design, "code.write": _code, "test.write": _tests, "code.fix": _fix, "test.run": _run,
    "code.review": _review, "docs.write": _docs,
}
"""Capability → how a plan task becomes its skill's inputs; any other capability gets the task's words, acceptance
criteria and files (``instruction``, ``acceptance``, ``files``)."""
