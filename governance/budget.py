"""Budgets: limits on model tokens, money, wall time and number of actions, and what was spent.

A :class:`events.catalogue.Budget` is used both ways: as limits (None = no limit) and as amounts
(None = nothing). Amounts add up field by field; a cost fits a limit when, for every limited
field, what was used plus the cost stays within it.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from events.catalogue import Budget
from governance.errors import WarrantError

EXTEND = "budget.extend"
"""The action a policy rule names to let a role's warrants ask for more budget when theirs runs out (see
:func:`governance.gate.check`)."""

NOTHING = Budget()
"""No amount of anything (as a cost), or no limit on anything (as a limit)."""

FIELDS = ("tokens", "money", "wall_time_s", "actions")
UNITS = {"tokens": "tokens", "money": "USD", "wall_time_s": "s", "actions": "actions"}


def add(a: Budget, b: Budget) -> Budget:
    """``a`` plus ``b``, field by field (None counts as nothing)."""
    values = {}
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        values[field] = None if x is None and y is None else (x or 0) + (y or 0)
    return Budget(**values)


Exact = tuple[str, ...]
"""An amount held exactly, one field of :data:`FIELDS` each: a fraction as text (``"1/3"``, ``"7"``), ``""`` for
nothing. Sums of exact amounts are the same in any order, so a total kept for records that were dropped, plus the
records still held, is the total of all of them."""

NO_AMOUNT: Exact = ("",) * len(FIELDS)


def exact(amount: Budget) -> Exact:
    """``amount`` exactly (a float's own binary value, not its decimal rendering)."""
    return tuple("" if (v := getattr(amount, f)) is None else str(Fraction(v)) for f in FIELDS)


def exact_add(a: Exact, b: Exact) -> Exact:
    """``a`` plus ``b``, exactly."""
    return tuple("" if not x and not y else str(Fraction(x or 0) + Fraction(y or 0)) for x, y in zip(a, b, strict=True))


def total(amounts: Iterable[Budget], exact_parts: Iterable[Exact] = ()) -> Budget:
    """The sum of ``amounts`` and ``exact_parts``, rounded once (to the nearest float where a field is one): the same
    whatever their order or grouping, unlike :func:`add` repeated."""
    sums: list[Fraction | None] = [None] * len(FIELDS)
    for amount in amounts:
        for i, f in enumerate(FIELDS):
            if (v := getattr(amount, f)) is not None:
                sums[i] = (sums[i] or Fraction(0)) + Fraction(v)
    for part in exact_parts:
        for i, x in enumerate(part):
            if x:
                sums[i] = (sums[i] or Fraction(0)) + Fraction(x)
    values: dict[str, Any] = {f: None if s is None else (int(s) if f in ("tokens", "actions") else float(s))
                              for f, s in zip(FIELDS, sums, strict=True)}
    return Budget(**values)


def subtract(a: Budget, b: Budget) -> Budget:
    """``a`` minus ``b`` for the fields ``a`` limits (never below zero); unlimited fields stay unlimited."""
    values = {}
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        values[field] = None if x is None else max(0, x - (y or 0))
    return Budget(**values)


def subtract_amount(a: Budget, b: Budget) -> Budget:
    """Amount ``a`` minus amount ``b``, field by field (None counts as nothing; never below zero)."""
    values = {}
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        values[field] = None if x is None and y is None else max(0, (x or 0) - (y or 0))
    return Budget(**values)


def over(used: Budget, cost: Budget, limit: Budget) -> str | None:
    """Why ``used + cost`` would exceed ``limit`` (the first field that would), or None if it fits."""
    for field in FIELDS:
        cap = getattr(limit, field)
        if cap is None:
            continue
        spent, wanted = getattr(used, field) or 0, getattr(cost, field) or 0
        if spent + wanted > cap:
            unit = UNITS[field]
            return (f"budget exhausted: {field} {_n(spent)} used + {_n(wanted)} asked > {_n(cap)} {unit} allowed")
    return None


def widen(limit: Budget, extra: Budget) -> Budget:
    """Limit ``limit`` raised by amount ``extra`` in every field it limits; an unlimited field stays unlimited."""
    values = {}
    for field in FIELDS:
        cap, more = getattr(limit, field), getattr(extra, field)
        values[field] = None if cap is None else cap + (more or 0)
    return Budget(**values)


def shortfall(used: Budget, cost: Budget, limit: Budget) -> Budget:
    """By how much ``used + cost`` exceeds ``limit``, in each field it exceeds (the others None: nothing)."""
    values: dict[str, Any] = {}
    for field in FIELDS:
        cap = getattr(limit, field)
        if cap is None:
            continue
        wanted = (getattr(used, field) or 0) + (getattr(cost, field) or 0)
        if wanted > cap:
            values[field] = wanted - cap
    return Budget(**values)


def extension(short: Budget, issued: Budget, fixed: Budget) -> Budget:
    """What one extension adds to a warrant ``short`` of budget (:func:`shortfall`): in each field it is short of,
    the policy's amount in ``fixed``, else as much as the warrant was ``issued`` with — never less than it lacks."""
    values: dict[str, Any] = {}
    for field in FIELDS:
        lacking = getattr(short, field)
        if lacking is not None:
            step = getattr(fixed, field)
            values[field] = max(lacking, getattr(issued, field) if step is None else step)
    return Budget(**values)


def render(amount: Budget) -> str:
    """``amount`` as ``tokens=1000,money=2.5`` (the fields it has, exactly), the form :func:`parse` reads."""
    return ",".join(f"{field}={getattr(amount, field)!r}" for field in FIELDS if getattr(amount, field) is not None)


def parse(text: str) -> Budget:
    """A budget from ``tokens=1000,money=2.5,wall_time_s=60,actions=10`` (the form budget votes and extensions
    carry); :class:`~governance.errors.WarrantError` names a field that is not one."""
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in FIELDS:
            raise WarrantError(f"unknown budget field {name!r}; use {', '.join(FIELDS)}")
        values[name] = float(value) if name in ("money", "wall_time_s") else int(value)
    return Budget(**values)


def smallest(a: Budget, b: Budget) -> Budget:
    """The tighter of two limits, field by field (None is no limit)."""
    values = {}
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        values[field] = y if x is None else x if y is None else min(x, y)
    return Budget(**values)


def _n(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
