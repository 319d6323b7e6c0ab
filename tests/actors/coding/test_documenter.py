"""The documenter (``docs.write``) on a real log and git repository, with the OpenAI SDK against a loopback stand-in:
a new module gets its generated API page and the model's README and changelog edits in one commit under the warrant;
a second attempt pays for nothing and commits nothing again; an edit to code is refused and sent back while the docs
edits stand; and the API page itself — the same every time, private names left out, a module that does not parse
told as such, hostile docstrings kept inside their fences (checked with a CommonMark parser).

No Ray: the skill is called as an agent calls it, with the tools of one attempt under the task's warrant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from coding_support import block as shared_block
from coding_support import completed as record
from coding_support import git, repository, thinking_tools
from governance_support import POLICY, Council, make_council
from markdown_it import MarkdownIt
from model_standins import OpenAIStandin, Respond, Text

from actors.coding.coder import CodeWritten
from actors.coding.context import UNTRUSTED
from actors.coding.documenter import api_page, not_documentation, page_path, write_docs
from actors.skills import PermanentFailure
from events import streams
from events.catalogue import EditApplied, EditMalformed

KEY = "sk-documenter-test-" + uuid.uuid4().hex
MODEL = "openai:gpt-documenter"
DOCS_POLICY = POLICY + """
[[rules]]
name = "documenters-think-and-read"
actions = ["llm.call", "file.read"]
roles = ["documenter", "scribe", "reader"]
effect = "allow"

[[rules]]
name = "documenters-write-docs"
actions = ["file.write"]
roles = ["documenter"]
resources = ["docs/**", "*.md"]
effect = "allow"

[[rules]]
name = "a-careless-grant"
description = "Lets a scribe write anything: the documenter's own rule must still keep it to documentation."
actions = ["file.write"]
roles = ["scribe"]
resources = ["**"]
effect = "allow"

[[rules]]
name = "documenters-commit-and-compare"
actions = ["git.commit", "command.run"]
roles = ["documenter", "scribe"]
effect = "allow"
"""

README = "# shapes\n\nA small geometry library.\n"
CHANGELOG = "# Changelog\n\n## Unreleased\n"
SHAPES = '''"""Plane shapes and their areas."""

import math


def area(width: float, height: float = 1.0) -> float:
    """The area of a width by height rectangle.

    Negative sides are taken as they are.
    """
    return width * height


class Circle:
    """A circle of a given radius."""

    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:
        """Its area, pi r squared."""
        return math.pi * self.radius ** 2

    def _cached(self) -> None:
        """Private: not in the page."""


def _helper() -> None:
    """Private: not in the page."""
'''
USAGE = "## Usage\n\n```python\nfrom shapes import area, Circle\narea(2, 3)  # 6\nCircle(1).area()\n```\n"
DIAGRAM = "```mermaid\nflowchart LR\n  area --> Circle\n```\n"
ENTRY = "## Unreleased\n\n- `shapes`: `area` and `Circle` compute the areas of rectangles and circles.\n"


def block(path: str, search: str, replace: str) -> str:
    return shared_block(path, search, replace, fence="````")


@pytest.fixture
def council(tmp_path: Path) -> Council:
    """A repository with README and changelog (commit ``base``), then a commit that adds ``shapes.py``."""
    council = make_council(tmp_path)
    council.adopt(DOCS_POLICY)
    root = council.home / "workspace"
    repository(root, {"README.md": README, "CHANGELOG.md": CHANGELOG})
    repository(root, {"shapes.py": SHAPES}, "add shapes")
    return council


@pytest.fixture
def server() -> Iterator[OpenAIStandin]:
    with OpenAIStandin(expect_key=KEY) as standin:
        yield standin


def base(council: Council) -> str:
    return git(council.home / "workspace", "rev-parse", "HEAD~1").strip()


def document(council: Council, server: OpenAIStandin, inputs: dict[str, Any], task: str = "t-docs",
             role: str = "documenter") -> dict[str, Any]:
    """One attempt of ``docs.write`` as task ``task`` by an agent of ``role`` (the warrant is issued once, and kept)."""
    return write_docs(inputs, thinking_tools(council, server, KEY, MODEL, task, role))


def completed(council: Council, task: str, result: msgspec.Struct) -> None:
    """Record ``result`` as task ``task``'s, as the dispatcher does, for a later task to read as its upstream."""
    record(council, task, "coder-1", msgspec.to_builtins(result))


def judged(council: Council, task: str = "t-docs") -> list[Any]:
    return [e for e in council.events(streams.model_calls(task)) if isinstance(e, EditApplied | EditMalformed)]


