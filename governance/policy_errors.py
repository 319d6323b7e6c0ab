"""What is wrong in a policy, in words: each problem with its place, the first one by line, and how many more.

:func:`consistency_problems` finds what the model's field types cannot say (rules that need each
other's fields, approvers named but not defined, a legacy table beside its replacement);
:func:`validation_problems` turns pydantic's errors into sentences that name the table and the
field ("did you mean" for a misspelt one); :func:`refusal` picks the first problem by line and
counts the rest. Nothing here decides anything about actions: that is :mod:`governance.policy`.
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from pydantic import BaseModel, ValidationError

from governance.toml_lines import Loc, TomlLines

EFFECT_FIELDS: dict[str, tuple[str, ...]] = {"allow": (), "deny": (), "approve": ("approvals", "approvers"),
                                             "vote": ("voters", "quorum", "deadline")}
"""Each effect a rule may have, and the fields only a rule of that effect takes (and must have)."""

_NEEDS = {"approvals": "how many must approve", "approvers": "who may approve, from [approvers]",
          "voters": "who votes, from [approvers]", "quorum": "how many votes decide", "deadline": 'like "24h"'}
_LEGACY_REVIEW = "block_at"
"""The one field of the legacy ``[review]`` table (see :func:`governance.policy.parse_policy`)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a policy: where (a path of keys and indexes) and what, in words."""

    loc: Loc
    message: str
    missing: bool = False
    """Whether it is a field left out, which a misspelt field (:attr:`meant`) explains instead."""
    meant: Loc | None = None
    """For an unknown field that looks like a misspelling: the location of the field meant."""


def refusal(problems: list[Problem], lines: TomlLines, source: str) -> str | None:
    """The message refusing a policy with ``problems``: the first by line ("``source`` line N: ...") and how
    many more there are; None if there are none. A missing field explained by a misspelt one is not counted."""
    meant = {p.meant for p in problems if p.meant}
    problems = sorted((p for p in problems if not (p.missing and p.loc in meant)), key=lambda p: lines.line(p.loc) or 0)
    if not problems:
        return None
    first = problems[0]
    line = lines.line(first.loc)
    where = f"{source} line {line}" if line else source
    return with_count(f"{where}: {first.message}", len(problems) - 1)


def with_count(message: str, more: int) -> str:
    """``message``, saying how many ``more`` problems there are (if any)."""
    return message if not more else f"{message} (and {more} more problem{'s' if more > 1 else ''})"


# -- across fields -------------------------------------------------------------------------------


def consistency_problems(data: Mapping[str, Any], line_of: Callable[[Loc], int | None]) -> list[Problem]:
    """What is wrong across fields of policy ``data`` (raw TOML or a model dump); shapes are pydantic's to check.

    Rule names unique; an approve rule has approvals and approvers with k <= n, a vote rule
    voters, quorum <= len(voters) and a deadline, and no rule takes another effect's fields;
    every approver or voter named is defined; no two approvers share a key; a legacy ``[review]``
    table holds only ``block_at`` and does not repeat ``[tool.pipeline] review_block_at``.
    """
    problems = _approver_problems(data) + _legacy_problems(data)
    approvers = data.get("approvers")
    defined = approvers if isinstance(approvers, Mapping) else {}
    rules = data.get("rules")
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules if isinstance(rules, list | tuple) else ()):
        if not isinstance(rule, Mapping):
            continue
        label = rule_label(i, data)
        name = rule.get("name")
        if isinstance(name, str) and name in seen:
            first = line_of(("rules", seen[name], "name"))
            problems.append(Problem(("rules", i, "name"), f'rule name "{name}" is used twice '
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
                    problems.append(Problem(("rules", i, field),
                                            f'{label} field "{field}" names "{who}" twice; name each once'))
                elif isinstance(who, str) and who not in defined:
                    where: Loc = ("approvers",) if "approvers" in data else ("rules", i, field)
                    problems.append(Problem(where, f'[approvers] "{who}" is named by {label} but not defined; '
                                           f'add {who} = "<key name>" under [approvers]'))
    return problems


def _approver_problems(data: Mapping[str, Any]) -> list[Problem]:
    approvers = data.get("approvers")
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    for name, key in (approvers.items() if isinstance(approvers, Mapping) else ()):
        if not isinstance(key, str):
            continue
        if key in owners:
            problems.append(Problem(("approvers", name), f'[approvers] "{name}" uses key "{key}", as "{owners[key]}" '
                                   "does; each approver needs a key of their own"))
        owners.setdefault(key, name)
    return problems


def _legacy_problems(data: Mapping[str, Any]) -> list[Problem]:
    if "review" not in data:
        return []
    review = data["review"]
    if not isinstance(review, Mapping):
        return [Problem(("review",), f"[review]: must be a table, not {_kind(review)}")]
    problems = [Problem(("review", key), f'[review] has an unknown field "{key}"; it takes only "{_LEGACY_REVIEW}" '
                                         f'(write [tool.pipeline] review_block_at instead)')
                for key in review if key != _LEGACY_REVIEW]
    tool = data.get("tool")
    pipeline = tool.get("pipeline") if isinstance(tool, Mapping) else None
    if _LEGACY_REVIEW in review and isinstance(pipeline, Mapping) and "review_block_at" in pipeline:
        problems.append(Problem(("review", _LEGACY_REVIEW), "[review] block_at and [tool.pipeline] review_block_at "
                                "both set the pipeline's review threshold; keep only [tool.pipeline] review_block_at"))
    return problems


def _effect_problems(i: int, label: str, rule: Mapping[str, Any]) -> list[Problem]:
    effect = rule.get("effect")
    if effect not in EFFECT_FIELDS:
        return []  # pydantic names the bad effect
    problems = []
    for owner, fields in EFFECT_FIELDS.items():
        for field in fields:
            given = rule.get(field) is not None
            if owner == effect and not given:
                problems.append(Problem(("rules", i, field), f'{label} field "{field}" is missing: {_a(owner)} rule '
                                        f"needs it ({_NEEDS[field]})", missing=True))
            elif owner != effect and given:
                problems.append(Problem(("rules", i, field), f'{label} field "{field}": only {_a(owner)} rule takes '
                                        f'{field}; remove it or set effect = "{owner}"'))
    for count, names, noun, owner in (("approvals", "approvers", "approvals", "approve"),
                                      ("quorum", "voters", "votes", "vote")):
        k, named = rule.get(count), rule.get(names)
        if effect == owner and _is_int(k) and isinstance(named, list | tuple) and named and k > len(named):
            problems.append(Problem(("rules", i, count), f'{label} field "{count}": asks for {k} {noun} but names only '
                                    f"{len(named)} {names}; lower {count} or name more {names}"))
    return problems


def _a(effect: str) -> str:
    return f'{"an" if effect[0] in "aeiou" else "a"} "{effect}"'


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# -- saying where --------------------------------------------------------------------------------


def rule_label(i: int, data: Mapping[str, Any]) -> str:
    """How messages name rule ``i``: ``rules[2] ("deploy-prod")``, or ``rules[2]`` without a name."""
    rules = data.get("rules")
    rule = rules[i] if isinstance(rules, list | tuple) and i < len(rules) else None
    name = rule.get("name") if isinstance(rule, Mapping) else None
    return f'rules[{i}] ("{name}")' if isinstance(name, str) else f"rules[{i}]"


def _where(loc: Loc, data: Mapping[str, Any]) -> str:
    head, rest = loc[0], loc[1:]
    if head == "rules" and rest and isinstance(rest[0], int):
        table, rest = rule_label(rest[0], data), rest[1:]
    elif head in ("budgets", "tool") and rest:
        table, rest = f"[{head}.{rest[0]}]", rest[1:]
    elif head in ("policy", "budgets", "approvers", "rules", "tool"):
        table = "[[rules]]" if head == "rules" else f"[{head}]"
    else:
        return f'top-level field "{head}"'
    if not rest:
        return table
    if head == "approvers":
        return f'{table} "{rest[0]}"'
    return f'{table} field "{rest[0]}"' + "".join(f"[{part}]" for part in rest[1:])


# -- pydantic's errors, in words -----------------------------------------------------------------


_TYPES = {"string_type": "a string", "int_type": "a whole number", "float_type": "a number",
          "bool_type": "true or false", "list_type": "a list", "tuple_type": "a list", "dict_type": "a table",
          "model_type": "a table", "model_attributes_type": "a table"}


def validation_problems(error: ValidationError, data: Mapping[str, Any], model: type[BaseModel]) -> list[Problem]:
    """``error`` (from validating ``data`` as ``model``) as problems, one per error, each naming its table and field.

    A list emptied by its own bad items is reported by those items alone; an unknown field says
    which field it probably means, or which fields there are.
    """
    errors = error.errors()
    problems = []
    for err in errors:
        loc = tuple(part for part in err["loc"] if part != "[key]")
        if err["type"] == "too_short" and any(other["loc"][:len(loc)] == loc and len(other["loc"]) > len(loc)
                                              for other in errors):
            continue
        if err["type"] == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            known = _known_fields(model, parent)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else f"; expected one of {', '.join(known)}"
            where = _where(parent, data) if parent else "the policy"
            problems.append(Problem(loc, f'{where} has an unknown field "{key}"{hint}',
                                    meant=(*parent, close[0]) if close else None))
        elif err["type"] == "missing":
            problems.append(Problem(loc, f"{_where(loc, data)} is missing; add it", missing=True))
        else:
            problems.append(Problem(loc, f"{_where(loc, data)}: {_what(err)}"))
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


def _known_fields(model: type[BaseModel], loc: Loc) -> list[str]:
    found: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = found.model_fields.get(part) if _is_model(found) else None
        found = _model_in(field.annotation) if field else None
    return list(found.model_fields) if _is_model(found) else []


def _model_in(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    return next((found for arg in typing.get_args(annotation) if (found := _model_in(arg)) is not None), None)


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
