"""A repository map: the definitions a coding agent most likely needs, as signature lines, within a token budget.

After Aider's repo map. Every Python file is read into :class:`Tag` s — its definitions (module-level functions,
classes, methods, module-level assigned names) and its references (every name and attribute used). A graph runs
from each file that references an identifier to each file that defines it; a personalized PageRank over that graph
ranks files, each file's rank is shared out over the definitions it points at, and :func:`repo_map` renders as many
of the best definitions as fit the budget::

    shapes.py:
      class Circle(Shape)
        def area(self, scale: float = 1.0) -> float
    other files:
      README.md

**Only Python gets definitions.** Files in other languages (and Python files that define nothing or do not
parse) appear by path only, under ``other files:``, when the budget has room left after every definition.

Pure: no I/O, no Ray. The caller passes the sources as text (decoding them is the caller's concern), and the
same input always gives the same map.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from keyword import iskeyword
from typing import Literal

import msgspec

DAMPING = 0.85
"""PageRank's damping: the chance that the walk follows an edge rather than jumps to a focus file."""

MAX_EXPRESSION_CHARS = 60
"""An annotation, default or assigned value longer than this (or over several lines) is shown as ``...``."""


class Tag(msgspec.Struct, frozen=True):
    """A definition or a reference of one identifier at one line (1-based) of one file.

    ``signature`` is set for definitions only: the one line as it reads in code (``def area(self) -> float``,
    ``class Circle(Shape)``, ``LIMIT = 3``). ``scope`` names the classes around a definition, dotted
    (``"Shape"`` for its methods, ``"Outer.Inner"`` deeper), and is empty at module level; it is how a rendered
    method keeps its class as context.
    """

    path: str
    line: int
    name: str
    kind: Literal["def", "ref"]
    signature: str = ""
    scope: str = ""


# -- tags ----------------------------------------------------------------------------------------------------------


def python_tags(path: str, source: str) -> list[Tag]:
    """The definitions and references of one Python file, in line order; ``[]`` when it does not parse.

    Anything the parser refuses — a syntax error, a NUL byte, nesting deep enough to raise ``RecursionError`` or
    ``MemoryError`` — counts as "does not parse": this function never raises for what the source contains.
    """
    try:
        tree = ast.parse(source)
        tags = list(_definitions(path, tree.body, scope=""))
        tags.extend(_references(path, tree))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return sorted(tags, key=lambda tag: (tag.line, tag.kind, tag.name))


def _definitions(path: str, body: list[ast.stmt], scope: str) -> Iterator[Tag]:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield Tag(path, node.lineno, node.name, "def", _function_signature(node), scope)
        elif isinstance(node, ast.ClassDef):
            yield Tag(path, node.lineno, node.name, "def", _class_signature(node), scope)
            yield from _definitions(path, node.body, f"{scope}.{node.name}" if scope else node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            if not scope:
                signature = _assignment_signature(node)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for name in _assigned_names(targets):
                    yield Tag(path, node.lineno, name, "def", signature, scope)
        else:  # if/try/with/for/match blocks define at their own level (``if TYPE_CHECKING:``, import fallbacks)
            for block in _blocks(node):
                yield from _definitions(path, block, scope)


def _blocks(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if isinstance(block, list):
            yield block
    for part in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
        yield part.body


def _references(path: str, tree: ast.AST) -> Iterator[Tag]:
    for node in ast.walk(tree):  # iterative: a deep tree that parsed cannot overflow the stack here
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
            yield Tag(path, node.lineno, node.id, "ref")
        elif isinstance(node, ast.Attribute):
            yield Tag(path, node.end_lineno or node.lineno, node.attr, "ref")


def _assigned_names(targets: Iterable[ast.expr]) -> Iterator[str]:
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, ast.Tuple | ast.List):
            yield from _assigned_names(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _assigned_names([target.value])


def _short(node: ast.expr | None) -> str:
    """``node`` as code, or ``...`` when it spans lines or is long (which also bounds ``unparse``'s recursion)."""
    if node is None:
        return ""
    if node.end_lineno != node.lineno or (node.end_col_offset or 0) - node.col_offset > MAX_EXPRESSION_CHARS:
        return "..."
    return ast.unparse(node)


def _function_signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    returns = f" -> {_short(node.returns)}" if node.returns is not None else ""
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({_parameters(node.args)}){returns}"


def _parameters(args: ast.arguments) -> str:
    def one(arg: ast.arg, default: ast.expr | None = None) -> str:
        text = f"{arg.arg}: {_short(arg.annotation)}" if arg.annotation is not None else arg.arg
        if default is not None:
            text += f" = {_short(default)}" if arg.annotation is not None else f"={_short(default)}"
        return text

    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = [one(arg, default) for arg, default in zip(positional, defaults, strict=True)]
    if args.posonlyargs:
        parts.insert(len(args.posonlyargs), "/")
    if args.vararg is not None:
        parts.append("*" + one(args.vararg))
    elif args.kwonlyargs:
        parts.append("*")
    parts.extend(one(arg, default) for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True))
    if args.kwarg is not None:
        parts.append("**" + one(args.kwarg))
    return ", ".join(parts)


def _class_signature(node: ast.ClassDef) -> str:
    bases = [_short(base) for base in node.bases]
    bases += [f"{kw.arg}={_short(kw.value)}" if kw.arg else f"**{_short(kw.value)}" for kw in node.keywords]
    return f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}"


