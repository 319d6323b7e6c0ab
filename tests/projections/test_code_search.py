"""Search over a source tree: words and identifier fragments, ranking, line numbers, tree walking, hostile queries."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from projections.code_search import CHUNK_LINES, CHUNK_OVERLAP, SNIPPET_LINES, CodeIndex, CodeSearchError, Hit
from projections.errors import ProjectionError

AUTH = '''"""Sessions for the web app."""

import jwt


def issue_jwt_token(user: str) -> str:
    """A signed token for user."""
    return jwt.encode({"sub": user}, "secret")


class JwtToken:
    def __init__(self, raw: str) -> None:
        self.raw = raw


class HTTPServer2:
    pass
'''

FILLER = "def helper(value):\n    return value * 2\n\n\nRESULT = helper(21)\n"


def lines_of(text: str) -> list[str]:
    """The file's lines as editors number them (line n is ``lines_of(text)[n - 1]``)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


@pytest.fixture
def index() -> Iterator[CodeIndex]:
    with CodeIndex() as ix:
        ix.add("app/auth.py", AUTH)
        for n in range(5):
            ix.add(f"app/filler{n}.py", FILLER)
        yield ix


def paths(hits: list[Hit]) -> list[str]:
    return [hit.path for hit in hits]


# -- finding --------------------------------------------------------------------------------------


def test_finds_a_function_by_its_words(index: CodeIndex) -> None:
    hits = index.search("issue jwt token")
    assert hits[0].path == "app/auth.py"
    assert "def issue_jwt_token" in hits[0].snippet


@pytest.mark.parametrize("fragment", ["wt_to", "sue_jw", "JWT_TOK", "_jwt_"])
def test_finds_a_function_by_a_fragment_of_its_name(index: CodeIndex, fragment: str) -> None:
    hits = index.search(fragment)
    assert paths(hits) == ["app/auth.py"]
    assert "issue_jwt_token" in hits[0].snippet


@pytest.mark.parametrize(("query", "identifier"), [
    ("jwt token", "issue_jwt_token"),
    ("jwt token", "JwtToken"),
    ("JwtToken", "issue_jwt_token"),   # a camelCase query finds the snake_case spelling
    ("issue_jwt_token", "issue_jwt_token"),
    ("http server", "HTTPServer2"),
    ("Server2", "HTTPServer2"),
])
def test_camel_and_snake_case_identifiers_are_split_into_words(query: str, identifier: str) -> None:
    ix = CodeIndex()
    ix.add("one.py", f"x = 1\n{identifier} = 2\n")
    ix.add("other.py", FILLER)
    decoy = " ".join(f"pre{word.lower()}post" for word in query.split())   # the words, only inside longer ones
    ix.add("decoy.py", f"{decoy}\n" * 3)
    hits = ix.search(query)
    assert paths(hits) == ["one.py", "decoy.py"]
    assert hits[0].line == 2
    assert hits[0].snippet == f"{identifier} = 2"


def test_the_split_parts_are_whole_words_not_substrings() -> None:
    ix = CodeIndex()
    ix.add("camel.py", "class JwtToken:\n    pass\n")
    ix.add("substring.py", "tokenizer = retokenize(tokenizers)\n")
    assert paths(ix.search("token"))[0] == "camel.py"


def test_unicode_text_is_searchable() -> None:
    ix = CodeIndex()
    ix.add("notes.md", "Le café est prêt.\n日本語のテキスト\n")
    assert paths(ix.search("cafe")) == ["notes.md"]   # unicode61 folds accents
    assert paths(ix.search("日本語")) == ["notes.md"]


# -- ranking --------------------------------------------------------------------------------------


def test_a_file_that_defines_and_uses_a_term_ranks_above_one_that_mentions_it_once() -> None:
    ix = CodeIndex()
    ix.add("mentions.py", "# the old code called refresh_session here\nimport os\n\nprint(os.getcwd())\n")
    ix.add("defines.py", "def refresh_session(store):\n    store.touch()\n\n\n"
                         "def login(store):\n    refresh_session(store)\n    return refresh_session\n")
    for n in range(8):
        ix.add(f"filler{n}.py", FILLER)
    for query in ["refresh_session", "refresh session", "refresh", "session"]:
        assert paths(ix.search(query))[:2] == ["defines.py", "mentions.py"], query


