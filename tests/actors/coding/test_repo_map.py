"""The repository map: Python tags, Aider's ranking, rendering, and the token budget that is never exceeded."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

import pytest

from actors.coding.repomap import Tag, mentioned_identifiers, python_tags, rank, render, repo_map


def defs(source: str, path: str = "m.py") -> dict[str, Tag]:
    return {tag.name: tag for tag in python_tags(path, source) if tag.kind == "def"}


def refs(source: str, path: str = "m.py") -> list[str]:
    return [tag.name for tag in python_tags(path, source) if tag.kind == "ref"]


def tokens(text: str) -> int:
    return len(text) // 4 + 1


def synthetic_repo(modules: int = 60) -> dict[str, str]:
    """A hub (``pkg/core.py``) every module uses, a chain of modules each using the one before, and non-Python."""
    sources = {
        "pkg/core.py": (
            "class BaseWidget:\n"
            "    def area(self, scale: float = 1.0) -> float:\n        return 0.0\n\n"
            "def make_registry(capacity: int = 16) -> dict[str, BaseWidget]:\n    return {}\n\n"
            "DEFAULT_CAPACITY = 16\n"
        ),
        "README.md": "# the project\n",
        "pyproject.toml": "[project]\nname = 'p'\n",
        "docs/guide.md": "guide\n",
    }
    for i in range(modules - 1):
        previous = f"mod_{i - 1:02d}.build_widget_{i - 1:02d}(size)" if i else "None"
        sources[f"pkg/mod_{i:02d}.py"] = (
            f"from pkg import core, mod_{max(i - 1, 0):02d}\n\n"
            f"LIMIT_{i:02d} = {i}\n\n"
            f"class Widget{i:02d}(core.BaseWidget):\n"
            f"    def area(self, scale: float = 1.0) -> float:\n        return scale * LIMIT_{i:02d}\n\n"
            f"    def render_{i:02d}(self, width: int, *, colour: str = 'red') -> str:\n"
            f"        return _helper_{i:02d}(width) + colour\n\n"
            f"def build_widget_{i:02d}(size: int = {i}) -> Widget{i:02d}:\n"
            f"    registry = core.make_registry(core.DEFAULT_CAPACITY)\n"
            f"    registry['w'] = Widget{i:02d}()\n    {previous}\n    return registry['w']\n\n"
            f"def _helper_{i:02d}(width: int) -> str:\n    return ' ' * width\n"
        )
    return sources


# -- tags ----------------------------------------------------------------------------------------------------------


def test_a_function_is_a_definition_with_its_signature_and_1_based_line() -> None:
    tag = defs("\n\ndef area(width, height):\n    return width * height\n")["area"]

    assert tag == Tag("m.py", 3, "area", "def", "def area(width, height)")


def test_an_async_function_says_async() -> None:
    assert defs("async def fetch(url):\n    return await get(url)\n")["fetch"].signature == "async def fetch(url)"


def test_a_class_shows_its_bases_and_keywords() -> None:
    found = defs("class Circle(Shape):\n    pass\n"
                 "class Meta(abc.ABC, metaclass=ABCMeta):\n    pass\n"
                 "class Bare:\n    x = 1\n")

    assert found["Circle"].signature == "class Circle(Shape)"
    assert found["Meta"].signature == "class Meta(abc.ABC, metaclass=ABCMeta)"
    assert found["Bare"].signature == "class Bare"
    assert "x" not in found  # class attributes are not module-level names


def test_methods_and_nested_classes_keep_their_class_as_scope() -> None:
    found = defs("class Shape:\n    def area(self):\n        def local():\n            pass\n"
                 "    class Inner:\n        async def deep(self):\n            pass\n")

    assert (found["area"].scope, found["Inner"].scope, found["deep"].scope) == ("Shape", "Shape", "Shape.Inner")
    assert found["Shape"].scope == ""
    assert "local" not in found  # a function inside a function is not part of the file's surface


def test_decorators_do_not_change_the_signature_or_its_line() -> None:
    source = "@app.route('/x', methods=['GET'])\n@cache\ndef view(request) -> Response:\n    pass\n" \
             "@dataclass(frozen=True)\nclass Point:\n    @property\n    def norm(self) -> float:\n        pass\n"
    found = defs(source)

    assert (found["view"].line, found["view"].signature) == (3, "def view(request) -> Response")
    assert (found["Point"].line, found["Point"].signature) == (6, "class Point")
    assert (found["norm"].line, found["norm"].signature) == (8, "def norm(self) -> float")


@pytest.mark.parametrize(("header", "signature"), [
    ("def area(self, scale: float = 1.0) -> float", "def area(self, scale: float = 1.0) -> float"),
    ("def f(a, b=2, *args, c, d: int = 4, **kw)", "def f(a, b=2, *args, c, d: int = 4, **kw)"),
    ("def f(a, /, b, *, c)", "def f(a, /, b, *, c)"),
    ("def f(a: dict[str, list[int]] | None = None) -> Callable[[str], int]",
     "def f(a: dict[str, list[int]] | None = None) -> Callable[[str], int]"),
    ("def f(*, key='x', **options: Any)", "def f(*, key='x', **options: Any)"),
    ("def f(data=[\n    1, 2])", "def f(data=...)"),
    ("def f(data='" + "x" * 99 + "')", "def f(data=...)"),
])
def test_defaults_and_annotations_are_rendered_as_one_line(header: str, signature: str) -> None:
    assert defs(header + ":\n    pass\n")["f" if "def f" in header else "area"].signature == signature


def test_module_level_assigned_names_are_definitions() -> None:
    found = defs("MAX_RETRIES = 3\nA, B = 1, 2\nONE = (1,)\ntimeout: float = 2.5\nDECLARED: int\n"
                 "TABLE = {\n    'a': 1,\n}\nif TYPE_CHECKING:\n    ALIAS = int\ntry:\n    import json\n"
                 "except ImportError:\n    json = None\n"
                 "def f():\n    local = 1\n")

    assert found["MAX_RETRIES"].signature == "MAX_RETRIES = 3"
    assert found["A"].signature == found["B"].signature == "A, B = 1, 2"
    assert found["ONE"].signature == "ONE = 1,"
    assert found["timeout"].signature == "timeout: float = 2.5"
    assert found["DECLARED"].signature == "DECLARED: int"
    assert found["TABLE"].signature == "TABLE = ..."
    assert found["ALIAS"].signature == "ALIAS = int"
    assert found["json"].signature == "json = None"
    assert "local" not in found


def test_references_are_every_name_and_attribute_used() -> None:
    found = refs("import os\nvalue = os.path.join(BASE, name)\ndel cache[key]\nobj.field = helper()\n")

    assert sorted(found) == sorted(["os", "path", "join", "BASE", "name", "cache", "key", "field", "obj", "helper"])
    assert "value" not in found  # a store is not a use


@pytest.mark.parametrize("source", [
    "def broken(:\n",
    "class X\n    pass\n",
    "x = 1\0\n",
    "if True:\npass\n",
])
def test_a_file_that_does_not_parse_gives_no_tags(source: str) -> None:
    assert python_tags("bad.py", source) == []


@pytest.mark.parametrize("source", [
    pytest.param("x = " + "1" + "+1" * 100_000, id="long-sum"),
    pytest.param("x = " + "not " * 100_000 + "y", id="nested-not"),
    pytest.param("x = " + "-" * 100_000 + "1", id="nested-minus"),
    pytest.param("x = a" + "[0]" * 100_000, id="subscripts"),
    pytest.param("x = a" + ".b" * 100_000, id="attributes"),
    pytest.param("x = " + "(" * 5_000 + ")" * 5_000, id="parentheses"),
    pytest.param("x = " + "[" * 5_000 + "]" * 5_000, id="lists"),
    pytest.param("".join("    " * depth + "if x:\n" for depth in range(200)) + "    " * 200 + "pass\n", id="ifs"),
    pytest.param("".join("    " * depth + f"class C{depth}:\n" for depth in range(99)) + "    " * 99 + "pass\n",
                 id="classes"),
    pytest.param("f(" + "lambda: " * 10_000 + "0)", id="lambdas"),
])
def test_hostile_nesting_gives_tags_or_nothing_but_never_raises(source: str) -> None:
    tags = python_tags("deep.py", source)

    assert isinstance(tags, list)
    assert isinstance(repo_map({"deep.py": source, "ok.py": "def fine(): pass\n"}, max_tokens=200), str)


def test_a_deep_but_parseable_value_is_cut_short_rather_than_unparsed() -> None:
    found = defs("NESTED = " + "[" * 150 + "]" * 150 + "\n")

    assert found["NESTED"].signature == "NESTED = ..."


def test_a_huge_file_is_tagged_and_mapped_within_budget() -> None:
    source = "".join(f"def function_{i}(value: int = {i}) -> int:\n    return value + function_{i - 1}(0)\n"
                     for i in range(10_000))
    started = time.perf_counter()
    found = defs(source, "huge.py")
    text = repo_map({"huge.py": source, "small.py": "from huge import function_7\n"}, max_tokens=500)
    elapsed = time.perf_counter() - started

    assert len(found) == 10_000
    assert 0.85 * 500 <= tokens(text) <= 500
    assert elapsed < 30


# -- ranking -------------------------------------------------------------------------------------------------------


def ranked_names(sources: dict[str, str], *, focus: Iterable[str] = (), mentioned: Iterable[str] = ()) -> list[str]:
    tags = [tag for path, text in sorted(sources.items()) for tag in python_tags(path, text)]
    return [tag.name for tag, _ in rank(tags, focus=focus, mentioned=mentioned)]


def test_a_module_used_by_many_ranks_above_a_leaf() -> None:
    sources = synthetic_repo()
    ranked = ranked_names(sources)

    hub = min(ranked.index(name) for name in ("BaseWidget", "make_registry", "DEFAULT_CAPACITY"))
    assert hub < ranked.index("build_widget_58")  # nothing uses the last module
    assert ranked.index("make_registry") < ranked.index("build_widget_30")
    assert ranked.index("DEFAULT_CAPACITY") < ranked.index("LIMIT_10")


def test_scores_are_non_increasing_and_every_definition_is_ranked() -> None:
    sources = synthetic_repo()
    tags = [tag for path, text in sorted(sources.items()) for tag in python_tags(path, text)]
    ranked = rank(tags)

    assert sorted((tag for tag, _ in ranked), key=lambda t: (t.path, t.line, t.name)) == sorted(
        (tag for tag in tags if tag.kind == "def"), key=lambda t: (t.path, t.line, t.name))
    checked = 0
    for (_, before), (_, after) in itertools.pairwise(ranked):
        assert before >= after
        checked += 1
    assert checked > 300
    assert all(score > 0 for _, score in ranked)  # unreferenced definitions still get their weak self-edge


SMALL = {
    "a.py": "def alpha_helper():\n    pass\n",
    "b.py": "def beta_helper():\n    pass\n",
    "c.py": "from a import alpha_helper\nalpha_helper()\n",
    "d.py": "from b import beta_helper\nbeta_helper()\n",
    "e.py": "from a import alpha_helper\nalpha_helper()\n",
}


def test_focus_raises_what_the_focus_files_use_and_sinks_their_own_definitions() -> None:
    assert ranked_names(SMALL)[0] == "alpha_helper"  # two users against one

    focused = rank([t for path, text in sorted(SMALL.items()) for t in python_tags(path, text)], focus=["d.py"])
    assert [tag.name for tag, _ in focused] == ["beta_helper", "alpha_helper"]

    own = rank([t for path, text in sorted(SMALL.items()) for t in python_tags(path, text)], focus=["a.py"])
    assert [(tag.name, score) for tag, score in own][-1] == ("alpha_helper", 0.0)  # last, but present


def test_a_mentioned_identifier_rises() -> None:
    sources = {"lib.py": "def often():\n    pass\ndef seldom():\n    pass\n",
               "use.py": "often()\n" * 4 + "seldom()\n"}

    assert ranked_names(sources) == ["often", "seldom"]
    assert ranked_names(sources, mentioned=["seldom"]) == ["seldom", "often"]


def test_private_names_sink() -> None:
    sources = {
        "lib.py": "def _private_helper():\n    pass\ndef public_helper():\n    pass\n",
        "use.py": "from lib import _private_helper, public_helper\n" + "_private_helper()\n" * 3 + "public_helper()\n",
    }

    assert ranked_names(sources) == ["public_helper", "_private_helper"]


def test_a_name_defined_in_many_files_sinks() -> None:
    sources = {f"m{i}.py": "def run_all_tasks():\n    pass\n" for i in range(6)}
    sources["single.py"] = "def only_here():\n    pass\n"
    sources["use.py"] = "run_all_tasks()\nonly_here()\n"

    assert ranked_names(sources)[0] == "only_here"


def test_ties_are_broken_by_path_then_line() -> None:
    sources = {"z.py": "def one():\n    pass\ndef four():\n    pass\n",
               "a.py": "def two():\n    pass\ndef three():\n    pass\n"}

    assert ranked_names(sources) == ["two", "three", "one", "four"]


def test_the_same_input_gives_the_same_output() -> None:
    sources = synthetic_repo()
    shuffled = dict(reversed(list(sources.items())))

    first = repo_map(sources, focus=["pkg/mod_10.py"], mentioned={"render_03", "LIMIT_07"}, max_tokens=700)
    assert first == repo_map(shuffled, focus=["pkg/mod_10.py"], mentioned=["LIMIT_07", "render_03"], max_tokens=700)
    assert first.count("\n") > 20


# -- rendering -----------------------------------------------------------------------------------------------------


def test_a_chosen_method_brings_its_class_line_for_context() -> None:
    source = "class Shape(Base):\n    def area(self) -> float:\n        pass\n    def name(self):\n        pass\n"
    tags = python_tags("shapes.py", source)
    ranked = [(tag, 1.0) for tag in tags if tag.name == "area"] + [(tag, 0.5) for tag in tags if tag.name == "Shape"]

    assert render(ranked, 1) == "shapes.py:\n  class Shape(Base)\n    def area(self) -> float\n"
    assert render(ranked, 2) == render(ranked, 1)  # the class line is shown once
    assert render(ranked[:1], 1) == "shapes.py:\n  class Shape\n    def area(self) -> float\n"  # class not ranked


def test_files_are_grouped_in_path_order_and_other_files_follow() -> None:
    ranked = [(Tag("z.py", 1, "z", "def", "def z()"), 2.0), (Tag("a.py", 5, "a", "def", "def a()"), 1.0),
              (Tag("a.py", 2, "b", "def", "B = 1"), 0.5)]

    assert render(ranked, 3, files=["README.md", "a.py", "Makefile"]) == (
        "a.py:\n  B = 1\n  def a()\nz.py:\n  def z()\nother files:\n  Makefile\n  README.md\n")
    assert render(ranked, 0) == ""
    assert render(ranked, -3, files=["x.md"]) == "other files:\n  x.md\n"


def test_other_files_are_listed_only_when_every_definition_fits() -> None:
    sources = {"lib.py": "def helper():\n    pass\n", "README.md": "x", "empty.py": "", "bad.py": "def (\n"}

    assert repo_map(sources) == "lib.py:\n  def helper()\nother files:\n  README.md\n  bad.py\n  empty.py\n"
    assert repo_map(sources, max_tokens=8) == "lib.py:\n  def helper()\n"


# -- the budget ----------------------------------------------------------------------------------------------------


def test_the_map_never_exceeds_the_budget_and_grows_with_it() -> None:
    sources = synthetic_repo()
    full = repo_map(sources, max_tokens=10**6)
    previous_lines: set[str] = set()
    previous_size = 0
    checked = 0
    for budget in sorted({*range(50, 3001, 25), *range(160, 261)}):  # single steps where stopping early would shrink
        text = repo_map(sources, max_tokens=budget)
        size = tokens(text)
        assert size <= budget
        assert size >= previous_size
        assert previous_lines <= set(text.splitlines())
        if tokens(full) > budget:
            assert size >= 0.85 * budget  # as close as Aider asks for
        previous_lines, previous_size = set(text.splitlines()), size
        checked += 1
    assert checked > 200
    assert "other files:" in full and "pkg/core.py:" in full


def test_a_custom_token_count_is_the_one_obeyed() -> None:
    sources = synthetic_repo()
    words = 0
    for budget in (10, 100, 400):
        text = repo_map(sources, max_tokens=budget, count_tokens=lambda t: len(t.split()))
        assert 0 < len(text.split()) <= budget
        words += 1
    assert words == 3


@pytest.mark.parametrize("budget", [0, -5, 1, 2])
def test_no_room_gives_an_empty_map(budget: int) -> None:
    assert repo_map(synthetic_repo(), max_tokens=budget) == ""


def test_no_sources_give_an_empty_map() -> None:
    assert repo_map({}) == ""
    assert repo_map({"bad.py": "def (\n"}) == "other files:\n  bad.py\n"


# -- mentions ------------------------------------------------------------------------------------------------------


def test_mentioned_identifiers_are_the_words_that_look_like_code() -> None:
    text = ("Please fix `Circle.area` so that getUser and max_retries( work; call render() and HTTPServer. "
            "The Widget is fine, as is ab and x1y, if (true) return.")

    assert mentioned_identifiers(text) == {"Circle", "area", "getUser", "max_retries", "render", "HTTPServer"}
