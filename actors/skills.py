"""What an agent can do for a capability: a skill turns a task's inputs into a result.

The skills here are the built-in ones that need no outside world (later, tools and models add
real ones). A skill raises :class:`PermanentFailure` for work that retrying cannot fix; any other
exception is treated as transient and the task is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Skill = Callable[[dict[str, Any]], dict[str, Any]]


class PermanentFailure(Exception):
    """The task cannot succeed as asked; do not retry it."""


def noop(inputs: dict[str, Any]) -> dict[str, Any]:
    """Do nothing, successfully."""
    return {}


def echo(inputs: dict[str, Any]) -> dict[str, Any]:
    """Return the inputs."""
    return dict(inputs)


def sleep(inputs: dict[str, Any]) -> dict[str, Any]:
    """Wait ``inputs['seconds']`` (default 0.1) seconds."""
    seconds = float(inputs.get("seconds", 0.1))
    time.sleep(seconds)
    return {"slept": seconds}


def fail(inputs: dict[str, Any]) -> dict[str, Any]:
    """Fail: permanently if ``inputs['permanent']``, otherwise transiently."""
    if inputs.get("permanent"):
        raise PermanentFailure(str(inputs.get("error", "asked to fail")))
    raise RuntimeError(str(inputs.get("error", "asked to fail")))


BUILTIN: dict[str, Skill] = {"noop": noop, "echo": echo, "sleep": sleep, "fail": fail}
"""Capability name → skill, for agents that declare these capabilities."""