def test_a_whole_word_match_ranks_above_a_substring_only_one() -> None:
    ix = CodeIndex()
    ix.add("substring.py", "tokenizer = tokenizer_for(tokenizer)\n" * 10)
    ix.add("word.py", "import os\ntoken = os.environ['TOKEN']\n")
    hits = ix.search("token")
    assert paths(hits) == ["word.py", "substring.py"]
    assert hits[0].score > hits[1].score


def test_hits_are_at_most_one_per_chunk_and_limited() -> None:
    ix = CodeIndex()
    text = "".join(f"needle_{n} = {n}\n" for n in range(200))
    ix.add("many.py", text)
    hits = ix.search("needle", limit=50)
    chunks = len(ix)
    assert len(hits) == chunks   # every chunk matches, and each gives one hit
    assert len({(hit.path, hit.line) for hit in hits}) == len(hits)
    assert len(ix.search("needle", limit=3)) == 3


def test_a_term_in_two_overlapping_chunks_gives_one_hit() -> None:
    ix = CodeIndex()
    lines = ["pass"] * 40
    lines[CHUNK_LINES - CHUNK_OVERLAP + 1] = "overlapping_marker = 1"   # inside the first two chunks
    ix.add("overlap.py", "\n".join(lines) + "\n")
    hits = ix.search("overlapping_marker")
    assert [hit.line for hit in hits] == [CHUNK_LINES - CHUNK_OVERLAP + 2]


# -- line numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [1, 2, CHUNK_LINES - CHUNK_OVERLAP, CHUNK_LINES, CHUNK_LINES + 1, 57, 149, 150])
def test_hit_lines_point_at_the_matching_line(at: int) -> None:
    lines = [f"filler_line_{n} = {n}" for n in range(1, 151)]
    lines[at - 1] = "    target_marker = compute(target_marker)"
    text = "\n".join(lines) + "\n"
    ix = CodeIndex()
    ix.add("long.py", text)
    (hit,) = ix.search("target_marker")
    assert lines_of(text)[hit.line - 1] == "    target_marker = compute(target_marker)"
    assert hit.snippet.split("\n") == lines_of(text)[hit.line - 1:hit.line - 1 + len(hit.snippet.split("\n"))]


def test_the_snippet_runs_from_the_best_line_to_the_last_matching_line_near_it() -> None:
    text = "import os\n\n\ndef load(path):\n    data = read(path)\n    return parse(data)\n\n\nx = 1\n"
    ix = CodeIndex()
    ix.add("load.py", text)
    (hit,) = ix.search("path data")
    assert hit.line == 5   # the only line holding both terms
    assert hit.snippet == "    data = read(path)\n    return parse(data)"
    assert len(hit.snippet.split("\n")) <= SNIPPET_LINES


def test_lines_are_counted_at_newlines_only() -> None:
    text = "first\r\n\x0csecond\r\nvertical\x0btab\r\nthird_marker\r\n"
    ix = CodeIndex()
    ix.add("crlf.txt", text)
    (hit,) = ix.search("third_marker")
    assert hit.line == 4
    assert hit.snippet == "third_marker" == lines_of(text)[3]


# -- replacing and forgetting ---------------------------------------------------------------------


def test_re_adding_a_path_replaces_it() -> None:
    ix = CodeIndex()
    ix.add("a.py", "".join(f"alpha_{n} = {n}\n" for n in range(100)))
    long_chunks = len(ix)
    ix.add("a.py", "beta = 1\n")
    assert ix.search("alpha") == []
    assert ix.search("lpha_") == []
    assert paths(ix.search("beta")) == ["a.py"]
    assert len(ix) == 1 < long_chunks
    assert ix.files() == ["a.py"]


def test_remove_forgets_a_path_and_ignores_an_unknown_one() -> None:
    ix = CodeIndex()
    ix.add("a.py", "gamma_ray = 1\n")
    ix.add("b.py", "gamma_ray = 2\n")
    ix.remove("a.py")
    ix.remove("never-added.py")
    assert paths(ix.search("gamma_ray")) == ["b.py"]
    assert ix.files() == ["b.py"]
    ix.remove("b.py")
    assert ix.search("gamma") == []
    assert ix.files() == []
    assert len(ix) == 0


