"""What every coding skill does at its edges: read its inputs as a pydantic model, hand on its result as plain data,
and tell tests from the code they judge."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actors.skills import PermanentFailure

M = TypeVar("M", bound=BaseModel)

TEST_FILE = re.compile(r"(^|/)(tests?/|test_[^/]*\.py$|[^/]*_test\.py$|conftest\.py$)")
"""A path that is a test, or part of the tests: under ``test/`` or ``tests/``, ``test_*.py``, ``*_test.py``,
``conftest.py``."""


class ModelWork(BaseModel):
    """What a coding skill is asked, and the limits of its work with a model (every skill's inputs derive from it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: Annotated[int, Field(ge=0, le=3)] = 3
    """How often refused edits go back to the model before the task fails."""
    max_tokens: Annotated[int, Field(ge=64, le=64_000)] = 4096
    """The longest answer asked for."""
    map_tokens: Annotated[int, Field(ge=0, le=16_000)] = 1024
    """The repository map's budget."""
    file_tokens: Annotated[int, Field(ge=0, le=200_000)] = 12_000
    """The budget of the files shown whole."""
    knowledge_tokens: Annotated[int, Field(ge=0, le=16_000)] = 1024
    """The budget of what the team knows that is shown with the task (:mod:`actors.coding.recall`; 0: nothing)."""


def validated(model: type[M], inputs: dict[str, Any], capability: str) -> M:
    """``inputs`` as ``model``; :class:`PermanentFailure` naming each field that does not fit (at most five).

    ``step``, the name a plan gives the task (``code``, ``fix-1``…), is the plan's, not the skill's: it is left out.
    """
    try:
        return model.model_validate({name: value for name, value in inputs.items() if name != "step"})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'inputs'}: {e['msg']}" for e in exc.errors()[:5])
        raise PermanentFailure(f"{capability}'s inputs do not fit: {problems}") from None


def plain(result: msgspec.Struct) -> dict[str, Any]:
    """A skill's typed result as the plain data a task records."""
    data: dict[str, Any] = msgspec.to_builtins(result)
    return data
