"""The architect (``design.write``): the design note the later phases of a plan work from.

One attempt reads the tree (one ``file.read``, remembered), asks the model for the note as an edit
that creates (or changes) ``docs/design/<request>.md`` — the approach, the interfaces, the
security requirements, and the library choices with their reasons — and writes and commits that
one file under the warrant. It is the coder's edit loop (:class:`actors.coding.coder.EditLoop`):
an answer that does not apply, or that touches any other file, is refused and sent back with the
reason, each round a recorded, budgeted call; a rerun is answered from the log.

The note is then in the request's tree: the plan gives it to the coder's context and names it in
every later task's words (:mod:`actors.orchestrator.adopt`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from actors.coding import context
from actors.coding.coder import EditLoop
from actors.coding.edits import FORMAT
from actors.coding.skill_io import ModelWork, plain, validated
from actors.pipeline.results import StepResult
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.gated import Tools

SYSTEM = ("You are the architect of a software team. Before anyone writes code you write the design note the team "
          "will follow, in Markdown, with these sections: Approach; Interfaces (modules, functions and their "
          "signatures, data formats); Security requirements; Library choices (each with its reason). Be concrete "
          "and short. You answer with one edit that creates the note (an empty SEARCH section) or changes it, after "
          "one sentence that says what you designed.\n\n" + FORMAT)


class DesignTask(ModelWork):
    """What ``design.write`` is asked: the request and the task's words, where the note goes, what to look at."""

    instruction: Annotated[str, Field(min_length=1, max_length=20_000)]
    path: Annotated[str, Field(pattern=r"^docs/design/[A-Za-z0-9._-]+\.md$")]
    acceptance: list[Annotated[str, Field(max_length=2_000)]] = Field(default_factory=list, max_length=50)
    files: list[Annotated[str, Field(min_length=1, max_length=1_000)]] = Field(default_factory=list, max_length=50)


class DesignWritten(StepResult, frozen=True, kw_only=True):
    """What the architect did: the note it wrote, its commit, and what it took."""

    path: str
    commit: str | None
    summary: str
    rounds: int
    model: str
    cost: float
    calls: int


@skill("design.write", toolset=Toolset.GATED, actions=("file.read", "llm.call", "file.write", "git.commit"))
def write_design(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Write the design note ``inputs`` (a :class:`DesignTask`) asks for, and commit it (see the module)."""
    task = validated(DesignTask, inputs, "design.write")
    tree = tools.read_tree(".", remember=tools.models.blobs)
    question, _ = context.context(tree, f"{task.instruction}\n\nWrite the design note {task.path}.",
                                  task.acceptance, [task.path, *task.files], map_tokens=task.map_tokens,
                                  file_tokens=task.file_tokens)
    loop = EditLoop(tools, dict(tree), name="design.write",
                    keep_off=lambda p: None if p == task.path else f"the architect writes only the design note "
                                                                   f"{task.path}, not {p}")
    summary = loop.run(context.messages(SYSTEM, question), task.rounds, task.max_tokens)
    if task.path not in loop.changed or not loop.state.get(task.path, "").strip():
        raise PermanentFailure(f"the answer of {loop.model} wrote no design note at {task.path}")
    commit = loop.save(f"Design note: {task.path}\n\n{summary}".strip())
    written = DesignWritten(path=task.path, commit=commit, summary=summary, rounds=loop.rounds, model=loop.model,
                            cost=round(loop.cost, 6), calls=loop.calls)
    return plain(written)
