"""The policy: who may do what, where, and what needs approvals or a vote.

A policy is a TOML file (see ``examples/policy.toml``) validated into a frozen :class:`Policy`.
Anything wrong in it — an unknown field, a bad pattern, an approver nobody defined — is refused
with one :class:`PolicyError` naming the file, the line and the field (the wording is
:mod:`governance.policy_errors`'). A policy is known by its :attr:`Policy.hash`, the SHA-256 of its
canonical validated form, so comments and layout never change it; the policy in force is known by
the hash its adoption recorded (:func:`in_force`).

:meth:`Policy.decide` answers for one action. Rules match on action, role, resource and
environment; then a matching ``deny`` wins, else the first matching ``vote``, else the matching
``approve`` asking the most approvals, else a matching ``allow``; with none, the answer is deny.

Other parts of the system keep their own settings in ``[tool.<name>]`` tables (as
``pyproject.toml`` does): governed with the policy, part of its hash, never read here.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictStr,
    ValidationInfo,
    model_validator,
)

from events.catalogue import Budget, PolicyAdopted
from governance import globs
from governance.confinement import SandboxTable
from governance.errors import PolicyError
from governance.keys import NAME as KEY_NAME
from governance.policy_errors import consistency_problems
from governance.quantities import duration_text, parse_duration
from governance.review_rules import ReviewsTable
from governance.toml_config import parse_toml, read_config, validated, with_count
from governance.toml_lines import TomlLines

Effect = Literal["allow", "deny", "approve", "vote"]
EFFECTS: tuple[str, ...] = typing.get_args(Effect)
_RULE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_DEFERRED = "governance.policy: consistency checked by parse_policy"


def _toml_value(value: Any) -> Any:
    """``value`` if it is a TOML value (a string, number, boolean, date or time, or an array or table of them)."""
    if isinstance(value, str | int | float | datetime.date | datetime.time):  # bool is an int; datetime a date
        return value
    if isinstance(value, list | tuple):
        return [_toml_value(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: _toml_value(item) for key, item in value.items()}
    raise ValueError(f"must be a TOML value (a string, number, boolean, date or time, or an array or table of "
                     f"them), not {type(value).__name__}")


def _checked(check: Callable[[Any], Any]) -> AfterValidator:
    def validate(value: Any) -> Any:
        try:
            return check(value)
        except PolicyError as exc:  # pydantic reports ValueError against the field's location
            raise ValueError(str(exc)) from None
    return AfterValidator(validate)


def _named(kind: str, pattern: re.Pattern[str]) -> AfterValidator:
    def validate(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{json.dumps(value)} is not {kind}: use lowercase letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        return value
    return AfterValidator(validate)


Duration = Annotated[float, BeforeValidator(parse_duration)]
NamePattern = Annotated[StrictStr, _checked(globs.check_name_pattern)]
Glob = Annotated[StrictStr, _checked(globs.check_glob)]
ApproverName = Annotated[StrictStr, _named("an approver name", KEY_NAME)]
KeyName = Annotated[StrictStr, _named("a key name", KEY_NAME)]
RuleName = Annotated[StrictStr, _named("a rule name", _RULE_NAME)]
Count = Annotated[int, Field(ge=0, strict=True)]
Money = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
Positive = Annotated[int, Field(ge=1, strict=True)]
TomlValue = Annotated[Any, AfterValidator(_toml_value)]


class _Frozen(BaseModel):
    # "constants": a NaN or an infinity in a [tool.*] table keeps its own canonical form (not null).
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class About(_Frozen):
    """The ``[policy]`` table."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    description: StrictStr = ""


class Limits(_Frozen):
    """One ``[budgets.*]`` table; a field left out is not limited."""

    tokens: Count | None = None
    money: Money | None = None
    wall_time: Duration | None = None
    actions: Count | None = None


