"""A TOML configuration file validated with pydantic, and what is wrong with it in words.

The policy and the team file are both read this way: :func:`read_config` reads the file (saying
what to give if there is none), :func:`parse_toml` parses it, :func:`validated` validates it as
a pydantic model and refuses it with the first problem by line ("``source`` line N: ..."),
naming the table and field, and how many more there are.

Places are named from the model's own shape, so a new table is named right without a word
here: a table is ``[policy]``, a table of tables ``[budgets.request]`` or ``[tool.pipeline]``, a
table of names ``[approvers] "alice"``, an entry of an array of tables ``rules[2] ("deploy")``
(its ``name``, if it has one), anything else a ``top-level field``. A file's own checks across
fields (see :mod:`governance.policy_errors`) add their :class:`Problem` s to pydantic's.
"""

from __future__ import annotations

import difflib
import json
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from governance.toml_lines import Loc, TomlLines

M = TypeVar("M", bound=BaseModel)
Refuse = Callable[[str], Exception]
"""Makes the error a file is refused with, from its message (the file's own :class:`events.CouncilError`)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a configuration file: where (a path of keys and indexes) and what, in words."""

    loc: Loc
    message: str
    missing: bool = False
    """Whether it is a field left out, which a misspelt field (:attr:`meant`) explains instead."""
    meant: Loc | None = None
    """For an unknown field that looks like a misspelling: the location of the field meant."""


# -- reading -------------------------------------------------------------------------------------


def read_config(path: str | Path, kind: str, example: str, error: Refuse) -> str:
    """The text of the ``kind`` file (``"policy"``, ``"team"``) at ``path``; ``error`` if there is none or it cannot be
    read, saying what to give (``example``, a path like ``examples/team.toml``)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"there is no {kind} file {path}; give the path of one (see {example})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {kind} file {path}: {exc}; check it is a readable UTF-8 text file") from None


def parse_toml(text: str, source: str, error: Refuse) -> dict[str, Any]:
    """The TOML document in ``text``; ``error`` naming ``source`` if it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: TOML syntax error: {exc}; fix the syntax there") from None


def validated(model: type[M], data: Mapping[str, Any], lines: TomlLines, source: str, noun: str, error: Refuse, *,
              problems: Iterable[Problem] = (), context: Any = None) -> M:
    """``data`` (parsed from ``source``) as ``model``, or ``error`` with the :func:`refusal` of pydantic's problems and
    the file's own ``problems`` together; ``noun`` names the whole file in messages (``"the team"``)."""
    found = list(problems)
    try:
        result = model.model_validate(data, context=context)
    except ValidationError as exc:
        found += validation_problems(exc, data, model, noun)
        raise error(refusal(found, lines, source) or f"{source}: {exc}") from None
    message = refusal(found, lines, source)
    if message is not None:
        raise error(message)
    return result


# -- the refusal ---------------------------------------------------------------------------------


def refusal(problems: list[Problem], lines: TomlLines, source: str) -> str | None:
    """The message refusing a file with ``problems``: the first by line ("``source`` line N: ...") and how
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


# -- saying where --------------------------------------------------------------------------------


def entry_label(array: str, i: int, data: Mapping[str, Any]) -> str:
    """How messages name entry ``i`` of the array of tables ``array``: ``rules[2] ("deploy-prod")``, or ``rules[2]``
    if it has no name."""
    entries = data.get(array)
    entry = entries[i] if isinstance(entries, list | tuple) and i < len(entries) else None
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return f'{array}[{i}] ("{name}")' if isinstance(name, str) else f"{array}[{i}]"


def place(loc: Loc, data: Mapping[str, Any], model: type[BaseModel], noun: str) -> str:
    """How messages name ``loc`` of ``data`` (a ``model``): its table, then its field (``[policy] field "name"``)."""
    if not loc:
        return noun
    head, rest = str(loc[0]), loc[1:]
    field = model.model_fields.get(head)
    shape = _shape(field.annotation) if field else "value"
    if shape == "array" and rest and isinstance(rest[0], int):
        table, rest = entry_label(head, rest[0], data), rest[1:]
    elif rest and (shape == "tables" or (shape == "table" and _shape(_field(model, (head, rest[0]))) == "table")):
        table, rest = f"[{head}.{rest[0]}]", rest[1:]
    elif shape == "array":
        table = f"[[{head}]]"
    elif shape != "value":
        table = f"[{head}]"
    else:
        return f'top-level field "{head}"' + "".join(f"[{part}]" for part in rest)
    if not rest:
        return table
    if shape == "names":
        return f'{table} "{rest[0]}"'
    return f'{table} field "{rest[0]}"' + "".join(f"[{part}]" for part in rest[1:])


def _shape(annotation: Any) -> str:
    """What a field of this type is in TOML: a ``table``, a table of ``tables``, a table of ``names`` (to values), an
    ``array`` of tables, or a ``value``."""
    if _is_model(annotation):
        return "table"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return "tables" if _is_model(args[1]) or typing.get_origin(args[1]) is dict else "names"
    if origin in (list, tuple) and args:
        return "array" if _is_model(args[0]) else "value"
    return next((shape for arg in args if (shape := _shape(arg)) != "value"), "value")


def _field(model: type[BaseModel], loc: Loc) -> Any:
    """The type at ``loc`` of ``model`` (indexes skipped), or None if ``loc`` is not one of its fields."""
    found: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        inner = _model_in(found)
        field = inner.model_fields.get(part) if inner is not None else None
        if field is None:
            return None
        found = field.annotation
    return found


# -- pydantic's errors, in words -----------------------------------------------------------------


_TYPES = {"string_type": "a string", "int_type": "a whole number", "float_type": "a number",
          "bool_type": "true or false", "list_type": "a list", "tuple_type": "a list", "dict_type": "a table",
          "model_type": "a table", "model_attributes_type": "a table"}


def validation_problems(error: ValidationError, data: Mapping[str, Any], model: type[BaseModel],
                        noun: str) -> list[Problem]:
    """``error`` (from validating ``data`` as ``model``) as problems, one per error, each naming its table and field;
    ``noun`` names the whole file (``"the policy"``).

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
            problems.append(Problem(loc, f'{place(parent, data, model, noun)} has an unknown field "{key}"{hint}',
                                    meant=(*parent, close[0]) if close else None))
        elif err["type"] == "missing":
            problems.append(Problem(loc, f"{place(loc, data, model, noun)} is missing; add it", missing=True))
        elif loc:
            problems.append(Problem(loc, f"{place(loc, data, model, noun)}: {_what(err)}"))
        else:  # a check across the whole file says what it found itself
            problems.append(Problem(loc, _what(err)))
    return problems


def _what(err: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}, not {kind_of(value)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}, not {_show(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must be at least {least} characters long"
    if kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if kind == "too_short":
        return "must not be empty" if isinstance(value, str) else "must list at least one item"
    if kind == "too_long":
        return f"is too long (at most {ctx.get('max_length')})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, not {_show(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, not {_show(value)}"
    if kind == "finite_number":
        return f"must be a finite number, not {_show(value)}"
    message = str(err["msg"])
    return message[:1].lower() + message[1:]


def kind_of(value: Any) -> str:
    """What ``value`` is, in TOML's words: ``a string ("x")``, ``a whole number (3)``, ``a table``..."""
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
    found = _model_in(_field(model, loc))
    return list(found.model_fields) if found is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if _is_model(annotation):
        return typing.cast(type[BaseModel], annotation)
    return next((found for arg in typing.get_args(annotation) if (found := _model_in(arg)) is not None), None)


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
