"""The policy: who may do what, where, and what needs approvals or a vote.

A policy is a TOML file (see ``examples/policy.toml``) validated into a frozen :class:`Policy`.
Anything wrong in it — an unknown field, a bad pattern, an approver nobody defined — is refused
with one :class:`PolicyError` naming the file, the line and the field. A policy is known by its
:attr:`Policy.hash`, the SHA-256 of its canonical validated form, so comments and layout never
change it.

:meth:`Policy.decide` answers for one action. Rules match on action, role, resource and
environment; then a matching ``deny`` wins, else the first matching ``vote``, else the matching
``approve`` asking the most approvals, else a matching ``allow``; with none, the answer is deny.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
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
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from events.catalogue import Budget
from governance import globs
from governance.errors import PolicyError
from governance.keys import NAME as KEY_NAME
from governance.toml_lines import TomlLines

Effect = Literal["allow", "deny", "approve", "vote"]
EFFECTS: tuple[str, ...] = typing.get_args(Effect)
_RULE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DEFERRED = "governance.policy: consistency checked by parse_policy"


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``: ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, or a number of seconds; positive and finite.

    Raises ``ValueError`` (pydantic reports it against the field) for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'must be a duration like "90s", "15m", "2h", "1d" or a number of seconds, not {value!r}')
    if isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if not found:
            raise ValueError(f'{json.dumps(value)} is not a duration: write "90s", "15m", "2h", "1d" or a number of seconds')
        seconds = float(found[1]) * _UNITS[found[2]]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive, finite duration, not {value!r}")
    return seconds


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


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    """The ``[budgets]`` tables: per request, and per agent."""

    request: Limits | None = None
    agent: Limits | None = None


class Review(_Frozen):
    """The ``[review]`` table: how severe a static-review finding must be to stop a pipeline."""

    block_at: Literal["info", "low", "medium", "high", "critical"] = "high"


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
        where = f" on {', '.join(self.resources)}" if self.resources else ""
        where += f" in {', '.join(self.environments)}" if self.environments else ""
        if self.effect == "deny":
            return f"no role may {what}{where}" if "*" in self.roles else f"{who} may not {what}{where}"
        if self.effect == "approve":
            return f"{who} may {what}{where} once {self.approvals} of {', '.join(self.approvers or ())} approve"
        if self.effect == "vote":
            return (f"{who} may {what}{where} if {', '.join(self.voters or ())} vote for it "
                    f"(quorum {self.quorum}, within {_duration_text(self.deadline or 0)})")
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

    @property
    def allowed(self) -> bool:
        """Whether the action may run now, without approvals or a vote."""
        return self.effect == "allow"


class Policy(_Frozen):
    """A validated policy. Build one with :func:`parse_policy` or :func:`load_policy`."""

    policy: About
    approvers: dict[ApproverName, KeyName] = {}
    budgets: Budgets = Budgets()
    review: Review = Review()
    rules: tuple[Rule, ...] = ()

    _text: str = PrivateAttr(default="")
    _hash: str = PrivateAttr(default="")

    def model_post_init(self, context: Any) -> None:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        self._hash = hashlib.sha256(canonical.encode()).hexdigest()

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Policy:
        if not (info.context or {}).get(_DEFERRED):
            problems = _consistency_problems(self.model_dump(), lambda loc: None)
            if problems:
                raise ValueError(_with_count(problems[0].message, len(problems) - 1))
        return self

    @property
    def name(self) -> str:
        """The ``[policy]`` name."""
        return self.policy.name

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical validated policy; comments and formatting do not change it."""
        return self._hash

    @property
    def text(self) -> str:
        """The source text this policy was parsed from ("" if it was built otherwise); not part of the hash."""
        return self._text

    def decide(self, action: str, role: str, resource: str | None = None,
               environment: str | None = None) -> PolicyDecision:
        """What the policy says about ``role`` doing ``action`` on ``resource`` in ``environment``.

        Never raises: a resource that cannot be normalised, or any error while deciding, is a
        deny whose reason says why (fail closed).
        """
        try:
            return self._decide(action, role, resource, environment)
        except Exception as exc:  # fail closed: a decision that cannot be made is a denial
            try:
                detail = f"{type(exc).__name__}: {exc}"
            except Exception:
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
            return PolicyDecision("vote", rule.name, f'rule "{rule.name}" puts {what} to a vote of '
                                  f"{', '.join(rule.voters)} (quorum {rule.quorum}, within {_duration_text(rule.deadline)})",
                                  voters=rule.voters, quorum=rule.quorum, deadline_s=rule.deadline)
        if first["approve"]:
            rule = max(first["approve"], key=lambda r: r.approvals)  # max() keeps the first of equals
            return PolicyDecision("approve", rule.name, f'rule "{rule.name}" lets {what} run once '
                                  f"{rule.approvals} of {', '.join(rule.approvers)} approve",
                                  approvals=rule.approvals, approvers=rule.approvers)
        if first["allow"]:
            rule = first["allow"][0]
            return PolicyDecision("allow", rule.name, f'rule "{rule.name}" allows {what}')
        return PolicyDecision("deny", None, f"no rule allows {what} (deny by default)")

    def budget_for(self, scope: Literal["request", "agent"]) -> Budget:
        """The ``[budgets.<scope>]`` limits as a :class:`Budget`; a limit not set is None (unlimited)."""
        if scope not in ("request", "agent"):
            raise PolicyError(f'there is no budget scope {scope!r}; use "request" or "agent"')
        limits = getattr(self.budgets, scope) or Limits()
        return Budget(tokens=limits.tokens, money=None if limits.money is None else float(limits.money),
                      wall_time_s=limits.wall_time, actions=limits.actions)

    def summary(self) -> list[tuple[str, str, str]]:
        """Every rule as (effect, rule name, who may do what where), grouped allow, deny, approve, vote."""
        return [(effect, rule.name, rule.sentence()) for effect in EFFECTS for rule in self.rules if rule.effect == effect]

    def approver_names(self) -> tuple[str, ...]:
        """The names defined under ``[approvers]``, in file order."""
        return tuple(self.approvers)

    def key_names(self) -> dict[str, str]:
        """Each approver's key name in the council keyring (a copy)."""
        return dict(self.approvers)


