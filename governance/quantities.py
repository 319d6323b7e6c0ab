"""Durations and sizes as people write them in a policy (``"15m"``, ``"8GiB"``), read and written back.

The parsers raise ``ValueError`` with what was wrong and how to write it, which pydantic reports
against the field (file, line, table and field: :mod:`governance.toml_config`).
"""

from __future__ import annotations

import json
import math
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)")
_BYTES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _amount(value: object, pattern: re.Pattern[str], units: dict[str, int], noun: str, examples: str) -> float:
    """The number ``value`` means: a number as it is, or a string of a number and one of ``units``; positive and
    finite."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a {noun} like {examples}, not {value!r}")
    if isinstance(value, str):
        found = pattern.fullmatch(value.strip())
        if not found:
            raise ValueError(f"{json.dumps(value)} is not a {noun}: write {examples}")
        amount = float(found[1]) * units[found[2]]
    else:
        amount = float(value)
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"must be a positive, finite {noun}, not {value!r}")
    return amount


def parse_duration(value: object) -> float:
    """Seconds in ``value``: ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, or a number of seconds; positive and finite."""
    return _amount(value, _DURATION, _SECONDS, "duration", '"90s", "15m", "2h", "1d" or a number of seconds')


def whole_seconds(value: object) -> int:
    """:func:`parse_duration`, rounded to whole seconds, at least one (what a kernel limit takes)."""
    return max(1, round(parse_duration(value)))


def parse_size(value: object) -> int:
    """Bytes in ``value``: ``"512MiB"``, ``"8GiB"``, ``"1GB"``, or a number of bytes; at least one."""
    return max(1, int(_amount(value, _SIZE, _BYTES, "size", '"512MiB", "8GiB", "1GB" or a number of bytes')))


def duration_text(seconds: float) -> str:
    """Seconds as people write them in a policy: ``1d``, ``4h``, ``15m``, else ``90s``."""
    for unit in ("d", "h", "m"):
        size = _SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def size_text(size: int) -> str:
    """``size`` bytes in the largest binary unit that divides it evenly: ``8GiB``, ``512MiB``, ``1000B``."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= _BYTES[unit] and size % _BYTES[unit] == 0:
            return f"{size // _BYTES[unit]}{unit}"
    return f"{size}B"