def _assignment_signature(node: ast.Assign | ast.AnnAssign) -> str:
    if isinstance(node, ast.AnnAssign):
        text = f"{_short(node.target)}: {_short(node.annotation)}"
        return text if node.value is None else f"{text} = {_short(node.value)}"
    return " = ".join([*(_unbracketed(target) for target in node.targets), _unbracketed(node.value)])


def _unbracketed(node: ast.expr) -> str:
    """``A, B`` rather than ``unparse``'s ``(A, B)`` for a tuple on either side of ``=``."""
    text = _short(node)
    if isinstance(node, ast.Tuple) and node.elts and text != "...":
        return ", ".join(ast.unparse(element) for element in node.elts) + ("," if len(node.elts) == 1 else "")
    return text


# -- ranking -------------------------------------------------------------------------------------------------------


def rank(tags: Iterable[Tag], *, focus: Iterable[str] = (),
         mentioned: Iterable[str] = ()) -> list[tuple[Tag, float]]:
    """Every definition among ``tags`` with its score, best first (Aider's weighting, described below).

    An edge runs from each file referencing an identifier to each file defining it, weighted by
    ``sqrt(references)`` times: 10 if the identifier is ``mentioned``; 10 if it is long (8+ characters) and
    snake_case or mixed case; 0.1 if it starts with ``_``; 0.1 if more than 5 files define it; 50 if the
    referencing file is in ``focus``. An identifier nobody references gets a weak (0.1) edge from each defining
    file to itself, so that it is ranked too. A personalized PageRank (damping :data:`DAMPING`, restarting at the
    ``focus`` files that have tags, or at any file when none has) ranks the files, and each file's rank is shared
    over its out-edges in proportion to their weights: a definition's score is what reaches its (file, identifier).

    Definitions in ``focus`` files come last with score 0.0 (the agent reads those files whole). Ties are broken
    by path, then line, then name, so the order is a function of the input alone.
    """
    focus_files = set(focus)
    mentioned_names = set(mentioned)
    definitions: list[Tag] = []
    definers: defaultdict[str, set[str]] = defaultdict(set)
    references: defaultdict[str, Counter[str]] = defaultdict(Counter)
    files: set[str] = set()
    for tag in tags:
        files.add(tag.path)
        if tag.kind == "def":
            definitions.append(tag)
            definers[tag.name].add(tag.path)
        else:
            references[tag.name][tag.path] += 1

    # edges[source][(target, identifier)] = weight; sorted before use so that float sums run in one order
    edges: defaultdict[str, defaultdict[tuple[str, str], float]] = defaultdict(lambda: defaultdict(float))
    for name, defining in definers.items():
        if name not in references:
            for path in defining:
                edges[path][(path, name)] += 0.1
            continue
        weight = _identifier_weight(name, len(defining), name in mentioned_names)
        for referrer, count in references[name].items():
            boosted = weight * (50.0 if referrer in focus_files else 1.0) * math.sqrt(count)
            for path in defining:
                edges[referrer][(path, name)] += boosted

    nodes = sorted(files)
    restart = sorted(focus_files & files) or nodes
    file_rank = _pagerank(nodes, edges, restart)
    score: defaultdict[tuple[str, str], float] = defaultdict(float)
    for source in nodes:
        out = sorted(edges.get(source, {}).items())
        total = sum(weight for _, weight in out)
        for target, weight in out:
            score[target] += file_rank[source] * weight / total

    def order(tag: Tag) -> tuple[bool, float, str, int, str]:
        in_focus = tag.path in focus_files
        return in_focus, 0.0 if in_focus else -score[(tag.path, tag.name)], tag.path, tag.line, tag.name

    return [(tag, 0.0 if tag.path in focus_files else score[(tag.path, tag.name)])
            for tag in sorted(definitions, key=order)]


