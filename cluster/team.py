"""A team is configuration: which agents a council runs, in which roles, with which capabilities.

A team file is TOML (``examples/team.toml`` is the default, today's team)::

    skills = ["my_package.skills"]   # modules of skills besides the installed entry points (optional)

    [[agents]]
    name = "coder"                   # the agents are coder-1, coder-2, ...
    role = "coder"                   # what the policy's rules call it
    capabilities = ["files.write"]   # each must have a registered skill
    slots = 2                        # tasks each agent runs at once
    count = 1                        # how many agents of this kind

:func:`load_team` validates the file with pydantic and names the file, line and field of the
first problem; :func:`check_team` refuses, before anything starts, a capability no registered skill
carries out, and a role the policy never names for an agent that acts (its every action would be
denied at the gate).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from actors.skills import SkillRegistry
from events import CouncilError
from governance import globs
from governance.policy import Policy
from governance.toml_lines import TomlLines

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
AgentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
Capability = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class TeamError(CouncilError):
    """A team file, or a team, is not valid; the message names the file, line and field, and what to do."""


class AgentSpec(BaseModel):
    """One agent of a team, as the system starts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: AgentId
    role: Name = "worker"
    capabilities: Annotated[tuple[Capability, ...], Field(min_length=1)] = ("noop", "echo", "sleep", "fail")
    slots: int = Field(4, ge=1, le=256)
    where: str = Field("", exclude=True)
    """Where it was configured (a team file's line and entry), for errors; empty for an agent made in code."""


class AgentGroup(BaseModel):
    """One ``[[agents]]`` entry: ``count`` agents named ``<name>-1``, ``<name>-2``…, alike."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    role: Name
    capabilities: Annotated[tuple[Capability, ...], Field(min_length=1)]
    slots: int = Field(1, ge=1, le=256)
    count: int = Field(1, ge=1, le=64)

    def members(self, where: str = "") -> list[AgentSpec]:
        """The agents of this group; ``where`` says where the group was configured."""
        return [AgentSpec(agent_id=f"{self.name}-{i}", role=self.role, capabilities=self.capabilities,
                          slots=self.slots, where=where) for i in range(1, self.count + 1)]


class Team(BaseModel):
    """A validated team file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skills: tuple[Annotated[str, StringConstraints(min_length=1, max_length=300)], ...] = ()
    """Modules (``package.module`` or ``package.module:name``) whose skills this team uses, besides the installed
    ones."""
    agents: Annotated[tuple[AgentGroup, ...], Field(min_length=1)]

    _source: str = PrivateAttr("the team")
    _lines: TomlLines | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _names_unique(self) -> Team:
        seen: set[str] = set()
        for group in self.agents:
            if group.name in seen:
                raise ValueError(f'two [[agents]] entries are named "{group.name}"; give each its own name')
            seen.add(group.name)
        return self

    def members(self) -> list[AgentSpec]:
        """Every agent of the team, group by group, each knowing the file, line and entry it came from."""
        out = []
        for i, group in enumerate(self.agents):
            line = self._lines.line(("agents", i, "capabilities")) if self._lines is not None else None
            out += group.members(f'{self._source}{f" line {line}" if line else ""}: agents[{i}] ("{group.name}")')
        return out

    def with_workers(self, count: int | None = None, slots: int | None = None) -> Team:
        """This team with its ``worker`` group resized (``council up --agents N --slots S``)."""
        groups = [g.model_copy(update={k: v for k, v in (("count", count), ("slots", slots)) if v is not None})
                  if g.name == "worker" else g for g in self.agents]
        if not any(g.name == "worker" for g in self.agents) and (count or slots):
            raise TeamError('the team has no [[agents]] entry named "worker" for --agents/--slots to resize; '
                            "add one, or change the team file")
        return self.model_copy(update={"agents": tuple(groups)})


