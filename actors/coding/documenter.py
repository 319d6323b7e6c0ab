"""The documenter (``docs.write``): a change's documentation, part generated from its code, part written by a model.

One attempt:

1. **Read the tree** (one ``file.read``, kept as a blob, so an attempt run again works from what the first read) and
   **name the change**: the files of the coder's task (``code``), those named (``files``), and what differs between
   ``base`` and HEAD, with git's summary of it.
2. **Generate the API reference** of every changed Python module, without a model and without importing it (the
   code is untrusted: it is parsed, never run): one Markdown page ``docs/api/<module path>.md`` each, from the
   module's docstring and its public classes and functions — signatures and the first paragraph of their
   docstrings. The page is a pure function of the module's text: the same code gives the same page, byte for byte.
   Everything taken from the code sits in fenced blocks longer than any run of backticks it holds, so no
   docstring can add a heading, HTML or a link to the page (:func:`api_page`).
3. **Ask the documenter's model** for SEARCH/REPLACE edits to README (how to use what changed, with a short
   example), the changelog (an entry under "Unreleased") and, where it helps, a Mermaid diagram; the pages, git's
   summary and the README and changelog go to it as data blocks. The edit loop of the coder checks every edit in
   memory: what the policy does not let a documenter write, and anything that is not documentation
   (:func:`not_documentation`), is refused and sent back.
4. **Write and commit**: the model's edits and the generated pages, each through the gated ``file.write``, in one
   commit under the warrant.

The changelog entry of a pipeline run (``ci.docs``) is another step's: it tells what the pipeline did, with no
model; this one tells a reader what changed and how to use it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, model_validator

from actors.coding import context
from actors.coding.coder import CodeWritten, EditLoop
from actors.coding.edits import FORMAT
from actors.coding.skill_io import TEST_FILE, ModelWork, plain, validated
from actors.pipeline.results import StepResult
from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.ci import CiTools

SYSTEM = (
    "You are the documenter of a software team. For a change to the repository you update its documentation:\n"
    "- README.md: how to use what changed, with a short example (a fenced code block a reader can copy).\n"
    "- CHANGELOG.md: one entry for the change under a \"## Unreleased\" section at the top (add the section, or "
    "the file, if it is missing); keep the entries already there.\n"
    "- A Mermaid diagram (a ```mermaid block) in README.md or in a page under docs/, only where one helps: when "
    "the change spans several modules, or describes a flow (a request passing through steps, a pipeline, states "
    "and their transitions). Never draw one for a single function.\n"
    "You change documentation only: Markdown files, text pages under docs/ and the changelog; never code, tests "
    "or configuration. The pages under docs/api/ are generated from the code's docstrings and written with your "
    "edits: link to them, never edit them. Describe only what the change does; invent no feature. Answer first "
    "with one sentence that says what you document, then the SEARCH/REPLACE blocks.\n\n")

API = "docs/api"
"""Where the generated API pages go; no model edits them."""
MODULE = re.compile(r"(?:[^\W\d]\w*/)*[^\W\d]\w*\.py")
"""A file that is an importable Python module: every part of its path an identifier (``\\w`` holds no Markdown)."""
REVISION = r"^[A-Za-z0-9_][A-Za-z0-9_./~^@{}-]{0,199}$"
"""A git revision as an input may name it: never an option (no leading ``-``)."""
COMMIT = re.compile(r"[0-9a-f]{7,64}")
ROOT_DOC = re.compile(r"(?:README|CHANGELOG)[^/]*", re.IGNORECASE)
DOC_TEXT = re.compile(r"\.(?:md|markdown|rst|txt|mmd)$", re.IGNORECASE)
CHANGELOG = re.compile(r"(?:^|/)CHANGELOG(?:\.(?:md|markdown|rst|txt))?$", re.IGNORECASE)
MERMAID = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[ \t]*mermaid\b", re.MULTILINE)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")

NOT_DOCS = (".", ":(exclude)*.md", ":(exclude)docs", ":(exclude)CHANGELOG*", ":(exclude)*/CHANGELOG*")
"""What ``git diff`` compares: everything but what a documenter may write (see :func:`the_change`)."""


class DocsTask(ModelWork):
    """What ``docs.write`` is asked: the request's words, the change to document, and its limits."""

    instruction: Annotated[str, Field(min_length=1, max_length=20_000)]
    code: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The coder's task, whose result names the files it changed and its commit."""
    files: list[Annotated[str, Field(min_length=1, max_length=1_000)]] = Field(default_factory=list, max_length=200)
    """The changed files, when there is no coder's task to ask."""
    base: Annotated[str, Field(pattern=REVISION)] | None = None
    """The revision the change started from: the change is ``base..HEAD``."""
    rounds: Annotated[int, Field(ge=0, le=3)] = 2
    """How often refused edits go back to the model before the task fails. (``file_tokens`` is what the files and
    the API pages shown to the model may take together, the pages at most half.)"""

    @model_validator(mode="after")
    def _names_a_change(self) -> DocsTask:
        if not (self.code or self.files or self.base):
            raise ValueError("no change to document: name the coder's task (code), the changed files (files), or "
                             "the revision the change started from (base)")
        return self