def test_many_replacements_leave_the_index_consistent() -> None:
    ix = CodeIndex()
    for round_ in range(30):
        ix.add("churn.py", f"version_{round_} = {round_}\nshared_marker = True\n")
    assert len(ix) == 1
    assert [hit.snippet for hit in ix.search("shared_marker")] == ["shared_marker = True"]
    assert paths(ix.search("version_29")) == ["churn.py"]
    assert ix.search("version_3") == []   # "version_3" is not inside "version_29"


def test_chunks_are_overlapping_windows_of_lines() -> None:
    ix = CodeIndex()
    ix.add("hundred.py", "x = 1\n" * 100)
    ix.add("empty.py", "")
    step = CHUNK_LINES - CHUNK_OVERLAP
    assert len(ix) == 1 + -(-(100 - CHUNK_LINES) // step)
    assert ix.files() == ["empty.py", "hundred.py"]


# -- a source tree --------------------------------------------------------------------------------


def write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


def test_from_tree_indexes_text_files_and_skips_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    marker = "skip_marker = 1\n"
    write(outside / "secret.py", marker)
    write(root / "src" / "app.py", marker)
    write(root / "src" / "deep" / "nested" / "mod.py", marker)
    write(root / "README.md", "# readme\n" + marker)
    write(root / "exactly_limit.txt", marker.ljust(1000, "#"))
    for skipped in [".git/config", "node_modules/pkg/index.js", "src/__pycache__/app.py", ".venv/lib/site.py",
                    "venv/lib/site.py", ".council/log.txt", "myenv/lib/python3.11/site.py"]:
        write(root / skipped, marker)
    write(root / "myenv" / "pyvenv.cfg", "home = /usr/bin\n")
    write(root / "big.txt", marker * 200)
    write(root / "binary.dat", marker.encode() + b"\0" + marker.encode())
    write(root / "latin1.txt", (marker + "caf\xe9\n").encode("latin-1"))
    os.symlink(outside / "secret.py", root / "link_to_outside.py")
    os.symlink(outside, root / "linked_dir", target_is_directory=True)
    os.symlink(root / "src" / "app.py", root / "link_inside.py")

    ix = CodeIndex.from_tree(root, max_file_bytes=1000)

    assert ix.files() == ["README.md", "exactly_limit.txt", "src/app.py", "src/deep/nested/mod.py"]
    assert sorted(paths(ix.search("skip_marker"))) == ix.files()


def test_from_tree_refuses_what_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CodeSearchError, match="not a directory"):
        CodeIndex.from_tree(tmp_path / "missing")
    write(tmp_path / "file.py", "x = 1\n")
    with pytest.raises(CodeSearchError, match="not a directory"):
        CodeIndex.from_tree(tmp_path / "file.py")


def test_hits_from_a_tree_point_at_lines_read_back_from_disk(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "mod.py", "".join(f"value_{n} = {n}\n" for n in range(60)) + "def locate_me():\n")
    (hit,) = CodeIndex.from_tree(tmp_path).search("locate_me")
    assert hit.path == "pkg/mod.py"
    assert (tmp_path / hit.path).read_text().splitlines()[hit.line - 1] == "def locate_me():"


# -- hostile queries ------------------------------------------------------------------------------

HOSTILE = ['"', "'", '""', "NEAR(", "NEAR(a b, 2)", "a OR", "OR", "AND", "NOT", "a NOT", "*", "a*", "^a", "col:term",
           "body:jwt", "{body parts}: jwt", "-x", "- -", "(((", ")))", "a + b", "\\", "\0", "日本語", "🎉 emoji",
           "ü" * 50, "x" * 10_000, "a " * 5_000, "(" * 10_000, '" OR "' * 1000, "_", "__", "__init__"]


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:20]))
def test_hostile_queries_never_raise(index: CodeIndex, query: str) -> None:
    index.add("hostile.txt", "".join(HOSTILE[:22]) + "\n")
    hits = index.search(query)
    assert isinstance(hits, list)
    assert all(isinstance(hit, Hit) for hit in hits)


def test_a_long_random_query_never_raises(index: CodeIndex) -> None:
    rng = random.Random(7)
    alphabet = 'abcXYZ_019 "\'*:-()^{}+,.NEAROTD\t\n\0é日'
    for _ in range(20):
        assert isinstance(index.search("".join(rng.choice(alphabet) for _ in range(10_000))), list)


@pytest.mark.parametrize("query", ["", "   ", "!!!", "-", "()", '"*"', "::", "_ _"])
def test_a_query_without_letters_or_digits_finds_nothing(index: CodeIndex, query: str) -> None:
    assert index.search(query) == []