def load_team(path: str | Path) -> Team:
    """The team in the TOML file at ``path``; :class:`TeamError` naming the file, line and field if it is not valid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TeamError(f"there is no team file {path}; give the path of one (see examples/team.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TeamError(f"cannot read team file {path}: {exc}; check it is a readable UTF-8 text file") from None
    return parse_team(text, str(path))


def parse_team(text: str, source: str = "<team>") -> Team:
    """The team in TOML ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TeamError(f"{source}: TOML syntax error: {exc}; fix the syntax there") from None
    try:
        team = Team.model_validate(data)
    except ValidationError as exc:
        lines = TomlLines(text)
        errors = _meant(exc.errors(include_url=False))
        first = min(errors, key=lambda e: lines.line(_loc(e["loc"])) or 0)
        loc = _loc(first["loc"])
        line = lines.line(loc)
        more = len(errors) - 1
        raise TeamError(f"{source}{f' line {line}' if line else ''}: {_describe(loc, first, data)}"
                        + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")) from None
    team._source, team._lines = source, TomlLines(text)
    return team


def check_team(team: Team | Sequence[AgentSpec], registry: SkillRegistry, policy: Policy | None,
               source: str = "the team") -> None:
    """Refuse a team that cannot work: an unknown capability, or an acting agent in a role the policy never names.

    ``policy`` is the policy in force (or the one about to be); with none, roles are not checked.
    """
    members = team.members() if isinstance(team, Team) else list(team)
    for member in members:
        where = member.where or f"{source}: agent {member.agent_id}"
        unknown = registry.unknown(member.capabilities)
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(registry), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise TeamError(f"{where}: no skill is registered for capability {unknown[0]!r}{hint}; known: "
                            f"{', '.join(registry)}. Skills come from installed packages (the agent_council.skills "
                            "entry point group) and the team's `skills` modules")
        acting = [c for c in member.capabilities if registry.get(c).acts]
        if acting and policy is not None and not _named(policy, member.role):
            named = sorted({r for rule in policy.rules for r in rule.roles if r != "*"})
            raise TeamError(f"{where}: role {member.role!r} is named by no rule of the policy {policy.name!r}, so the "
                            f"gate would deny everything its acting skills ({', '.join(acting)}) do; use a role the "
                            f"policy names ({', '.join(named) or 'none'}) or add rules for {member.role!r}")


def _named(policy: Policy, role: str) -> bool:
    """Whether a rule of ``policy`` names ``role`` by a pattern more specific than ``*``."""
    return any(r != "*" and globs.match_name(role, r) for rule in policy.rules for r in rule.roles)


def _meant(errors: list[Any]) -> list[Any]:
    """The errors worth reporting: a field missing because it was misspelt is reported as the misspelling only, and
    a list emptied by its own bad items as those items."""
    misspelt = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            known = list(AgentGroup.model_fields) if len(error["loc"]) > 2 else list(Team.model_fields)
            closest = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
            misspelt |= {(*error["loc"][:-1], close) for close in closest}
    locs = [tuple(e["loc"]) for e in errors]
    return [e for e in errors
            if not (e["type"] == "missing" and tuple(e["loc"]) in misspelt)
            and not (e["type"] == "too_short" and any(len(o) > len(e["loc"]) and o[:len(e["loc"])] == tuple(e["loc"])
                                                      for o in locs))]


def _loc(loc: tuple[int | str, ...]) -> tuple[str | int, ...]:
    return tuple(part for part in loc if part != "[key]")


def _describe(loc: tuple[str | int, ...], error: dict[str, object], data: object) -> str:
    """One problem of a team file, in words."""
    where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "the team"
    if loc and loc[0] == "agents" and len(loc) > 1 and isinstance(loc[1], int):
        agents = data.get("agents") if isinstance(data, dict) else None
        entry = agents[loc[1]] if isinstance(agents, list) and loc[1] < len(agents) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        rest = ".".join(str(p) for p in loc[2:])
        where = f'agents[{loc[1]}]{f" ({chr(34)}{name}{chr(34)})" if isinstance(name, str) else ""}' + (
            f' field "{rest}"' if rest else "")
    kind = error.get("type")
    if kind == "extra_forbidden":
        known = list(AgentGroup.model_fields) if len(loc) > 2 else list(Team.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        parent = where.rsplit(" field ", 1)[0] if " field " in where else "the team"
        hint = f' (did you mean "{close[0]}"?)' if close else f"; expected one of {', '.join(known)}"
        return f'{parent} has an unknown field "{loc[-1]}"{hint}'
    if kind == "missing":
        return f"{where} is missing; add it"
    message = str(error.get("msg", "is not valid"))
    if kind == "string_pattern_mismatch":
        message = "must be lower-case letters, digits, '_' or '-', starting with a letter"
    return f"{where}: {message[:1].lower() + message[1:]}"