class DocsWritten(StepResult, frozen=True, kw_only=True):
    """What the documenter did: the files it changed (its edits and the API pages), its commit, and what it took."""

    files: list[str]
    commit: str | None
    """None when the documentation already said it all (no file changed)."""
    summary: str
    api_pages: list[str]
    """The pages generated for the change's modules (in ``files`` too, unless they were already up to date)."""
    rounds: int
    refused: int
    model: str
    cost: float
    mermaid: bool
    """Whether the model's edits added a ``mermaid`` block."""


@dataclass(frozen=True)
class Change:
    """The change to document: the files it touched, in the order named, and git's summary of it ('' if none)."""

    files: tuple[str, ...]
    summary: str


@skill("docs.write", toolset=Toolset.CI, actions=("file.read", "llm.call", "command.run", "file.write", "git.commit"))
def write_docs(inputs: dict[str, Any], tools: CiTools) -> dict[str, Any]:
    """Document a change: generated API pages and the model's README and changelog edits, one commit (see module)."""
    task: DocsTask = validated(DocsTask, inputs, "docs.write")
    tree = tools.read_tree(".", remember=tools.models.blobs)
    change = the_change(task, tools)
    pages = {page: api_page(path, tree[path]) for path in change.files
             if path in tree and (page := page_path(path)) is not None}
    writable = set(tools.gatekeeper.permitted(tools.warrant_id or "", "file.write", sorted(pages)))
    if unwritable := sorted(set(pages) - writable):
        raise PermanentFailure(f"the policy does not let this agent write the API pages {', '.join(unwritable)}; "
                               f"let the documenter's role write {API}/** (file.write), or document no module")
    loop = EditLoop(tools, dict(tree), "docs.write", keep_off=not_documentation)
    summary = loop.run(context.messages(SYSTEM + FORMAT, question(task, tree, change, pages)), task.rounds,
                       task.max_tokens)
    mermaid = any(len(MERMAID.findall(loop.state[p])) > len(MERMAID.findall(tree.get(p, ""))) for p in loop.changed)
    for page, text in pages.items():  # one commit: the pages join the model's edits before anything is written
        loop.state[page] = text
        if tree.get(page) != text:
            loop.changed.add(page)
    said = summary or task.instruction.strip().splitlines()[0]
    listed = "".join(f"\n- {page}" for page in sorted(pages))
    commit = loop.save(f"docs: {said}"[:1000] + (f"\n\nAPI pages generated from docstrings:{listed}" if listed else ""))
    return plain(DocsWritten(files=sorted(loop.changed), commit=commit, summary=summary, api_pages=sorted(pages),
                              rounds=loop.rounds, refused=loop.refused, model=loop.model, cost=round(loop.cost, 6),
                              mermaid=mermaid))