def test_a_new_module_gets_its_api_page_and_the_models_readme_and_changelog_edits_in_one_commit(
        council: Council, server: OpenAIStandin) -> None:
    root = council.home / "workspace"
    head = git(root, "rev-parse", "HEAD").strip()
    completed(council, "t-code", CodeWritten(files=["shapes.py"], commit=head, summary="I add shapes.", rounds=1,
                                             refused=0, model=MODEL, cost=0.0, calls=1, shown=[]))
    server.script(Text("I document area and Circle.\n\n" + block("README.md", README, README + "\n" + USAGE + DIAGRAM)
                       + block("CHANGELOG.md", "## Unreleased\n", ENTRY)))
    done = document(council, server, {"instruction": "Add rectangle and circle areas", "code": "t-code"})

    page = (root / "docs" / "api" / "shapes.md").read_text()
    assert "def area(width: float, height: float=1.0) -> float" in page and "class Circle" in page
    assert "def __init__(self, radius: float) -> None" in page and "### `Circle.area`" in page
    assert "Plane shapes and their areas." in page and "The area of a width by height rectangle." in page
    assert "Negative sides" not in page  # only a docstring's first paragraph
    assert (root / "README.md").read_text() == README + "\n" + USAGE + DIAGRAM
    assert (root / "CHANGELOG.md").read_text() == "# Changelog\n\n" + ENTRY
    assert done["files"] == ["CHANGELOG.md", "README.md", "docs/api/shapes.md"]
    assert done["api_pages"] == ["docs/api/shapes.md"] and done["mermaid"] is True
    assert done["summary"] == "I document area and Circle." and done["rounds"] == 1 and done["refused"] == 0
    assert done["model"] == MODEL and done["cost"] > 0 and done["commit"]

    message = git(root, "log", "-1", "--format=%an%n%B")
    assert message.startswith("documenter-1 (agent-council)\ndocs: I document area and Circle.")
    assert "Council-Warrant: w-t-docs" in message and "docs/api/shapes.md" in message
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == done["files"]  # one commit holds all
    assert git(root, "rev-parse", "HEAD").strip() == done["commit"]

    assert server.calls == 1
    system, user = (m["content"] for m in server.requests[0].body["messages"])
    assert UNTRUSTED in system and "Never draw one for a single function" in system
    assert "<<<BEGIN API PAGE docs/api/shapes.md [" in user and "<<<BEGIN DIFF SUMMARY [" in user
    assert "<<<BEGIN FILE README.md [" in user and "<<<BEGIN FILE CHANGELOG.md [" in user
    assert "shapes.py" in user.split("<<<BEGIN DIFF SUMMARY")[1].split("<<<END DIFF SUMMARY")[0]
    [verdict] = judged(council)
    assert isinstance(verdict, EditApplied) and verdict.files == ["CHANGELOG.md", "README.md"]


def test_a_second_attempt_pays_for_nothing_and_commits_nothing_again(council: Council, server: OpenAIStandin) -> None:
    root = council.home / "workspace"
    server.script(Text("I add a changelog entry.\n\n" + block("CHANGELOG.md", "## Unreleased\n", ENTRY)))
    inputs = {"instruction": "Add rectangle and circle areas", "base": base(council)}
    first = document(council, server, inputs)
    assert first["files"] == ["CHANGELOG.md", "docs/api/shapes.md"] and first["mermaid"] is False
    # after its own commit, base..HEAD differs by documentation only: the same question, answered from the log
    again = document(council, server, inputs)
    assert again == {**first, "cost": 0.0} and server.calls == 1  # a replayed answer costs this attempt nothing
    assert git(root, "rev-list", "--count", "HEAD").strip() == "3"


def test_the_api_page_is_the_same_text_for_the_same_code(council: Council, server: OpenAIStandin) -> None:
    assert api_page("shapes.py", SHAPES) == api_page("shapes.py", SHAPES)
    server.script(Text("I add a changelog entry.\n\n" + block("CHANGELOG.md", "## Unreleased\n", ENTRY)))
    document(council, server, {"instruction": "areas", "files": ["shapes.py"]})
    assert (council.home / "workspace" / "docs" / "api" / "shapes.md").read_text() == api_page("shapes.py", SHAPES)
    assert page_path("pkg/mod.py") == "docs/api/pkg/mod.md"
    assert [page_path(p) for p in ("tests/test_shapes.py", "my-script.py", "README.md", "conftest.py")] == [None] * 4


def test_an_edit_to_code_is_refused_and_sent_back_while_the_docs_edits_stand(council: Council,
                                                                             server: OpenAIStandin) -> None:
    """The scribe's policy lets it write anything; the documenter's own rule still keeps it to documentation."""
    root = council.home / "workspace"
    meddling = block("shapes.py", "import math\n", "import math  # documented\n")
    server.script(Text("I document shapes.\n\n" + block("README.md", README, README + "\n" + USAGE) + meddling),
                  Respond(lambda body: Text(
                      "I add the changelog entry instead.\n\n" + block("CHANGELOG.md", "## Unreleased\n", ENTRY)
                      if "shapes.py is not documentation" in str(body["messages"][-1]["content"]) else
                      "the refusal did not reach me")))
    done = document(council, server, {"instruction": "areas", "base": base(council)}, task="t-scribe", role="scribe")
    assert done["rounds"] == 2 and done["refused"] == 1 and server.calls == 2
    first, second = judged(council, "t-scribe")
    assert isinstance(first, EditMalformed) and first.refusal == "refused" and first.files == ["shapes.py"]
    assert first.applied == 1 and "leave code, tests and configuration to the coder" in first.error
    assert isinstance(second, EditApplied) and second.files == ["CHANGELOG.md"]
    assert (root / "shapes.py").read_text() == SHAPES
    assert done["files"] == ["CHANGELOG.md", "README.md", "docs/api/shapes.md"]
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == done["files"]


