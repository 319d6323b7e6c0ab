"""Does a model's plan for a plain-words request give the work to the right roles, in the right order?

The requests and what each plan must satisfy live in ``bench/feature_requests.toml`` (its opening
comment describes the format). A plan is the JSON a model answers with::

    {"summary": str, "phases": [{"name": str, "tasks": [{"id": str, "role": str, "depends_on": [id], ...}]}]}

Only ``phases``, and each task's ``id``, ``role`` and ``depends_on`` are judged here. Two checks:

- every required role has at least one task;
- for each order pair ``(a, b)``, every task of role ``b`` depends, directly or through other tasks,
  on some task of role ``a``. A pair whose role ``a`` has no task is skipped: that is already
  reported as a missing role.

The plan comes from a model, so :func:`check` never raises on its shape: what is malformed is
reported as a problem, and the tasks that are well formed are still judged.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES: Mapping[str, tuple[str, ...]] = {
    "architect": ("design.write",),
    "coder": ("code.write", "code.fix"),
    "tester": ("test.write", "test.run"),
    "reviewer": ("code.review",),
    "documenter": ("docs.write",),
    "deployer": ("ci.deploy",),
}
"""The team's roles and their capabilities; an expectation may only name these roles."""

_KEYS = ("id", "text", "roles", "order")
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Expectation:
    """One request and what its plan must satisfy."""

    id: str
    text: str
    roles: tuple[str, ...]
    """Roles the plan must give at least one task."""
    order: tuple[tuple[str, str], ...]
    """``(a, b)``: every task of role ``b`` depends, directly or transitively, on some task of role ``a``."""


def load(path: Path) -> list[Expectation]:
    """The expectations in ``path``, in file order.

    Raises :class:`ValueError` naming the file, the entry and what is wrong with it: a file that is
    not TOML, a missing or empty ``text``, a duplicate or badly spelled ``id``, an unknown key, an
    unknown role, or an order pair that is not two different roles listed in ``roles``.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from e
    extra = sorted(set(data) - {"requests"})
    if extra:
        raise ValueError(f"{path}: unknown top-level key {extra[0]!r}; the file holds only [[requests]] tables")
    entries = data.get("requests")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: no requests; add at least one [[requests]] table")
    expectations: list[Expectation] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        expectation = _entry(entry, f"{path}: request {n}")
        if expectation.id in seen:
            raise ValueError(f"{path}: request {n}: duplicate id {expectation.id!r}; ids must be unique")
        seen.add(expectation.id)
        expectations.append(expectation)
    return expectations


def _entry(entry: object, where: str) -> Expectation:
    """One ``[[requests]]`` table as an :class:`Expectation`; ``where`` names it in errors."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: not a table")
    ident = entry.get("id")
    if ident is None:
        raise ValueError(f"{where}: missing id; give it a unique id of lower-case words joined by dashes")
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise ValueError(f"{where}: id must be lower-case words joined by dashes, not {ident!r}")
    where = f"{where} ({ident!r})"
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}{_did_you_mean(unknown[0], _KEYS)}; "
                         f"the keys are {', '.join(_KEYS)}")
    text = entry.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: missing text; say what the user asks for")
    roles = entry.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise ValueError(f"{where}: roles must be a non-empty list of role names")
    for role in roles:
        _known_role(role, where)
    if len(set(roles)) != len(roles):
        raise ValueError(f"{where}: a role is listed twice in roles")
    pairs = entry.get("order", [])
    if not isinstance(pairs, list):
        raise ValueError(f"{where}: order must be a list of [a, b] pairs")
    order: list[tuple[str, str]] = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(r, str) for r in pair)):
            raise ValueError(f"{where}: order pair {pair!r} is not two role names [a, b]")
        before, after = pair
        for role in pair:
            _known_role(role, where)
            if role not in roles:
                raise ValueError(f"{where}: order pair {pair!r} names {role!r}, which is not in roles; add it there")
        if before == after:
            raise ValueError(f"{where}: order pair {pair!r} names the same role twice")
        order.append((before, after))
    return Expectation(ident, text, tuple(roles), tuple(order))


def _known_role(role: str, where: str) -> None:
    if role not in ROLES:
        raise ValueError(f"{where}: unknown role {role!r}{_did_you_mean(role, tuple(ROLES))}; "
                         f"the roles are {', '.join(ROLES)}")


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class _Task:
    id: str
    role: str
    depends_on: tuple[str, ...]


def check(plan: dict[str, Any], expected: Expectation) -> list[str]:
    """The problems of ``plan`` against ``expected``, one sentence each; an empty list means it passes.

    ``plan`` is what the model answered, parsed: anything that is not the plan's shape (not an
    object, phases or tasks not lists, a task without an id or role, a duplicate task id, a
    dependency on a task the plan does not have) is reported as a problem, never raised.
    """
    tasks, problems = _tasks(plan)
    by_role: dict[str, list[_Task]] = {}
    for task in tasks.values():
        by_role.setdefault(task.role, []).append(task)
    problems += [f"no task has role {role!r}" for role in expected.roles if role not in by_role]
    for before, after in expected.order:
        if before not in by_role:
            continue
        for task in by_role.get(after, []):
            if not any(tasks[d].role == before for d in _ancestors(task, tasks)):
                problems.append(f"task {task.id!r} ({after}) does not depend, directly or through other tasks, "
                                f"on any {before} task")
    return problems


def _tasks(plan: object) -> tuple[dict[str, _Task], list[str]]:
    """The well-formed tasks of ``plan`` by id, and what is malformed about it."""
    if not isinstance(plan, dict):
        return {}, [f"the plan is not a JSON object but {type(plan).__name__}"]
    phases = plan.get("phases")
    if not isinstance(phases, list):
        return {}, ["the plan has no list of phases"]
    tasks: dict[str, _Task] = {}
    problems: list[str] = []
    for p, phase in enumerate(phases, start=1):
        if not isinstance(phase, dict) or not isinstance(phase.get("tasks"), list):
            problems.append(f"phase {p} is not an object with a list of tasks")
            continue
        for t, task in enumerate(phase["tasks"], start=1):
            where = f"task {t} of phase {p}"
            if not isinstance(task, dict):
                problems.append(f"{where} is not an object")
                continue
            ident, role, deps = task.get("id"), task.get("role"), task.get("depends_on", [])
            if not isinstance(ident, str) or not ident:
                problems.append(f"{where} has no id")
                continue
            if not isinstance(role, str) or not role:
                problems.append(f"task {ident!r} has no role")
                continue
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                problems.append(f"task {ident!r}: depends_on is not a list of task ids")
                deps = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
            if ident in tasks:
                problems.append(f"task id {ident!r} is used twice")
                continue
            tasks[ident] = _Task(ident, role, tuple(deps))
    for task in tasks.values():
        problems += [f"task {task.id!r} depends on {d!r}, which is not in the plan"
                     for d in task.depends_on if d not in tasks]
    return tasks, problems


def _ancestors(task: _Task, tasks: Mapping[str, _Task]) -> set[str]:
    """The ids of the plan's tasks ``task`` depends on, directly or transitively (cycles tolerated)."""
    seen: set[str] = set()
    stack = [d for d in task.depends_on if d in tasks]
    while stack:
        ident = stack.pop()
        if ident in seen:
            continue
        seen.add(ident)
        stack += [d for d in tasks[ident].depends_on if d in tasks]
    return seen
