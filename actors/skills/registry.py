"""Which skills exist: every capability an agent may be given, where it comes from, and the toolset it gets.

Skills are plug-ins, and agent-council's own are registered the same way a user's are. A package
names its skills in the ``agent_council.skills`` entry point group of its metadata::

    [project.entry-points."agent_council.skills"]
    notes = "my_package.skills"            # a module: every Skill defined in it
    greet = "my_package.more:greet"        # one Skill, or a list of them

and a team file may name modules too (``skills = ["my_package.skills"]``), for skills that are not
installed as a package. :meth:`SkillRegistry.load` reads both; a capability registered twice, or a
module that fails to import, is refused with one line that says which and what to do.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from actors.skills.skill import Skill, SkillError

GROUP = "agent_council.skills"
"""The entry point group packages register skills in."""


@dataclass(frozen=True)
class Registered:
    """A skill and where it was registered from (an entry point and its distribution, or a module path)."""

    skill: Skill
    origin: str


class SkillRegistry:
    """Capability → skill, each with its origin."""

    def __init__(self) -> None:
        self._by_capability: dict[str, Registered] = {}

    @classmethod
    def load(cls, modules: Sequence[str] = (), *, entry_points: bool = True) -> SkillRegistry:
        """The skills of every installed ``agent_council.skills`` entry point (unless ``entry_points`` is false),
        then of ``modules`` (each ``package.module`` or ``package.module:name``)."""
        registry = cls()
        if entry_points:
            for point in sorted(metadata.entry_points(group=GROUP), key=lambda p: p.name):
                dist = f" of {point.dist.name} {point.dist.version}" if point.dist is not None else ""
                origin = f"entry point {point.name}{dist}"
                try:
                    found = point.load()
                except Exception as exc:  # noqa: BLE001 - a plug-in that cannot be imported is the plug-in's problem: say whose
                    raise SkillError(f"the skills of {origin} ({point.value}) fail to import ({type(exc).__name__}: "
                                     f"{exc}); fix or uninstall that package") from None
                registry.add_all(skills_in(found, f"{origin} ({point.value})"), origin)
        for path in modules:
            registry.add_all(skills_in(import_path(path), path), f"module {path}")
        return registry

    def add_all(self, skills: Iterable[Skill], origin: str) -> None:
        """Register ``skills`` as coming from ``origin``."""
        for found in skills:
            self.add(found, origin)

    def add(self, found: Skill, origin: str) -> None:
        """Register one skill; :class:`SkillError` if its capability is registered already by another origin."""
        known = self._by_capability.get(found.capability)
        if known is not None and known.skill.function is not found.function:
            raise SkillError(f"capability {found.capability!r} is registered twice: by {known.origin} and by {origin}; "
                             "rename one of them")
        self._by_capability[found.capability] = Registered(found, origin)

    def get(self, capability: str) -> Skill:
        """The skill for ``capability``; :class:`SkillError` naming the known capabilities if there is none."""
        found = self._by_capability.get(capability)
        if found is None:
            raise SkillError(f"no skill is registered for capability {capability!r}; known: {', '.join(self) or 'none'}"
                             " (a package registers skills in the agent_council.skills entry point group)")
        return found.skill

    def origin(self, capability: str) -> str:
        """Where the skill for ``capability`` was registered from."""
        return self._by_capability[capability].origin

    def unknown(self, capabilities: Iterable[str]) -> list[str]:
        """Those of ``capabilities`` no skill is registered for, in order."""
        return [c for c in capabilities if c not in self._by_capability]

    def __contains__(self, capability: object) -> bool:
        return capability in self._by_capability

    def __iter__(self) -> Iterator[str]:
        """The capabilities, sorted."""
        return iter(sorted(self._by_capability))

    def __len__(self) -> int:
        return len(self._by_capability)


def import_path(path: str) -> Any:
    """The object at ``package.module`` or ``package.module:name``; :class:`SkillError` saying why if it cannot be
    imported."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")) or (
            attribute and not all(part.isidentifier() for part in attribute.split("."))):
        raise SkillError(f"{path!r} is not a module path; write package.module or package.module:name")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - what a plug-in module raises on import is its own; say which and why
        raise SkillError(f"the skills module {module_name} fails to import ({type(exc).__name__}: {exc}); "
                         "check it is installed where the council runs, or fix it") from None
    for part in attribute.split(".") if attribute else ():
        try:
            found = getattr(found, part)
        except AttributeError:
            raise SkillError(f"{module_name} has no {attribute!r}; name a Skill, a list of skills, or the "
                             "module") from None
    return found


def skills_in(found: Any, where: str) -> list[Skill]:
    """The skills ``found`` holds: itself (a Skill), every Skill defined in it (a module), or its items (a list)."""
    if isinstance(found, Skill):
        return [found]
    if isinstance(found, types.ModuleType):
        return [value for value in vars(found).values() if isinstance(value, Skill)]
    if isinstance(found, list | tuple) and all(isinstance(item, Skill) for item in found):
        return list(found)
    raise SkillError(f"{where} is a {type(found).__name__}, not a skill: name a function decorated with @skill, a list "
                     "of them, or the module that defines them")