# -- reading a policy --------------------------------------------------------------------------


def load_policy(path: str | Path) -> Policy:
    """The policy in the TOML file at ``path``; :class:`PolicyError` if it cannot be read or is not valid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"there is no policy file {path}; give the path of one (see examples/policy.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}; check it is a readable UTF-8 text file") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """The policy in TOML ``text``; ``source`` names it in errors.

    Raises one :class:`PolicyError` for the first problem by line ("``source`` line N: ...",
    naming the table and field), saying how many more there are.
    """
    if not isinstance(text, str):
        raise PolicyError(f"{source}: a policy must be TOML text, not {type(text).__name__}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: TOML syntax error: {exc}; fix the syntax there") from None
    lines = TomlLines(text)
    problems = _consistency_problems(data, lines.line)
    try:
        policy = Policy.model_validate(data, context={_DEFERRED: True})
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data)
    meant = {p.meant for p in problems if p.meant}
    problems = [p for p in problems if not (p.missing and p.loc in meant)]
    if problems:
        problems.sort(key=lambda p: lines.line(p.loc) or 0)
        first = problems[0]
        line = lines.line(first.loc)
        where = f"{source} line {line}" if line else source
        raise PolicyError(_with_count(f"{where}: {first.message}", len(problems) - 1))
    policy._text = text
    return policy


@dataclass(frozen=True, slots=True)
class _Problem:
    """One thing wrong in a policy: where (a path of keys and indexes) and what, in words."""

    loc: tuple[str | int, ...]
    message: str
    missing: bool = False
    """Whether it is a field left out, which a misspelt field (:attr:`meant`) explains instead."""
    meant: tuple[str | int, ...] | None = None
    """For an unknown field that looks like a misspelling: the location of the field meant."""


def _consistency_problems(data: Mapping[str, Any], line_of: Callable[[tuple], int | None]) -> list[_Problem]:
    """What is wrong across fields of policy ``data`` (raw TOML or a model dump); shapes are pydantic's to check.

    Rule names unique; an approve rule has approvals and approvers with k <= n, a vote rule
    voters, quorum <= len(voters) and a deadline, and no rule takes another effect's fields;
    every approver or voter named is defined; no two approvers share a key.
    """
    problems: list[_Problem] = []
    approvers = data.get("approvers")
    defined = approvers if isinstance(approvers, Mapping) else {}
    owners: dict[str, str] = {}
    for name, key in defined.items():
        if not isinstance(key, str):
            continue
        if key in owners:
            problems.append(_Problem(("approvers", name), f'[approvers] "{name}" uses key "{key}", as "{owners[key]}" '
                                    "does; each approver needs a key of their own"))
        owners.setdefault(key, name)
    rules = data.get("rules")
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules if isinstance(rules, list | tuple) else ()):
        if not isinstance(rule, Mapping):
            continue
        label = _rule_label(i, data)
        name = rule.get("name")
        if isinstance(name, str) and name in seen:
            first = line_of(("rules", seen[name], "name"))
            problems.append(_Problem(("rules", i, "name"), f'rule name "{name}" is used twice '
                                    f"(first at {f'line {first}' if first else f'rules[{seen[name]}]'}); "
                                    "give each rule its own name"))
        elif isinstance(name, str):
            seen[name] = i
        problems += _effect_problems(i, label, rule)
        for field in ("approvers", "voters"):
            named = rule.get(field)
            if not isinstance(named, list | tuple):
                continue
            for j, who in enumerate(named):
                if who in named[:j]:
                    problems.append(_Problem(("rules", i, field), f'{label} field "{field}" names "{who}" twice; name each once'))
                elif isinstance(who, str) and who not in defined:
                    where = ("approvers",) if "approvers" in data else ("rules", i, field)
                    problems.append(_Problem(where, f'[approvers] "{who}" is named by {label} but not defined; '
                                            f'add {who} = "<key name>" under [approvers]'))
    return problems


_EFFECT_FIELDS = {"approve": ("approvals", "approvers"), "vote": ("voters", "quorum", "deadline")}
_NEEDS = {"approvals": "how many must approve", "approvers": "who may approve, from [approvers]",
          "voters": "who votes, from [approvers]", "quorum": "how many votes decide", "deadline": 'like "24h"'}


def _effect_problems(i: int, label: str, rule: Mapping[str, Any]) -> list[_Problem]:
    effect = rule.get("effect")
    if effect not in EFFECTS:
        return []  # pydantic names the bad effect
    problems = []
    for owner, fields in _EFFECT_FIELDS.items():
        for field in fields:
            given = rule.get(field) is not None
            if owner == effect and not given:
                problems.append(_Problem(("rules", i, field), f'{label} field "{field}" is missing: {_a(owner)} rule '
                                        f"needs it ({_NEEDS[field]})", missing=True))
            elif owner != effect and given:
                problems.append(_Problem(("rules", i, field), f'{label} field "{field}": only {_a(owner)} rule takes '
                                        f'{field}; remove it or set effect = "{owner}"'))
    for count, names, noun in (("approvals", "approvers", "approvals"), ("quorum", "voters", "votes")):
        k, named = rule.get(count), rule.get(names)
        if effect == ("approve" if count == "approvals" else "vote") and _is_int(k) and isinstance(named, list | tuple) and named and k > len(named):
            problems.append(_Problem(("rules", i, count), f'{label} field "{count}": asks for {k} {noun} but names only '
                                    f"{len(named)} {names}; lower {count} or name more {names}"))
    return problems


def _a(effect: str) -> str:
    return f'{"an" if effect[0] in "aeiou" else "a"} "{effect}"'


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _with_count(message: str, more: int) -> str:
    return message if not more else f"{message} (and {more} more problem{'s' if more > 1 else ''})"


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- saying where ------------------------------------------------------------------------------


def _rule_label(i: int, data: Mapping[str, Any]) -> str:
    rules = data.get("rules")
    rule = rules[i] if isinstance(rules, list | tuple) and i < len(rules) else None
    name = rule.get("name") if isinstance(rule, Mapping) else None
    return f'rules[{i}] ("{name}")' if isinstance(name, str) else f"rules[{i}]"


def _where(loc: tuple, data: Mapping[str, Any]) -> str:
    head, rest = loc[0], loc[1:]
    if head == "rules" and rest and isinstance(rest[0], int):
        table, rest = _rule_label(rest[0], data), rest[1:]
    elif head == "budgets" and rest:
        table, rest = f"[budgets.{rest[0]}]", rest[1:]
    elif head in ("policy", "budgets", "approvers", "rules"):
        table = "[[rules]]" if head == "rules" else f"[{head}]"
    else:
        return f'top-level field "{head}"'
    if not rest:
        return table
    if head == "approvers":
        return f'{table} "{rest[0]}"'
    return f'{table} field "{rest[0]}"' + "".join(f"[{part}]" for part in rest[1:])


_TYPES = {"string_type": "a string", "int_type": "a whole number", "float_type": "a number", "bool_type": "true or false",
          "list_type": "a list", "tuple_type": "a list", "dict_type": "a table", "model_type": "a table",
          "model_attributes_type": "a table"}


def _pydantic_problems(error: ValidationError, data: Mapping[str, Any]) -> list[_Problem]:
    errors = error.errors()
    problems = []
    for err in errors:
        loc = tuple(part for part in err["loc"] if part != "[key]")
        if err["type"] == "too_short" and any(other["loc"][:len(loc)] == loc and len(other["loc"]) > len(loc)
                                              for other in errors):
            continue  # a list emptied by its own bad items: the items say what is wrong
        if err["type"] == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            known = _known_fields(parent)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else f"; expected one of {', '.join(known)}"
            where = _where(parent, data) if parent else "the policy"
            problems.append(_Problem(loc, f'{where} has an unknown field "{key}"{hint}',
                                    meant=parent + (close[0],) if close else None))
        elif err["type"] == "missing":
            problems.append(_Problem(loc, f"{_where(loc, data)} is missing; add it", missing=True))
        else:
            problems.append(_Problem(loc, f"{_where(loc, data)}: {_what(err)}"))
    return problems


def _what(err: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}, not {_kind(value)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}, not {_show(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "too_short":
        return "must not be empty" if isinstance(value, str) else "must list at least one item"
    if kind == "too_long":
        return f"is too long (at most {ctx.get('max_length')})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, not {_show(value)}"
    if kind == "finite_number":
        return f"must be a finite number, not {_show(value)}"
    message = str(err["msg"])
    return message[:1].lower() + message[1:]


def _kind(value: Any) -> str:
    for kind, name in ((bool, "true or false"), (str, "a string"), (int, "a whole number"), (float, "a number"),
                       (list, "a list"), (dict, "a table")):
        if isinstance(value, kind):
            return f"{name} ({_show(value)})" if kind in (str, int, float) else name
    return type(value).__name__


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _known_fields(loc: tuple) -> list[str]:
    model: Any = Policy
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        model = _model_in(field.annotation) if field else None
    return list(model.model_fields) if _is_model(model) else []


def _model_in(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    return next((found for arg in typing.get_args(annotation) if (found := _model_in(arg)) is not None), None)


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
