"""What an agent can do: a skill turns a task's inputs into a result, with the tools its toolset gives it.

A skill is a function registered under a capability name with :func:`skill`. Its
:class:`Toolset` says what it is handed: nothing (``plain``: it reads its inputs and returns a
result), the gated tools (``gated``: files, commands and deployments, each through the gate under
the task's warrant, see :class:`actors.tools.gated.Tools`), or those plus the pipeline's
(``ci``: impact analysis, review, reproducible builds, upstream results; see
:class:`actors.tools.ci.CiTools`). ``signs`` gives it the agent's own signing key as well (a build
signs its provenance). Anything but ``plain`` acts on the world, and runs only under a warrant.

A skill says how it failed by what it raises: :class:`PermanentFailure` when retrying cannot help
(bad inputs, a failing test); any other exception is classified by its type (:func:`failure_kind`)
and the task is retried or not by that kind.
"""

from __future__ import annotations

import errno
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, get_args

from events import CouncilError
from events.catalogue import FailureKind
from events.errors import StoreUnavailable

CAPABILITY = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
"""A capability name: dotted lower-case words, like ``echo`` or ``ci.test``; at most 100 characters."""


class Toolset(StrEnum):
    """What a skill is handed besides its inputs."""

    PLAIN = "plain"
    """Nothing: the skill reads its inputs and returns a result; it touches nothing and needs no warrant."""
    GATED = "gated"
    """The gated tools (``actors.tools.gated.Tools``): files, commands and deployments, each through the gate."""
    CI = "ci"
    """The gated tools and the pipeline's (``actors.tools.ci.CiTools``): impact, review, builds, upstream results."""


class PermanentFailure(Exception):
    """The task cannot succeed as asked; do not retry it."""

    kind: FailureKind = "permanent"


class Abandoned(Exception):
    """The agent gave this attempt up — its lease was taken back — and what it was doing was stopped.

    Nothing the attempt does from then on counts: its reports would be refused. Transient: the
    task's next attempt, if the dispatcher grants one, starts afresh.
    """

    kind: FailureKind = "transient"


class SkillError(CouncilError):
    """A skill cannot be registered or found: a bad capability name, a duplicate, a module that fails to import."""


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Skill:
    """A capability and the function that carries it out, with the toolset it gets."""

    capability: str
    function: Callable[..., Any]
    toolset: Toolset = Toolset.PLAIN
    signs: bool = False
    """Whether the skill is handed the agent's own signing key (``tools.signer``)."""
    actions: tuple[str, ...] = ()
    """The gated actions the skill may take (``file.write``, ``llm.call``…), as it declares them: what a plan's
    validation checks the policy lets a task's role do, and what a phase's warrant is narrowed to. Empty for a skill
    that declares nothing (a phase warrant then grants its role everything the policy does)."""

    def __post_init__(self) -> None:
        if not isinstance(self.capability, str) or len(self.capability) > 100 or not CAPABILITY.match(self.capability):
            raise SkillError(f"{self.capability!r} is not a capability name: use dotted lower-case words, like "
                             "'echo' or 'notes.write' (letters, digits, '_' and '-'; at most 100 characters)")
        if not callable(self.function):
            raise SkillError(f"the skill for {self.capability!r} is not a function")
        if self.actions and self.toolset is Toolset.PLAIN:
            raise SkillError(f"the skill for {self.capability!r} is plain, so it takes no actions; give it toolset "
                             "'gated' or 'ci', or declare none")
        if self.signs and self.toolset is Toolset.PLAIN:
            raise SkillError(f"the skill for {self.capability!r} signs, so it needs tools: give it toolset 'gated' "
                             "or 'ci'")

    @property
    def acts(self) -> bool:
        """Whether the skill acts on the world (through gated tools, under a warrant)."""
        return self.toolset is not Toolset.PLAIN

    @property
    def description(self) -> str:
        """The first line of the function's docstring."""
        doc = (self.function.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __call__(self, inputs: dict[str, Any], tools: Any = None) -> Any:
        """Run the skill: ``function(inputs)`` for a plain one, ``function(inputs, tools)`` for one that acts."""
        return self.function(inputs) if self.toolset is Toolset.PLAIN else self.function(inputs, tools)


def skill(capability: str, *, toolset: Toolset | str = Toolset.PLAIN, signs: bool = False,
          actions: tuple[str, ...] = ()) -> Callable[[F], Skill]:
    """Decorate a function as the skill for ``capability``.

    A plain skill is ``def name(inputs: dict) -> dict``; one with tools is
    ``def name(inputs: dict, tools) -> dict`` (a result may also be a msgspec Struct). The
    decorated name is a :class:`Skill`; a module's skills are registered by naming the module in
    the ``agent_council.skills`` entry point group or in a team's ``skills`` (see
    :mod:`actors.skills.registry`). ``actions`` declares the gated actions it may take (see :attr:`Skill.actions`).
    """
    try:
        kind = Toolset(toolset)
    except ValueError:
        raise SkillError(f"{toolset!r} is not a toolset; use one of {', '.join(t.value for t in Toolset)}") from None

    def register(function: F) -> Skill:
        return Skill(capability, function, kind, signs, tuple(actions))

    return register


_CODE = (TypeError, AttributeError, NameError, LookupError, ValueError, ArithmeticError, AssertionError, ImportError,
         NotImplementedError, RecursionError)
"""Exceptions that are the skill's own programming errors, not the world's."""

_MACHINE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EROFS})
"""Operating-system errors that say the machine is in trouble."""


def failure_kind(exc: BaseException) -> FailureKind:
    """How a skill's exception counts, by its type: permanent and denied failures are not retried.

    An exception may name its own kind (a ``kind`` attribute, as :class:`PermanentFailure` and the
    gate's refusals do). The log unreachable or a worker lost is ``infrastructure``; a timeout or a
    broken connection ``transient``; a programming error in the skill (``TypeError``, ``KeyError``…)
    ``code``; anything else ``transient``.
    """
    kind = getattr(exc, "kind", None)
    for known in get_args(FailureKind):
        if kind == known:
            named: FailureKind = known
            return named
    if isinstance(exc, StoreUnavailable | MemoryError):
        return "infrastructure"
    if isinstance(exc, TimeoutError | ConnectionError):
        return "transient"
    if isinstance(exc, OSError) and exc.errno in _MACHINE:
        return "infrastructure"  # a full disk, a failing device: the machine, not the skill
    if isinstance(exc, CouncilError):
        return "transient"
    if isinstance(exc, _CODE):
        return "code"
    return "transient"


_reporter = threading.local()


def progress() -> None:
    """Tell the agent running this skill that the work moves on (the health monitor watches for silence)."""
    report = getattr(_reporter, "report", None)
    if report is not None:
        report()


def abandoned() -> bool:
    """Whether the agent gave up the attempt this thread works on (its lease was taken back): the work must stop."""
    given_up: threading.Event | None = getattr(_reporter, "abandoned", None)
    return given_up is not None and given_up.is_set()


def reporting(report: Callable[[], None] | None, given_up: threading.Event | None = None) -> None:
    """Route :func:`progress` calls made on this thread to ``report``, and let :func:`abandoned` answer from
    ``given_up`` (None: nowhere, never). Used by the agent around each attempt."""
    _reporter.report, _reporter.abandoned = report, given_up
