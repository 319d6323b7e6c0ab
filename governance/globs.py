"""Path and name patterns, as policies and warrants use them.

A *path* is workspace-relative and in normal form (:func:`normalize_path`): segments joined by
single ``/``, no ``.`` or ``..`` segments, never absolute, never the root itself. A path *glob*
(:func:`check_glob`) is matched against a path segment by segment:

- ``*`` matches any run of characters within one segment (never ``/``), dotfiles included;
- ``?`` matches one character within a segment;
- ``[abc]``, ``[a-z]`` and ``[!abc]`` match one character of (or not of) a class, never ``/``;
- ``**``, only as a whole segment, matches zero or more whole segments: ``a/**`` matches ``a``
  and everything under it, ``**/x`` matches ``x`` in any directory, ``**`` matches every path.

A *name* (an action such as ``file.write``, a role, an environment) is lowercase letters,
digits, ``.``, ``_`` and ``-``; a *name pattern* may also hold ``*``, which matches any run of
characters, dots included (``file.*``, ``*``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from governance.errors import PolicyError

_WILDCARDS = "*?["
_NAME = re.compile(r"[a-z0-9._-]+")
_NAME_PATTERN = re.compile(r"[a-z0-9._*-]+")
_MAX_NAME = 200


# -- paths -------------------------------------------------------------------------------------


def normalize_path(path: str) -> str:
    """``path`` in normal form (``./`` and repeated ``/`` collapsed, inner ``..`` resolved).

    Raises :class:`PolicyError` for a path that is not a string, empty, holds a NUL byte, is
    absolute, escapes the workspace with ``..``, or names the workspace root itself. ``..`` is
    resolved by text alone: symbolic links inside the workspace are the file tools' concern.
    """
    if not isinstance(path, str):
        raise PolicyError(f"a resource path must be a string, not {type(path).__name__}")
    if "\0" in path:
        raise PolicyError(f"path {path!r} contains a NUL byte; name the file without it")
    if not path:
        raise PolicyError("the resource path is empty; name a file or directory inside the workspace")
    if path.startswith("/"):
        raise PolicyError(f"path {path!r} is absolute; give it relative to the workspace root, "
                          f"like {path.lstrip('/') or 'src/app.py'!r}")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise PolicyError(f"path {path!r} escapes the workspace with '..'; name a path inside the workspace")
            segments.pop()
        else:
            segments.append(segment)
    if not segments:
        raise PolicyError(f"path {path!r} names the workspace root itself; name a file or directory inside it")
    return "/".join(segments)


def check_glob(pattern: str) -> str:
    """``pattern`` unchanged if it is a valid path glob (see the module docstring); else :class:`PolicyError`."""
    if not isinstance(pattern, str):
        raise PolicyError(f"a resource pattern must be a string, not {type(pattern).__name__}")
    if not pattern:
        raise PolicyError('the resource pattern is empty; use "**" for every path')
    if "\0" in pattern:
        raise PolicyError(f"resource pattern {pattern!r} contains a NUL byte; remove it")
    if pattern.startswith("/"):
        raise PolicyError(f"resource pattern {pattern!r} is absolute; patterns are relative to the workspace root, "
                          f"like {pattern.lstrip('/') or '**'!r}")
    for segment in pattern.split("/"):
        if segment == "":
            raise PolicyError(f"resource pattern {pattern!r} has an empty segment; remove the extra '/'")
        if segment == "..":
            raise PolicyError(f"resource pattern {pattern!r} contains '..'; patterns name paths inside the workspace")
        if segment == ".":
            raise PolicyError(f"resource pattern {pattern!r} contains a '.' segment; write it without './'")
        if segment != "**" and "**" in segment:
            raise PolicyError(f"resource pattern {pattern!r}: '**' must be a whole segment (like 'a/**/b'); "
                              "use '*' inside a segment")
        if segment != "**":
            _segment_tokens(segment, pattern)
    return pattern


def match(path: str, pattern: str) -> bool:
    """Whether ``path`` (normalised first) matches glob ``pattern``.

    :class:`PolicyError` if the path cannot be normalised or the pattern is not a valid glob.
    """
    return _path_regex(pattern).fullmatch(normalize_path(path) + "/") is not None


def covers(parent: str, child: str) -> bool:
    """Whether every path matching glob ``child`` also matches glob ``parent``.

    Sound but not complete: True is a proof, False may mean "could not tell". Warrants rely on
    the True side only, so a child warrant is never wider than its parent.
    """
    check_glob(parent)
    check_glob(child)
    if parent == child or parent == "**":
        return True
    if not any(c in child for c in _WILDCARDS):
        return match(child, parent)  # a literal child is exactly one path
    return _covers_segments(tuple(parent.split("/")), tuple(child.split("/")))


@lru_cache(maxsize=4096)
def _path_regex(pattern: str) -> re.Pattern[str]:
    # Matched against path + "/": each ordinary segment is "SEGMENT/", and "**" is "zero or
    # more whole segments", so the regex means exactly the segment-list semantics that
    # _covers_segments reasons about.
    check_glob(pattern)
    parts = []
    for segment in pattern.split("/"):
        if segment == "**":
            parts.append("(?:[^/]+/)*")
        else:
            parts.append("".join(_token_regex(t) for t in _segment_tokens(segment, pattern)) + "/")
    return re.compile("".join(parts))


_Token = tuple[Any, ...]
"""One token of a segment: ("lit", c), ("any",), ("star",) or ("class", negated, body regex)."""


def _segment_tokens(segment: str, pattern: str) -> tuple[_Token, ...]:
    tokens: list[_Token] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            tokens.append(("star",))
        elif c == "?":
            tokens.append(("any",))
        elif c == "[":
            end = segment.find("]", i + 1)
            if end < 0:
                raise PolicyError(f"resource pattern {pattern!r} has a '[' without its ']'; close the class or "
                                  "remove it")
            tokens.append(_class_token(segment[i + 1:end], pattern))
            i = end
        elif c == "]":
            raise PolicyError(f"resource pattern {pattern!r} has a ']' without its '['; remove it or open the class")
        else:
            tokens.append(("lit", c))
        i += 1
    return tuple(tokens)


def _class_token(body: str, pattern: str) -> _Token:
    negated = body.startswith("!")
    if negated:
        body = body[1:]
    if not body or "[" in body:
        raise PolicyError(f"resource pattern {pattern!r} has an empty or nested character class; "
                          "write a class like '[abc]', '[a-z]' or '[!a]'")
    items: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high:
                raise PolicyError(f"resource pattern {pattern!r} has the backwards range '{low}-{high}'; "
                                  f"write '{high}-{low}'")
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            items.append(re.escape(body[i]))
            i += 1
    return ("class", negated, "".join(items))


def _token_regex(token: _Token) -> str:
    kind = token[0]
    if kind == "lit":
        return re.escape(str(token[1]))
    if kind == "any":
        return "[^/]"
    if kind == "star":
        return "[^/]*"
    return f"[^/{token[2]}]" if token[1] else f"[{token[2]}]"


@lru_cache(maxsize=4096)
def _covers_segments(parent: tuple[str, ...], child: tuple[str, ...]) -> bool:
    # Both are segment lists of valid globs. Each ordinary segment matches exactly one path
    # segment and "**" any number of them, so lists cover lists when they can be aligned so
    # that every parent segment covers what it is aligned with.
    if not parent:
        return not child
    if not child:
        return all(p == "**" for p in parent)
    head = parent[0]
    if head == "**":
        return any(_covers_segments(parent[1:], child[i:]) for i in range(len(child) + 1))
    if child[0] == "**":
        return False  # one parent segment cannot take "any number of segments"
    return _segment_covers(head, child[0]) and _covers_segments(parent[1:], child[1:])


def _segment_covers(parent: str, child: str) -> bool:
    """Whether every segment matching ``child`` matches ``parent`` (neither is "**"); sound, conservative."""
    if parent == child or parent == "*":
        return True
    p_tokens, c_tokens = _segment_tokens(parent, parent), _segment_tokens(child, child)
    if all(t[0] == "lit" for t in c_tokens):
        return re.fullmatch("".join(_token_regex(t) for t in p_tokens), child) is not None
    if not any(t[0] == "star" for t in p_tokens + c_tokens):
        # Same length, one character each: token by token.
        return len(p_tokens) == len(c_tokens) and all(
            _token_covers(p, c) for p, c in zip(p_tokens, c_tokens, strict=True))
    stars = [i for i, t in enumerate(p_tokens) if t[0] == "star"]
    if len(stars) == 1 and all(t[0] in ("lit", "star") for t in p_tokens):
        # parent is PREFIX*SUFFIX (literals): every child string must start and end with them.
        # The child's literal head and tail are disjoint parts of each of its strings, since
        # at least one wildcard lies between them.
        head, tail = p_tokens[:stars[0]], p_tokens[stars[0] + 1:]
        c_head = _literal_run(c_tokens)
        c_tail = _literal_run(c_tokens[::-1])[::-1]
        return c_head[:len(head)] == head and len(c_tail) >= len(tail) and c_tail[len(c_tail) - len(tail):] == tail
    return False


def _literal_run(tokens: tuple[_Token, ...]) -> tuple[_Token, ...]:
    run = []
    for t in tokens:
        if t[0] != "lit":
            break
        run.append(t)
    return tuple(run)


def _token_covers(parent: _Token, child: _Token) -> bool:
    if parent == child or parent[0] == "any":
        return True
    if parent[0] == "class" and child[0] == "lit":
        return re.fullmatch(_token_regex(parent), child[1]) is not None
    return False


# -- names -------------------------------------------------------------------------------------


def check_name_pattern(pattern: str) -> str:
    """``pattern`` unchanged if it is a valid name pattern (``file.write``, ``file.*``, ``*``); else
    :class:`PolicyError`."""
    if not isinstance(pattern, str) or not _NAME_PATTERN.fullmatch(pattern) or len(pattern) > _MAX_NAME:
        raise PolicyError(f"{pattern!r} is not a name pattern: use up to {_MAX_NAME} lowercase letters, digits, "
                          "'.', '_', '-' and '*' (like 'file.write', 'file.*' or '*')")
    return pattern


def match_name(name: object, pattern: str) -> bool:
    """Whether ``name`` matches name pattern ``pattern``; ``*`` matches any characters, dots included.

    A ``name`` that is not a valid name (wrong characters, not a string) matches nothing.
    :class:`PolicyError` if ``pattern`` is not a valid name pattern.
    """
    regex = _name_regex(pattern)
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and regex.fullmatch(name) is not None


@lru_cache(maxsize=4096)
def _name_regex(pattern: str) -> re.Pattern[str]:
    check_name_pattern(pattern)
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
