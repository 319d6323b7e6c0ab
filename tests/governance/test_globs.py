"""Path and name patterns: normal paths, glob syntax, matching, and sound containment."""

from __future__ import annotations

import fnmatch
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance import globs
from governance.errors import PolicyError

# -- normalize_path ----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "normal"), [
    ("src/app.py", "src/app.py"),
    ("./src/app.py", "src/app.py"),
    ("src//app.py", "src/app.py"),
    ("src/./lib/../app.py", "src/app.py"),
    ("src/", "src"),
    (".env", ".env"),
    ("a/b/../../c", "c"),
])
def test_normalize_path_gives_the_normal_form(raw, normal):
    assert globs.normalize_path(raw) == normal


@pytest.mark.parametrize(("raw", "says"), [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("../secrets", "escapes the workspace"),
    ("src/../../x", "escapes the workspace"),
    ("src/a\0.py", "NUL"),
    (".", "workspace root"),
    ("src/..", "workspace root"),
    (None, "must be a string"),
])
def test_normalize_path_refuses_what_is_not_inside_the_workspace(raw, says):
    with pytest.raises(PolicyError, match=says):
        globs.normalize_path(raw)


# -- check_glob --------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["**", "*", "src/**", "**/*.py", "a/**/b", "src/[a-c]?.py", "[!.]*", ".git/**",
                                     "x-[a-]"])
def test_check_glob_accepts_valid_patterns(pattern):
    assert globs.check_glob(pattern) == pattern


@pytest.mark.parametrize(("pattern", "says"), [
    ("", "empty"),
    ("/src/**", "absolute"),
    ("src/../x", r"contains '\.\.'"),
    ("../x", r"contains '\.\.'"),
    ("./src", "'.' segment"),
    ("a//b", "empty segment"),
    ("src/", "empty segment"),
    ("a**", "whole segment"),
    ("src/**.py", "whole segment"),
    ("***", "whole segment"),
    ("src/[ab", "without its ']'"),
    ("src/ab]", "without its '\\['"),
    ("[]", "empty or nested"),
    ("[!]", "empty or nested"),
    ("[a[b]", "empty or nested"),
    ("[z-a]", "backwards range"),
    ("a\0b", "NUL"),
    (3, "must be a string"),
])
def test_check_glob_refuses_bad_patterns(pattern, says):
    with pytest.raises(PolicyError, match=says):
        globs.check_glob(pattern)


# -- match -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "pattern", "expected"), [
    ("src/app.py", "**", True),
    ("a/b/c", "**", True),
    ("src/app.py", "src/*", True),
    ("src/lib/app.py", "src/*", False),
    ("src", "src/*", False),
    ("src", "src/**", True),  # "**" is zero or more segments
    ("src/lib/app.py", "src/**", True),
    ("srcx/app.py", "src/**", False),
    ("app.py", "**/*.py", True),
    ("a/b/app.py", "**/*.py", True),
    ("a/b/app.pyc", "**/*.py", False),
    ("a/b", "a/**/b", True),
    ("a/x/y/b", "a/**/b", True),
    ("a/x/y/c", "a/**/b", False),
    (".env", "*", True),  # dotfiles are not special
    ("a/.env", "**/.env", True),
    ("ab", "a?", True),
    ("a/", "a?", False),
    ("abc", "a?", False),
    ("b1", "[ab][0-9]", True),
    ("c1", "[ab][0-9]", False),
    ("c", "[!ab]", True),
    ("a", "[!ab]", False),
    ("a/b", "a[!x]b", False),  # a class never matches "/"
    ("./src//app.py", "src/*.py", True),  # the path is normalised first
    ("src/a+b(1).py", "src/a+b(1).py", True),  # regex characters are literal
    ("src/aab(1).py", "src/a+b(1).py", False),
])
def test_match(path, pattern, expected):
    assert globs.match(path, pattern) is expected


def test_match_refuses_paths_outside_the_workspace_and_bad_patterns():
    with pytest.raises(PolicyError, match="escapes"):
        globs.match("src/../../etc/passwd", "**")
    with pytest.raises(PolicyError, match="whole segment"):
        globs.match("a", "a**")


def _reference_match(path: str, pattern: str) -> bool:
    def walk(parts: tuple[str, ...], segments: tuple[str, ...]) -> bool:
        if not parts:
            return not segments
        if parts[0] == "**":
            return any(walk(parts[1:], segments[i:]) for i in range(len(segments) + 1))
        return bool(segments) and fnmatch.fnmatchcase(segments[0], parts[0]) and walk(parts[1:], segments[1:])
    return walk(tuple(pattern.split("/")), tuple(path.split("/")))


# Patterns over a small alphabet: "a", "b", "*", "?" within segments, "**" as a segment, joined by "/".
_segment = st.lists(st.sampled_from(["a", "b", "*", "?"]), min_size=1, max_size=3).map(
    lambda pieces: re.sub(r"\*+", "*", "".join(pieces)))
_classy_segment = st.lists(st.sampled_from(["a", "b", "*", "?", "[ab]", "[!a]"]), min_size=1, max_size=3).map(
    lambda pieces: re.sub(r"\*+", "*", "".join(pieces)))