class Budgets(_Frozen):
    """The ``[budgets]`` tables: per request, per agent, and what one extension grants."""

    request: Limits | None = None
    agent: Limits | None = None
    extension: Limits | None = None
    """What one extension granted under a ``budget.extend`` rule adds, in the fields that ran out (a field left out:
    as much as the warrant was issued with)."""


class Rule(_Frozen):
    """One ``[[rules]]`` entry. Cross-field requirements (approve needs approvers...) are the policy's to check."""

    name: RuleName
    description: StrictStr = ""
    actions: Annotated[tuple[NamePattern, ...], Field(min_length=1)]
    roles: Annotated[tuple[NamePattern, ...], Field(min_length=1)]
    resources: Annotated[tuple[Glob, ...], Field(min_length=1)] | None = None
    environments: Annotated[tuple[NamePattern, ...], Field(min_length=1)] | None = None
    effect: Effect
    approvals: Positive | None = None
    approvers: Annotated[tuple[ApproverName, ...], Field(min_length=1)] | None = None
    voters: Annotated[tuple[ApproverName, ...], Field(min_length=1)] | None = None
    quorum: Positive | None = None
    deadline: Duration | None = None
    network: StrictBool = False
    """Whether the commands of the actions this rule lets through may reach the network (default: none)."""

    def applies(self, action: str, role: str, path: str | None, environment: str | None) -> bool:
        """Whether this rule speaks about the action. ``path`` must be normalised already."""
        if not any(globs.match_name(action, p) for p in self.actions):
            return False
        if not any(globs.match_name(role, p) for p in self.roles):
            return False
        if self.resources is not None and (path is None or not any(globs.match(path, p) for p in self.resources)):
            return False
        return self.environments is None or (
            environment is not None and any(globs.match_name(environment, p) for p in self.environments))

    def sentence(self) -> str:
        """Who may do what where, in words."""
        who = "any role" if "*" in self.roles else ", ".join(self.roles)
        what = "any action" if "*" in self.actions else ", ".join(self.actions)
        what += " (with network)" if self.network else ""
        where = f" on {', '.join(self.resources)}" if self.resources else ""
        where += f" in {', '.join(self.environments)}" if self.environments else ""
        if self.effect == "deny":
            return f"no role may {what}{where}" if "*" in self.roles else f"{who} may not {what}{where}"
        if self.effect == "approve":
            return f"{who} may {what}{where} once {self.approvals} of {', '.join(self.approvers or ())} approve"
        if self.effect == "vote":
            return (f"{who} may {what}{where} if {', '.join(self.voters or ())} vote for it "
                    f"(quorum {self.quorum}, within {duration_text(self.deadline or 0)})")
        return f"{who} may {what}{where}"


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The policy's answer for one action; ``reason`` is a sentence fit for the log."""

    effect: Effect
    rule: str | None
    reason: str
    approvals: int = 0
    approvers: tuple[str, ...] = ()
    voters: tuple[str, ...] = ()
    quorum: int = 0
    deadline_s: float = 0.0
    network: bool = False
    """Whether the rule that let the action through grants its commands the network."""

    @property
    def allowed(self) -> bool:
        """Whether the action may run now, without approvals or a vote."""
        return self.effect == "allow"