@pytest.mark.parametrize(("query", "expected"), [
    ("alpha -beta", "alpha_and_beta.py"),     # '-' does not exclude
    ("alpha NOT beta", "alpha_and_beta.py"),  # NOT is a word, not an operator
    ("beta:alpha", "alpha_and_beta.py"),      # not a column filter
    ("NEAR(alpha beta)", "alpha_and_beta.py"),
    ('"alpha beta', "alpha_and_beta.py"),
])
def test_syntax_in_a_query_does_not_change_its_meaning(query: str, expected: str) -> None:
    ix = CodeIndex()
    ix.add("alpha_and_beta.py", "alpha = beta\n")
    ix.add("alpha_only.py", "alpha = 1\n")
    assert paths(ix.search(query))[0] == expected


# -- misuse ---------------------------------------------------------------------------------------


def test_a_closed_index_says_so() -> None:
    ix = CodeIndex()
    ix.add("a.py", "x = 1\n")
    ix.close()
    ix.close()
    calls: list[Callable[[], object]] = [lambda: ix.search("x"), lambda: ix.add("b.py", ""), ix.files, ix.__len__]
    for call in calls:
        with pytest.raises(CodeSearchError, match="closed"):
            call()


@pytest.mark.parametrize("limit", [0, -1, True])
def test_a_bad_limit_is_refused(index: CodeIndex, limit: int) -> None:
    with pytest.raises(CodeSearchError, match="limit"):
        index.search("jwt", limit=limit)


def test_bad_arguments_are_projection_errors(index: CodeIndex) -> None:
    with pytest.raises(ProjectionError, match="non-empty"):
        index.add("", "x")
    with pytest.raises(ProjectionError, match="decode it first"):
        index.add("a.py", b"x")  # type: ignore[arg-type]


# -- a generated corpus ---------------------------------------------------------------------------

NOISE = ["value", "result", "handle_request", "parseConfig", "self", "items", "count", "HttpClient", "load_all",
         "retry_count", "userId", "session", "cache_key", "build", "render_page", "DataFrame", "index", "row"]


def identifier(rng: random.Random) -> str:
    syllables = ["".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 3)))
                 for _ in range(rng.randint(2, 3))]
    style = rng.choice(["snake", "camel", "pascal"])
    if style == "snake":
        return "_".join(syllables)
    head = syllables[0] if style == "camel" else syllables[0].capitalize()
    return head + "".join(s.capitalize() for s in syllables[1:])


def squashed(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def corpus_file(rng: random.Random, unique: str) -> str:
    lines = []
    for _ in range(rng.randint(6, 30)):
        a, b = rng.sample(NOISE, 2)
        lines.append(rng.choice([f"def {a}({b}):", f"    return {a} + {b}", f"{a} = {b}[{rng.randint(0, 9)}]",
                                 f"# {a} then {b}", ""]))
    for _ in range(rng.randint(1, 2)):
        lines.insert(rng.randrange(len(lines) + 1), f"    {unique} = {rng.choice(NOISE)}({unique!r})")
    return "\n".join(lines) + "\n"


def test_each_file_is_found_first_by_its_unique_identifier_and_by_a_fragment_of_it() -> None:
    rng = random.Random(20240607)
    files: dict[str, tuple[str, str]] = {}
    taken = [squashed(word) for word in NOISE]
    while len(files) < 200:
        unique = identifier(rng)
        key = squashed(unique)
        if any(key in other or other in key for other in taken):
            continue   # would not be unique: another identifier holds it, or it holds another
        taken.append(key)
        files[f"gen/{len(files):03d}_{rng.randint(0, 9999)}.py"] = (unique, corpus_file(rng, unique))
    ix = CodeIndex()
    for path, (_, text) in files.items():
        ix.add(path, text)

    checked = fragments = 0
    for path, (unique, text) in files.items():
        hits = ix.search(unique, limit=5)
        assert hits and hits[0].path == path, (unique, hits[:2])
        assert unique in lines_of(text)[hits[0].line - 1]
        checked += 1
        fragment = unique[1:-1]
        if sum(squashed(fragment) in squashed(other) for _, other in files.values()) == 1:
            assert ix.search(fragment, limit=5)[0].path == path, fragment
            fragments += 1
    assert checked >= 200
    assert fragments >= 150