patterns = st.lists(st.one_of(st.just("**"), _segment), min_size=1, max_size=4).map("/".join)
classy_patterns = st.lists(st.one_of(st.just("**"), _classy_segment), min_size=1, max_size=4).map("/".join)
paths = st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=5).map("/".join)


@given(classy_patterns, paths)
def test_match_agrees_with_segment_by_segment_fnmatch(pattern, path):
    assert globs.match(path, pattern) == _reference_match(path, pattern)


# -- covers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("parent", "child"), [
    ("**", "src/**"),
    ("src/**", "src/**"),
    ("src/**", "src/lib/*.py"),
    ("src/**", "src"),
    ("src/**", "src/**/test_*.py"),
    ("src/*", "src/*.py"),
    ("src/*", "src/a?"),
    ("src/*.py", "src/test_*.py"),
    ("src/test_*", "src/test_a*.py"),
    ("*/*", "a/b"),
    ("a/**/b", "a/x/b"),
    ("**/*.py", "src/**/*.py"),
    ("?", "[ab]"),
    ("[a-c]", "b"),
    ("a?c", "a[xy]c"),
])
def test_covers_proves_containment(parent, child):
    assert globs.covers(parent, child)


@pytest.mark.parametrize(("parent", "child"), [
    ("src/**", "**"),
    ("src/*", "src/**"),
    ("src/*", "src/a/b"),
    ("src/*.py", "src/*"),
    ("a*", "b*"),
    ("a*b", "a*"),
    ("?", "*"),
    ("[ab]", "?"),
    ("src/**", "srcx/**"),
    ("*.py", "*/*.py"),
])
def test_covers_refuses_what_it_cannot_prove(parent, child):
    assert not globs.covers(parent, child)


def test_covers_refuses_invalid_patterns():
    with pytest.raises(PolicyError):
        globs.covers("src/**", "/etc/**")


# The two properties below assert only for the pairs covers() proves contained; each runs from a
# plain test that counts those, so it fails if the examples stop reaching the assertion.
PROVED = {"random paths": 0, "small universes": 0}


@settings(max_examples=300)
@given(patterns, patterns, paths)
def _covers_is_sound(parent, child, path):
    if globs.covers(parent, child) and globs.match(path, child):
        assert globs.match(path, parent)
        PROVED["random paths"] += 1


def test_covers_is_sound():
    before = PROVED["random paths"]
    _covers_is_sound()
    assert PROVED["random paths"] - before >= 20


_SEGMENTS = ["".join(p) for n in (1, 2) for p in itertools.product("abc", repeat=n)]
UNIVERSE = ["/".join(p) for n in (1, 2, 3) for p in itertools.product(_SEGMENTS, repeat=n)]


@settings(max_examples=200)
@given(classy_patterns, classy_patterns)
def _covers_is_sound_over_every_small_path(parent, child):
    if globs.covers(parent, child):
        matched = [x for x in UNIVERSE if globs.match(x, child)]
        assert all(globs.match(x, parent) for x in matched)
        PROVED["small universes"] += bool(matched)


def test_covers_is_sound_over_every_small_path():
    before = PROVED["small universes"]
    _covers_is_sound_over_every_small_path()
    assert PROVED["small universes"] - before >= 20


def test_covers_is_sound_for_every_pair_of_small_patterns():
    shapes = ["a", "b", "*", "?", "a*", "*a", "a?", "[ab]", "[!a]", "**"]
    candidates = [p for n in (1, 2) for p in map("/".join, itertools.product(shapes, repeat=n))]
    matched = {p: frozenset(x for x in UNIVERSE if globs.match(x, p)) for p in candidates}
    proved = 0
    for parent, child in itertools.product(candidates, repeat=2):
        if globs.covers(parent, child):
            proved += 1
            assert matched[child] <= matched[parent], (parent, child)
    assert proved > 1000  # conservative, yet not uselessly so


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "pattern", "expected"), [
    ("file.write", "file.write", True),
    ("file.write", "file.*", True),
    ("file.write", "*", True),
    ("file.write", "file.read", False),
    ("files.write", "file.*", False),
    ("git.push", "*.push", True),
    ("production", "prod*", True),
    ("staging", "prod*", False),
    ("File.Write", "*", False),  # not a name: matches nothing
    ("a*", "*", False),
    (None, "*", False),
])
def test_match_name(name, pattern, expected):
    assert globs.match_name(name, pattern) is expected


@pytest.mark.parametrize("pattern", ["", "File.write", "file write", "file.[wr]", "file.?", "a/b", "x" * 201, 5])
def test_check_name_pattern_refuses_what_names_cannot_hold(pattern):
    with pytest.raises(PolicyError, match="not a name pattern"):
        globs.check_name_pattern(pattern)
    with pytest.raises(PolicyError):
        globs.match_name("file.write", pattern)


@pytest.mark.parametrize("pattern", ["file.write", "file.*", "*", "deploy-prod_2", "*.run"])
def test_check_name_pattern_accepts_name_patterns(pattern):
    assert globs.check_name_pattern(pattern) == pattern