class Policy(_Frozen):
    """A validated policy. Build one with :func:`parse_policy` or :func:`load_policy`."""

    policy: About
    approvers: dict[ApproverName, KeyName] = {}
    budgets: Budgets = Budgets()
    sandbox: SandboxTable = SandboxTable()
    """How commands are confined, and their limits (:mod:`governance.confinement`)."""
    reviews: ReviewsTable = ReviewsTable()
    """Which changes are reviewed before they are committed, by whom, by when (:mod:`governance.review_rules`)."""
    tool: dict[StrictStr, dict[StrictStr, TomlValue]] = {}
    """The ``[tool.<name>]`` tables: other parts' settings, validated only as TOML values, never read here."""
    rules: tuple[Rule, ...] = ()

    _text: str = PrivateAttr(default="")
    _hash: str = PrivateAttr(default="")

    def model_post_init(self, context: Any) -> None:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        self._hash = hashlib.sha256(canonical.encode()).hexdigest()

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Policy:
        if not (info.context or {}).get(_DEFERRED):
            problems = consistency_problems(self.model_dump(), lambda loc: None)
            if problems:
                raise ValueError(with_count(problems[0].message, len(problems) - 1))
        return self

    @property
    def name(self) -> str:
        """The ``[policy]`` name."""
        return self.policy.name

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical validated policy; comments and formatting do not change it.

        For the policy in force (:func:`in_force`), the hash its adoption recorded.
        """
        return self._hash

    @property
    def text(self) -> str:
        """The source text this policy was parsed from ("" if it was built otherwise); not part of the hash."""
        return self._text

    def tool_table(self, name: str) -> dict[str, Any]:
        """A copy of the ``[tool.<name>]`` table (empty if the policy has none); what it means is its owner's to say."""
        return copy.deepcopy(self.tool.get(name, {}))

    def decide(self, action: str, role: str, resource: str | None = None,
               environment: str | None = None) -> PolicyDecision:
        """What the policy says about ``role`` doing ``action`` on ``resource`` in ``environment``.

        Never raises: a resource that cannot be normalised, or any error while deciding, is a
        deny whose reason says why (fail closed).
        """
        try:
            return self._decide(action, role, resource, environment)
        except Exception as exc:  # noqa: BLE001 - fail closed: a decision that cannot be made is a denial
            try:
                detail = f"{type(exc).__name__}: {exc}"
            except Exception:  # noqa: BLE001 - str() of a failing exception may itself raise
                detail = type(exc).__name__
            return PolicyDecision("deny", None, f"the policy could not decide ({detail}); denied, failing closed")

    def _decide(self, action: str, role: str, resource: str | None, environment: str | None) -> PolicyDecision:
        for kind, name in (("action", action), ("role", role), ("environment", environment)):
            if (name is not None or kind != "environment") and not globs.match_name(name, "*"):
                return PolicyDecision("deny", None, f"{kind} {name!r} is not a name (lowercase letters, digits, "
                                      "'.', '_', '-'); denied")
        path = None
        if resource is not None:
            try:
                path = globs.normalize_path(resource)
            except PolicyError as exc:
                return PolicyDecision("deny", None, f"resource refused: {exc}")
        what = f"{action}" + (f' on "{path}"' if path else "") + (f' in "{environment}"' if environment else "")
        what += f' for role "{role}"'
        matching = [r for r in self.rules if r.applies(action, role, path, environment)]
        first = {effect: [r for r in matching if r.effect == effect] for effect in EFFECTS}
        if first["deny"]:
            rule = first["deny"][0]
            return PolicyDecision("deny", rule.name, f'rule "{rule.name}" denies {what}')
        if first["vote"]:
            rule = first["vote"][0]
            voters, deadline = rule.voters or (), rule.deadline or 0.0
            return PolicyDecision("vote", rule.name, f'rule "{rule.name}" puts {what} to a vote of '
                                  f"{', '.join(voters)} (quorum {rule.quorum}, within {duration_text(deadline)})",
                                  voters=voters, quorum=rule.quorum or 0, deadline_s=deadline, network=rule.network)
        if first["approve"]:
            rule = max(first["approve"], key=lambda r: r.approvals or 0)  # max() keeps the first of equals
            approvers = rule.approvers or ()
            return PolicyDecision("approve", rule.name, f'rule "{rule.name}" lets {what} run once '
                                  f"{rule.approvals} of {', '.join(approvers)} approve",
                                  approvals=rule.approvals or 0, approvers=approvers, network=rule.network)
        if first["allow"]:
            rule = first["allow"][0]
            return PolicyDecision("allow", rule.name, f'rule "{rule.name}" allows {what}', network=rule.network)
        return PolicyDecision("deny", None, f"no rule allows {what} (deny by default)")

    def budget_for(self, scope: Literal["request", "agent", "extension"]) -> Budget:
        """The ``[budgets.<scope>]`` limits (or, for ``extension``, amounts) as a :class:`Budget`; a field not set is
        None (unlimited; for an extension, not fixed)."""
        if scope not in ("request", "agent", "extension"):
            raise PolicyError(f'there is no budget scope {scope!r}; use "request", "agent" or "extension"')
        limits = getattr(self.budgets, scope) or Limits()
        return Budget(tokens=limits.tokens, money=None if limits.money is None else float(limits.money),
                      wall_time_s=limits.wall_time, actions=limits.actions)

    def summary(self) -> list[tuple[str, str, str]]:
        """Every rule as (effect, rule name, who may do what where), grouped allow, deny, approve, vote."""
        return [(effect, rule.name, rule.sentence()) for effect in EFFECTS for rule in self.rules
                if rule.effect == effect]

    def approver_names(self) -> tuple[str, ...]:
        """The names defined under ``[approvers]``, in file order."""
        return tuple(self.approvers)

    def key_names(self) -> dict[str, str]:
        """Each approver's key name in the council keyring (a copy)."""
        return dict(self.approvers)