def the_change(task: DocsTask, tools: CiTools) -> Change:
    """The files of the change (named, the coder's, then git's from ``base``) and git's summary of it.

    The summary is part of the model's question, so it must be the same on every attempt, or a rerun would pay for
    a new call. git compares everything but documentation (:data:`NOT_DOCS`), which is all this skill commits: an
    attempt that runs again after its own commit sees the same change as the first one did.
    """
    files = list(task.files)
    summary = ""
    if task.code:
        written = tools.upstream(task.code, CodeWritten)
        files += written.files
        if written.commit and not task.base:
            if not COMMIT.fullmatch(written.commit):
                raise PermanentFailure(f"task {task.code} names the commit {written.commit[:80]!r}, which is not a "
                                       "commit id; document the change by its files or its base instead")
            summary = _git(tools, ["git", "show", "--stat=200", "--format=%h %s", written.commit, "--"], task)
    if task.base:
        files += _git(tools, ["git", "diff", "--name-only", "--no-renames", task.base, "HEAD", "--", *NOT_DOCS],
                      task).splitlines()
        summary = _git(tools, ["git", "diff", "--stat=200", "--no-renames", task.base, "HEAD", "--", *NOT_DOCS], task)
    return Change(tuple(dict.fromkeys(f for f in files if f)), summary.strip())


def _git(tools: CiTools, argv: list[str], task: DocsTask) -> str:
    done = tools.run(argv, ".", 60.0, tail=1 << 20, reads_only=True)
    if done.get("returncode") != 0:
        hint = f"; is base {task.base!r} a revision of the repository?" if task.base else ""
        raise PermanentFailure(f"git could not summarise the change ({' '.join(argv[1:3])}): "
                               f"{str(done.get('stderr', '')).strip()[-300:]}{hint}")
    return str(done.get("stdout", ""))


def question(task: DocsTask, tree: dict[str, str], change: Change, pages: dict[str, str]) -> str:
    """The user message: the task, the repository (README and changelog first), git's summary and the API pages."""
    wanted = (f"Update the documentation for this change. What was asked of it:\n{task.instruction.strip()}"
              + (f"\n\nThe files it changed: {', '.join(change.files)}" if change.files else ""))
    missing = [name for name in ("README.md", "CHANGELOG.md") if name not in tree]
    if missing:
        wanted += f"\n\nNot in the repository yet, create if the change needs it: {', '.join(missing)}"
    shown: list[str] = []
    spent = 0
    for page, text in sorted(pages.items()):
        if spent + context.tokens(text) + 20 <= task.file_tokens // 2:
            shown.append(page)
            spent += context.tokens(text) + 20
    focus = [*sorted(p for p in tree if ROOT_DOC.fullmatch(p)), *change.files]
    repository, _ = context.context(tree, wanted, [], focus, map_tokens=task.map_tokens,
                                    file_tokens=task.file_tokens - spent)
    parts = [repository]
    if change.summary:
        parts.append("The change, as git summarises it:\n" + context.data_block("DIFF SUMMARY", change.summary))
    for page in shown:
        parts.append(f"The API page {page}, generated from the module's docstrings (written with your edits; link "
                     "to it, do not edit it):\n" + context.data_block(f"API PAGE {page}", pages[page]))
    if left := sorted(set(pages) - set(shown)):
        parts.append("API pages too large to show here, written all the same: " + ", ".join(left))
    return "\n\n".join(parts)


def not_documentation(path: str) -> str | None:
    """Why a documenter must leave ``path`` alone, whatever the policy allows (None: it is documentation).

    Documentation is a Markdown file, a text page under ``docs/`` or a changelog — never a file that runs (a
    Sphinx ``conf.py`` under ``docs/`` runs at every build), never a hidden file (tooling reads those), and never
    a generated API page.
    """
    if any(part.startswith(".") for part in path.split("/")):
        return (f"{path} is hidden: hidden files and folders configure tools, they are not documentation; leave "
                "it alone")
    if path == API or path.startswith(f"{API}/"):
        return (f"{path} is generated from the code's docstrings with every change; link to it, and leave it as "
                "it is")
    if path.lower().endswith(".md") or CHANGELOG.search(path) or (path.startswith("docs/") and DOC_TEXT.search(path)):
        return None
    return (f"{path} is not documentation: a documenter edits Markdown files (*.md), text pages under docs/ and the "
            "changelog only; leave code, tests and configuration to the coder")


