"""Budgets: limits on model tokens, money, wall time and number of actions, and what was spent.

A :class:`events.catalogue.Budget` is used both ways: as limits (None = no limit) and as amounts
(None = nothing). Amounts add up field by field; a cost fits a limit when, for every limited
field, what was used plus the cost stays within it.
"""

from __future__ import annotations

from events.catalogue import Budget

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


def smallest(a: Budget, b: Budget) -> Budget:
    """The tighter of two limits, field by field (None is no limit)."""
    values = {}
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        values[field] = y if x is None else x if y is None else min(x, y)
    return Budget(**values)


def _n(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