def _identifier_weight(name: str, defining_files: int, is_mentioned: bool) -> float:
    weight = 10.0 if is_mentioned else 1.0
    snake = "_" in name and any(c.isalpha() for c in name)
    mixed = any(c.isupper() for c in name) and any(c.islower() for c in name)
    if len(name) >= 8 and (snake or mixed):
        weight *= 10.0
    if name.startswith("_"):
        weight *= 0.1
    if defining_files > 5:
        weight *= 0.1
    return weight


def _pagerank(nodes: list[str], edges: Mapping[str, Mapping[tuple[str, str], float]],
              restart: list[str]) -> dict[str, float]:
    """Power iteration, as networkx's ``pagerank``: a dangling file's rank restarts like the jump does."""
    index = {node: i for i, node in enumerate(nodes)}
    size = len(nodes)
    jump = [0.0] * size
    for node in restart:
        jump[index[node]] = 1.0 / len(restart)
    links: list[list[tuple[int, float]]] = [[] for _ in nodes]
    for node in nodes:
        merged: defaultdict[int, float] = defaultdict(float)
        for (path, _), weight in sorted(edges.get(node, {}).items()):
            merged[index[path]] += weight
        total = sum(merged.values())
        links[index[node]] = [(j, weight / total) for j, weight in sorted(merged.items())]
    rank = [1.0 / size] * size if size else []
    for _ in range(100):
        dangling = sum(rank[i] for i in range(size) if not links[i])
        new = [(DAMPING * dangling + 1.0 - DAMPING) * share for share in jump]
        for i, out in enumerate(links):
            for j, share in out:
                new[j] += DAMPING * rank[i] * share
        change = sum(abs(a - b) for a, b in zip(new, rank, strict=True))
        rank = new
        if change < size * 1e-6:
            break
    return dict(zip(nodes, rank, strict=True))


# -- rendering -----------------------------------------------------------------------------------------------------


def render(ranked: Sequence[tuple[Tag, float]], count: int, *, files: Iterable[str] = ()) -> str:
    """The map of the first ``count`` definitions of ``ranked``, then ``files`` by path; ``""`` when both are empty.

    Each file with a chosen definition gets a header line ``path:`` (in path order) and its definitions' signature
    lines in line order, indented two spaces per level: a method under its class, whose line is shown for context
    even when the class itself was not chosen (taken from ``ranked``, or ``class Name`` when it is not there).
    ``files`` not already shown follow, sorted, under ``other files:``. Reference tags in ``ranked`` are skipped.
    """
    classes = {(tag.path, _qualified(tag)): tag for tag, _ in ranked
               if tag.kind == "def" and tag.signature.startswith("class ")}
    lines: defaultdict[str, set[tuple[int, int, str]]] = defaultdict(set)
    for tag, _ in ranked[:max(count, 0)]:
        if tag.kind != "def":
            continue
        lines[tag.path].add((tag.line, _depth(tag.scope), tag.signature))
        parts = tag.scope.split(".") if tag.scope else []
        for depth in range(len(parts)):
            qualified = ".".join(parts[:depth + 1])
            context = classes.get((tag.path, qualified))
            if context is not None:
                lines[tag.path].add((context.line, depth, context.signature))
            else:  # shown just above the member (same line, lesser depth sorts first)
                lines[tag.path].add((tag.line, depth, f"class {parts[depth]}"))
    out: list[str] = []
    for path in sorted(lines):
        out.append(f"{path}:")
        out.extend("  " * (depth + 1) + signature for _, depth, signature in sorted(lines[path]))
    others = sorted(set(files) - set(lines))
    if others:
        out.append("other files:")
        out.extend(f"  {path}" for path in others)
    return "\n".join(out) + "\n" if out else ""