def page_path(path: str) -> str | None:
    """Where the API page of the module at ``path`` goes (``pkg/mod.py`` → ``docs/api/pkg/mod.md``); None for a file
    that is not an importable module, or is a test."""
    if not MODULE.fullmatch(path) or TEST_FILE.search(path):
        return None
    return f"{API}/{path[:-3]}.md"


def api_page(path: str, source: str) -> str:
    """The API reference page of the module at ``path`` whose text is ``source``; never runs or imports it.

    Deterministic: the same ``path`` and ``source`` give the same page. A module that does not parse gets a page
    that says so. Only public names are listed (no leading ``_``; and in ``__all__``, if the module lists one), in
    the order they are defined; of a class, its public methods and ``__init__``. Text from the module appears only
    inside fenced blocks (:func:`fenced`), so a docstring cannot add structure to the page.
    """
    name = path[:-3].replace("/", ".").removesuffix(".__init__")
    head = [f"<!-- Generated by docs.write from {path}: change the docstrings there, not this page. -->", "",
            f"# `{name}`", ""]
    try:
        module = ast.parse(source, filename=path)
        return "\n".join(head + _module(module)).rstrip("\n") + "\n"
    except SyntaxError as exc:
        said = f"{exc.msg} (line {exc.lineno})" if exc.lineno else exc.msg
    except (ValueError, RecursionError, MemoryError) as exc:
        said = f"{type(exc).__name__}: {exc}"
    return "\n".join([*head, "This module could not be read, so its API is not listed here. Python's parser said:",
                      "", fenced(said, "text"), ""])


def fenced(text: str, info: str) -> str:
    """``text`` as a fenced code block that nothing inside it can close: its fence is longer than any run of
    backticks in it (CommonMark closes a fence only with one at least as long). Control characters are dropped."""
    text = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip("\n")
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{info}\n{text}\n{fence}"


Definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def _module(module: ast.Module) -> list[str]:
    """The page's body: the module's docstring, then each public definition with its members."""
    doc = ast.get_docstring(module, clean=True)
    lines = [fenced(doc, "text") if doc else "The module has no docstring.", ""]
    exported = _exported(module)
    public = [node for node in module.body if isinstance(node, Definition) and not node.name.startswith("_")
              and (exported is None or node.name in exported)]
    if not public:
        lines += ["The module defines no public class or function.", ""]
    for node in public:
        lines += _definition(node, f"`{node.name}`", "##")
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and (
                        not member.name.startswith("_") or member.name == "__init__"):
                    lines += _definition(member, f"`{node.name}.{member.name}`", "###")
    return lines


def _definition(node: Definition, title: str, level: str) -> list[str]:
    """A heading, the signature (decorators included) and the docstring's first paragraph of one definition."""
    doc = ast.get_docstring(node, clean=True)
    first = re.split(r"\n[ \t]*\n", doc.strip(), maxsplit=1)[0] if doc and doc.strip() else ""
    return [f"{level} {title}", "", fenced(_signature(node), "python"), "",
            fenced(first, "text") if first else "No docstring.", ""]


def _signature(node: Definition) -> str:
    lines = [f"@{ast.unparse(d)}" for d in node.decorator_list]
    params = getattr(node, "type_params", None) or []  # Python 3.12's generics; 3.11 cannot parse them
    generic = f"[{', '.join(ast.unparse(p) for p in params)}]" if params else ""
    if isinstance(node, ast.ClassDef):
        bases = [ast.unparse(b) for b in [*node.bases, *node.keywords]]
        lines.append(f"class {node.name}{generic}" + (f"({', '.join(bases)})" if bases else ""))
    else:
        kind = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        lines.append(f"{kind} {node.name}{generic}({ast.unparse(node.args)}){returns}")
    return "\n".join(lines)


def _exported(module: ast.Module) -> set[str] | None:
    """The names a literal ``__all__`` lists (None when the module has none, or builds it in code)."""
    for node in module.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                and isinstance(node.value, ast.List | ast.Tuple)):
            names = [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(names) == len(node.value.elts):
                return set(names)
    return None
