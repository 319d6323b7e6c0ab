"""What is wrong in a policy, in words, beyond what its field types say.

:func:`consistency_problems` finds what the model's field types cannot say (rules that need each
other's fields, approvers named but not defined, a legacy table beside its replacement), as
:class:`governance.toml_config.Problem` s that :func:`governance.toml_config.validated` refuses
together with pydantic's own, first by line. Nothing here decides anything about actions: that is
:mod:`governance.policy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from governance.review_rules import review_problems
from governance.toml_config import Problem, entry_label, kind_of
from governance.toml_lines import Loc

EFFECT_FIELDS: dict[str, tuple[str, ...]] = {"allow": (), "deny": (), "approve": ("approvals", "approvers"),
                                             "vote": ("voters", "quorum", "deadline")}
"""Each effect a rule may have, and the fields only a rule of that effect takes (and must have)."""

_NEEDS = {"approvals": "how many must approve", "approvers": "who may approve, from [approvers]",
          "voters": "who votes, from [approvers]", "quorum": "how many votes decide", "deadline": 'like "24h"'}
_LEGACY_REVIEW = "block_at"
"""The one field of the legacy ``[review]`` table (see :func:`governance.policy.parse_policy`)."""


# -- across fields -------------------------------------------------------------------------------


def consistency_problems(data: Mapping[str, Any], line_of: Callable[[Loc], int | None]) -> list[Problem]:
    """What is wrong across fields of policy ``data`` (raw TOML or a model dump); shapes are pydantic's to check.

    Rule names unique; an approve rule has approvals and approvers with k <= n, a vote rule
    voters, quorum <= len(voters) and a deadline, and no rule takes another effect's fields;
    every approver or voter named is defined; no two approvers share a key; a legacy ``[review]``
    table holds only ``block_at`` and does not repeat ``[tool.pipeline] review_block_at``.
    """
    problems = _approver_problems(data) + _legacy_problems(data) + review_problems(data)
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
        return [Problem(("review",), f"[review]: must be a table, not {kind_of(review)}")]
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
    if effect == "deny" and rule.get("network") is True:
        problems.append(Problem(("rules", i, "network"), f'{label} field "network": a "deny" rule grants nothing; '
                                "remove network, or grant it on the rule that allows the action"))
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
    return entry_label("rules", i, data)