def test_only_documentation_may_be_edited() -> None:
    for path in ("README.md", "docs/guide.md", "docs/tutorial/start.rst", "CHANGELOG", "pkg/CHANGELOG.txt",
                 "pkg/NOTES.md"):
        assert not_documentation(path) is None, path
    for path, said in (("shapes.py", "not documentation"), ("docs/conf.py", "not documentation"),
                       ("pyproject.toml", "not documentation"), (".github/workflows/ci.md", "hidden"),
                       ("docs/api/shapes.md", "generated"), ("CHANGELOG.py", "not documentation")):
        assert said in (not_documentation(path) or ""), path


def test_a_module_that_does_not_parse_gets_a_page_that_says_so() -> None:
    page = api_page("broken.py", '"""Half written."""\n\ndef area(width, height:\n    return 1\n')
    assert page.startswith("<!-- Generated by docs.write from broken.py") and "# `broken`" in page
    assert "could not be read" in page and "line 3" in page and "def area" not in page
    assert "could not be read" in api_page("nul.py", "x = 1\0\n")


def test_private_names_stay_out_of_the_page_and_all_is_honoured() -> None:
    page = api_page("shapes.py", SHAPES)
    assert "_helper" not in page and "_cached" not in page and "Private" not in page
    listed = api_page("pkg/__init__.py", '__all__ = ["shown"]\n\ndef shown() -> None: ...\n\ndef unlisted(): ...\n')
    assert "# `pkg`" in listed and "def shown() -> None" in listed and "unlisted" not in listed
    assert "no public class or function" in api_page("empty.py", "def _only(): ...\n")


HOSTILE = '''"""Innocent.

</details><script>alert(1)</script>
# Injected heading
[click](javascript:alert(1))
````
~~~
"""


def tool(x: str = "`````") -> None:
    """</details>
# Not a heading either
<img src=x onerror=alert(1)>
```
"""
'''


def test_hostile_docstrings_stay_inside_their_fences() -> None:
    """Every text from the module is in a fenced block: a CommonMark parser finds our headings only, and no HTML."""
    page = api_page("hostile.py", HOSTILE)
    tokens = MarkdownIt("commonmark").parse(page)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["`hostile`", "`tool`"]
    assert [t.type for t in tokens if t.type.startswith("html")] == ["html_block"]  # our own comment, first
    assert tokens[0].type == "html_block" and tokens[0].content.startswith("<!-- Generated by docs.write")
    fenced = "".join(t.content for t in tokens if t.type == "fence")
    for text in ("<script>alert(1)</script>", "# Injected heading", "javascript:alert(1)", "# Not a heading either",
                 "onerror=alert(1)", 'x: str=\'`````\''):
        assert text in fenced, text
    html = MarkdownIt("commonmark").render(page)
    assert "<script>" not in html and "<img" not in html and "<h1>Injected" not in html and "<a href" not in html


def test_bad_inputs_are_refused_with_what_to_do(council: Council, server: OpenAIStandin) -> None:
    for number, (inputs, said) in enumerate((({}, "instruction"),
                         ({"instruction": "x"}, "no change to document"),
                         ({"instruction": "x", "files": ["a.py"], "rounds": 4}, "rounds"),
                         ({"instruction": "x", "base": "--output=/tmp/x"}, "base"),
                         ({"instruction": "x", "files": ["a.py"], "style": "terse"}, "style"))):
        with pytest.raises(PermanentFailure, match=f"docs.write's inputs do not fit: .*{said}"):
            document(council, server, inputs, task=f"t-bad-{number}")
    with pytest.raises(PermanentFailure, match="task t-missing has not completed"):
        document(council, server, {"instruction": "x", "code": "t-missing"}, task="t-bad-code")
    with pytest.raises(PermanentFailure, match="is base 'no-such-rev' a revision"):
        document(council, server, {"instruction": "x", "base": "no-such-rev"}, task="t-bad-base")
    assert server.calls == 0


def test_a_policy_that_keeps_the_documenter_out_of_the_api_pages_stops_it_before_any_call(
        council: Council, server: OpenAIStandin) -> None:
    # a reader may think and read, but write nothing
    with pytest.raises(PermanentFailure, match=r"docs/api/shapes\.md; let the documenter's role write docs/api"):
        document(council, server, {"instruction": "x", "files": ["shapes.py"]}, task="t-no-write", role="reader")
    assert server.calls == 0
