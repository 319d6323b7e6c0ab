"""Where each table and key of a TOML text starts: the line numbers ``tomllib`` does not keep.

Policy errors name the line of the field that is wrong; this finds it from the same location
pydantic reports (``("rules", 2, "effect")``).
"""

from __future__ import annotations

import json
import re

Loc = tuple[str | int, ...]
"""A place in a TOML document as pydantic reports it: keys and array indexes, outermost first."""


class TomlLines:
    """The line where each table and key of a TOML text starts (tomllib keeps no positions).

    Keys are located as pydantic locates errors: ``("rules", 2, "effect")``. The text has
    already parsed, so this only has to recognise headers and ``key =`` lines, and skip the
    inside of values that span lines (multi-line arrays, tables and strings).
    """

    def __init__(self, text: str) -> None:
        self._at: dict[Loc, int] = {}
        arrays: dict[Loc, int] = {}  # each [[array]] seen -> how many of its tables so far
        table: Loc = ()
        lines = text.splitlines()
        n = 0
        while n < len(lines):
            number, line = n + 1, lines[n].strip()
            n += 1
            if line.startswith("[["):
                parts, _ = _key_parts(line, 2)
                key = self._resolve(parts[:-1], arrays) + tuple(parts[-1:])
                arrays[key] = arrays.get(key, 0) + 1
                table = (*key, arrays[key] - 1)
                self._mark(table, number)
            elif line.startswith("["):
                table = self._resolve(_key_parts(line, 1)[0], arrays)
                self._mark(table, number)
            elif line and not line.startswith("#"):
                parts, end = _key_parts(line, 0)
                if parts and line[end:end + 1] == "=":
                    self._mark(table + tuple(parts), number)
                    n = _after_value(lines, n, line[end + 1:])

    def line(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest ancestor that is in the text; None if none is."""
        for size in range(len(loc), 0, -1):
            if loc[:size] in self._at:
                return self._at[loc[:size]]
        return None

    def _mark(self, loc: Loc, number: int) -> None:
        for size in range(1, len(loc) + 1):
            self._at.setdefault(loc[:size], number)

    @staticmethod
    def _resolve(parts: list[str], arrays: dict[Loc, int]) -> Loc:
        loc: Loc = ()
        for part in parts:
            loc += (part,)
            if loc in arrays:  # [a.b] under [[a]] means the latest table of a
                loc += (arrays[loc] - 1,)
        return loc


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_parts(line: str, i: int) -> tuple[list[str], int]:
    """The dotted key starting at ``line[i]`` as its parts, and where it ends (spaces skipped)."""
    parts: list[str] = []
    while True:
        i = len(line) - len(line[i:].lstrip(" \t"))
        if line[i:i + 1] in ('"', "'"):
            end = _string_end(line, i)
            raw = line[i:end]
            try:
                parts.append(json.loads(raw) if raw[0] == '"' else raw[1:-1])
            except ValueError:
                parts.append(raw[1:-1])
            i = end
        elif found := _BARE_KEY.match(line, i):
            parts.append(found.group())
            i = found.end()
        else:
            return parts, i
        i = len(line) - len(line[i:].lstrip(" \t"))
        if line[i:i + 1] != ".":
            return parts, i
        i += 1


def _string_end(text: str, i: int) -> int:
    quote, j = text[i], i + 1
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
        elif text[j] == quote:
            return j + 1
        else:
            j += 1
    return len(text)


def _after_value(lines: list[str], n: int, rest: str) -> int:
    """The index of the first line after a value that starts with ``rest`` and may go on from ``lines[n]``."""
    depth, quote, text = 0, "", rest
    while True:
        i = 0
        while i < len(text):
            if quote:
                if text.startswith(quote, i):
                    quote, i = "", i + 3
                else:
                    i += 2 if quote == '"""' and text[i] == "\\" else 1
            elif text[i] == "#":
                break
            elif text.startswith('"""', i) or text.startswith("'''", i):
                quote, i = text[i:i + 3], i + 3
            elif text[i] in "\"'":
                i = _string_end(text, i)
            else:
                depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(text[i], 0)
                i += 1
        if (not quote and depth <= 0) or n >= len(lines):
            return n
        text, n = lines[n], n + 1