def _qualified(tag: Tag) -> str:
    return f"{tag.scope}.{tag.name}" if tag.scope else tag.name


def _depth(scope: str) -> int:
    return scope.count(".") + 1 if scope else 0


# -- the map -------------------------------------------------------------------------------------------------------


def _four_characters_a_token(text: str) -> int:
    return len(text) // 4 + 1


def repo_map(sources: Mapping[str, str], *, focus: Iterable[str] = (), mentioned: Iterable[str] = (),
             max_tokens: int = 1024, count_tokens: Callable[[str], int] = _four_characters_a_token) -> str:
    """The map of ``sources`` (path → text) that fits ``max_tokens`` as counted by ``count_tokens``; never more.

    The ``.py`` files are tagged and :func:`rank` ed; the other paths (other languages, Python that defines
    nothing or does not parse) rank after every definition. A binary search finds the longest prefix of that one
    ranking whose :func:`render` ing fits. It runs to the end rather than stop, as Aider does, at the first map
    within 15% under the budget: that would let a larger budget show less (it does, one token up from 174, on a
    60-module repository), and a render costs about a millisecond. So, with a count that grows with the text, a
    larger budget never shows less, and what it shows is within a line or two of the budget. The default count
    is a quarter of the characters plus one. An empty ``sources``, a budget of 0 or less, or a budget nothing fits
    gives ``""``.
    """
    if max_tokens <= 0 or not sources:
        return ""
    tags = [tag for path in sorted(sources) if path.endswith(".py") for tag in python_tags(path, sources[path])]
    ranked = rank(tags, focus=focus, mentioned=mentioned)
    shown = {tag.path for tag, _ in ranked}
    others = sorted(path for path in sources if path not in shown)

    def text(n: int) -> str:
        return render(ranked, min(n, len(ranked)), files=others[:max(n - len(ranked), 0)])

    # Invariant: the prefix of length `fits` renders within the budget (length 0 renders as "").
    fits, too_many = 0, len(ranked) + len(others) + 1
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if count_tokens(text(middle)) <= max_tokens:
            fits = middle
        else:
            too_many = middle
    return text(fits)


_WORD = re.compile(r"`([^`\n]+)`|(?<!\w)([^\W\d]\w*)(\s*\()?")


def mentioned_identifiers(text: str) -> set[str]:
    """The words of ``text`` that look like code identifiers, for :func:`rank` 's ``mentioned``.

    A word counts when it has at least 3 characters, is not a Python keyword, and either contains ``_``, has a
    capital after its first letter (``getUser``, ``HTTPServer``; a capitalised word alone, like a sentence's
    first, does not count), is followed by ``(``, or is inside backticks (where every identifier counts).
    """
    found: set[str] = set()
    for match in _WORD.finditer(text):
        quoted, word, call = match.groups()
        if quoted is not None:
            found.update(w for w in re.findall(r"[^\W\d]\w*", quoted) if len(w) >= 3 and not iskeyword(w))
        elif len(word) >= 3 and not iskeyword(word) and (
                "_" in word or call is not None
                or (any(c.isupper() for c in word[1:]) and any(c.islower() for c in word))):
            found.add(word)
    return found
