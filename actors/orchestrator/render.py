"""A plan for people: a table to read in a terminal and a Mermaid diagram to paste where Mermaid renders."""

from __future__ import annotations

import re

from actors.orchestrator.validate import SHIP
from events.catalogue import Plan


def table(plan: Plan) -> str:
    """The plan as aligned text: phase, task, role, capability, estimates, dependencies, then each task's words."""
    rows = [("phase", "task", "role", "capability", "min", "tokens", "after")]
    for phase in plan.phases:
        for task in phase.tasks:
            rows.append((_one_line(phase.name, 40), _one_line(task.id, 40), _one_line(task.role, 40),
                         _one_line(task.capability, 60), f"{task.estimate_minutes:g}", f"{task.estimate_tokens:,}",
                         _one_line(", ".join(task.depends_on), 80) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    tasks = plan.tasks()
    lines.append(f"{len(tasks)} task(s) in {len(plan.phases)} phase(s); estimates: "
                 f"{sum(t.estimate_tokens for t in tasks):,} tokens, {sum(t.estimate_minutes for t in tasks):g} "
                 "minutes of work")
    if plan.summary:
        lines.insert(0, _one_line(plan.summary, 1_000))
        lines.insert(1, "")
    for task in tasks:
        lines.append(f"\n{_one_line(task.id, 40)}: {_one_line(task.title, 200)}\n  {_one_line(task.instructions, 300)}")
        lines += [f"  ✓ {_one_line(c, 200)}" for c in task.acceptance[:8]]
        if task.files:
            lines.append(f"  files: {_one_line(', '.join(task.files[:10]), 300)}")
        if task.capability == SHIP:
            lines.append("  (ships: the CI pipeline — tests, review, build, staging, production after approvals)")
    return "\n".join(lines)


def mermaid(plan: Plan) -> str:
    """The plan as a Mermaid flowchart: one subgraph per phase, an edge per dependency."""
    lines = ["flowchart LR"]
    for n, phase in enumerate(plan.phases):
        lines.append(f'  subgraph phase{n}["{_label(phase.name)}"]')
        lines += [f'    {_node(t.id)}["{_label(t.id)}<br/>{_label(t.role)}: {_label(t.capability)}"]'
                  for t in phase.tasks]
        lines.append("  end")
    known = {t.id for t in plan.tasks()}
    lines += [f"  {_node(d)} --> {_node(t.id)}" for t in plan.tasks() for d in t.depends_on if d in known]
    return "\n".join(lines)


def _node(task_id: str) -> str:
    return "t_" + re.sub(r"[^A-Za-z0-9_]", "_", task_id)


def _label(text: str) -> str:
    """Text safe inside a Mermaid label: no quotes, brackets or markup the model could slip in."""
    return re.sub(r'["\[\]<>{}|`]', "", text)[:80]


def _one_line(text: str, most: int) -> str:
    flat = " ".join(_printable(text).split())
    return flat if len(flat) <= most else flat[: most - 1] + "…"


def _printable(text: str) -> str:
    """``text`` without control characters: a model's words must not move a terminal's cursor or colour it."""
    return "".join(c for c in text if c.isprintable() or c in " \n")