# -- reading a policy --------------------------------------------------------------------------


def load_policy(path: str | Path) -> Policy:
    """The policy in the TOML file at ``path``; :class:`PolicyError` if it cannot be read or is not valid."""
    return parse_policy(read_config(path, "policy", "examples/policy.toml", PolicyError), str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """The policy in TOML ``text``; ``source`` names it in errors.

    Raises one :class:`PolicyError` for the first problem by line ("``source`` line N: ...",
    naming the table and field), saying how many more there are.

    Legacy: a top-level ``[review]`` table with ``block_at = X`` (the pipeline's review
    threshold, before ``[tool.*]`` tables existed) is read as ``[tool.pipeline] review_block_at =
    X``. Policies adopted then are stored as text in the log and parsed again from it, so the old
    spelling must keep its meaning; writing both spellings in one policy is refused.
    """
    if not isinstance(text, str):
        raise PolicyError(f"{source}: a policy must be TOML text, not {type(text).__name__}")
    data = parse_toml(text, source, PolicyError)
    lines = TomlLines(text)
    problems = consistency_problems(data, lines.line)  # before the legacy spelling is rewritten: it is checked too
    _upgrade_legacy(data)
    policy = validated(Policy, data, lines, source, "the policy", PolicyError, problems=problems,
                       context={_DEFERRED: True})
    policy._text = text
    return policy


def in_force(adopted: PolicyAdopted) -> Policy:
    """The policy an adoption put in force: the text it recorded, parsed, known by the hash it recorded.

    The hash a ``policy.adopted`` event records names the policy in force everywhere — in the
    warrants issued under it, the approvals asked for and the actions authorised — so the parsed
    policy carries that hash, whatever this version's canonical form of the same text would hash
    to (the form changes when the schema does: ``[review]`` became ``[tool.pipeline]``). The text
    is what the log holds, and the log is tamper-evident. Raises :class:`PolicyError` if the text
    no longer parses. Callers cache the result by hash: parsing is not free.
    """
    policy = parse_policy(adopted.text, f"the policy in force ({adopted.policy_hash[:12]})")
    policy._hash = adopted.policy_hash
    return policy


def _upgrade_legacy(data: dict[str, Any]) -> None:
    """Move a legacy ``[review] block_at`` to ``[tool.pipeline] review_block_at``, in place (see :func:`parse_policy`).

    A ``[review]`` table that is malformed, or clashes with ``review_block_at``, is only removed:
    :func:`governance.policy_errors.consistency_problems` has reported it already.
    """
    review = data.pop("review", None)
    if not isinstance(review, Mapping) or set(review) != {"block_at"}:
        return
    tool = data.setdefault("tool", {})
    pipeline = tool.setdefault("pipeline", {}) if isinstance(tool, dict) else None
    if isinstance(pipeline, dict):
        pipeline.setdefault("review_block_at", review["block_at"])
