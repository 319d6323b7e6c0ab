"""A team is configuration: which agents a council runs, in which roles, with which capabilities.

A team file is TOML (``examples/team.toml`` is the default, today's team)::

    skills = ["my_package.skills"]   # modules of skills besides the installed entry points (optional)

    [[agents]]
    name = "coder"                   # the agents are coder-1, coder-2, ...
    role = "coder"                   # what the policy's rules call it
    capabilities = ["files.write"]   # each must have a registered skill
    slots = 2                        # tasks each agent runs at once
    count = 1                        # how many agents of this kind
    num_cpus = 0                     # where on a Ray cluster they run (optional; actors.placement):
    resources = { ssd = 1 }          #   CPUs and GPUs they reserve, custom resources of `ray start
    labels = { zone = "eu-1" }       #   --resources`, node labels of `ray start --labels`

:func:`load_team` validates the file with pydantic and names the file, line and field of the
first problem; :func:`check_team` refuses, before anything starts, a capability no registered skill
carries out, and a role the policy never names for an agent that acts (its every action would be
denied at the gate).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator

from actors.llm.config import ModelsConfig
from actors.placement import Placement
from actors.skills import SkillRegistry
from events import CouncilError
from governance import globs
from governance.policy import Policy
from governance.toml_config import parse_toml, read_config, validated
from governance.toml_lines import TomlLines
from monitoring.learner import LearnerSettings

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("must be lower-case letters, digits, '_' or '-', starting with a letter (at most 40), "
                         f"not {json.dumps(value)}")
    return value


Name = Annotated[str, AfterValidator(_name)]
AgentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
Capability = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class TeamError(CouncilError):
    """A team file, or a team, is not valid; the message names the file, line and field, and what to do."""


class AgentSpec(Placement):
    """One agent of a team, as the system starts it, and where on the cluster it may run (:class:`Placement`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: AgentId
    role: Name = "worker"
    capabilities: Annotated[tuple[Capability, ...], Field(min_length=1)] = ("noop", "echo", "sleep", "fail")
    slots: int = Field(4, ge=1, le=256)
    where: str = Field("", exclude=True)
    """Where it was configured (a team file's line and entry), for errors; empty for an agent made in code."""


class AgentGroup(Placement):
    """One ``[[agents]]`` entry: ``count`` agents named ``<name>-1``, ``<name>-2``…, alike, placed alike."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    role: Name
    capabilities: Annotated[tuple[Capability, ...], Field(min_length=1)]
    slots: int = Field(1, ge=1, le=256)
    count: int = Field(1, ge=1, le=64)

    def members(self, where: str = "") -> list[AgentSpec]:
        """The agents of this group; ``where`` says where the group was configured."""
        return [AgentSpec(agent_id=f"{self.name}-{i}", role=self.role, capabilities=self.capabilities,
                          slots=self.slots, where=where, **dict(self.placement()))
                for i in range(1, self.count + 1)]


class Team(BaseModel):
    """A validated team file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skills: tuple[Annotated[str, StringConstraints(min_length=1, max_length=300)], ...] = ()
    """Modules (``package.module`` or ``package.module:name``) whose skills this team uses, besides the installed
    ones."""
    agents: Annotated[tuple[AgentGroup, ...], Field(min_length=1)]
    models: ModelsConfig = ModelsConfig()
    """Which model each role thinks with, prices, fallbacks and where the providers are (``[models]``)."""
    learning: LearnerSettings = LearnerSettings()
    """When the learner changes a strategy (``[learning]``: ``malformed_after``, ``lease_after``…)."""

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

    def members(self, leave_out: Collection[str] = ()) -> list[AgentSpec]:
        """Every agent of the team, group by group, each knowing the file, line and entry it came from; none of the
        groups named in ``leave_out`` (``members(leave_out={"worker"})``: the pipeline's agents alone)."""
        out = []
        for i, group in enumerate(self.agents):
            if group.name in leave_out:
                continue
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
    return parse_team(read_config(path, "team", "examples/team.toml", TeamError), str(path))


def parse_team(text: str, source: str = "<team>") -> Team:
    """The team in TOML ``text``; ``source`` names it in errors (the first problem by line, and how many more)."""
    lines = TomlLines(text)
    team = validated(Team, parse_toml(text, source, TeamError), lines, source, "the team", TeamError)
    team._source, team._lines = source, lines
    return team


def check_team(team: Team | Sequence[AgentSpec], registry: SkillRegistry, policy: Policy | None,
               source: str = "the team") -> None:
    """Refuse a team that cannot work: an unknown capability, an acting agent in a role the policy never names, or
    agents of a role the policy's ``[reviews]`` names none of whom can answer a review.

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
    if policy is not None:
        _check_reviewers(members, policy, source)


def _check_reviewers(members: Sequence[AgentSpec], policy: Policy, source: str) -> None:
    """Refuse a team with agents of a role the policy's ``[reviews]`` asks to review, none of whom can answer a
    review (capability ``review.answer``): every review would wait for its deadline."""
    for reviewer in policy.reviews.reviewers:
        role = reviewer.removeprefix("role:")
        if role == reviewer:
            continue  # a person
        of_role = [m for m in members if m.role == role]
        if of_role and not any("review.answer" in m.capabilities for m in of_role):
            raise TeamError(f"{source}: the policy's [reviews] has {reviewer} review security-sensitive changes, but "
                            f"no agent of role {role!r} has the capability review.answer; add it to their "
                            "capabilities (or name other reviewers in the policy)")


def _named(policy: Policy, role: str) -> bool:
    """Whether a rule of ``policy`` names ``role`` by a pattern more specific than ``*``."""
    return any(r != "*" and globs.match_name(role, r) for rule in policy.rules for r in rule.roles)
