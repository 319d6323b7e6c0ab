"""File edits a model writes as SEARCH/REPLACE blocks (Aider's "diff" format): read them from a reply, apply them.

A block is the file's path alone on a line, an optional opening fence (```` ```python ````, ```` ``` ```` or
``~~~``), then::

    <<<<<<< SEARCH
    (lines to find)
    =======
    (lines to put instead)
    >>>>>>> REPLACE

and the closing fence. Markers have 5 to 9 of their character, start their line and may end in spaces. A block
separated from the one before it by nothing but blank and fence lines may omit its path: it edits the same file.
An empty (or blank) SEARCH creates a file. Everything outside blocks is the model's prose and is ignored, except a
stray ``=======`` or ``>>>>>>> REPLACE``, which means a block is broken. A file whose own lines are markers (a
reStructuredText underline of 5 to 9 ``=``, conflict markers) cannot be edited in this format.

:func:`parse_edits` reads a reply into :class:`EditBlock` values whose paths are relative, normalised, inside the
repository and outside ``.git/``, and whose texts end every line in ``\\n`` (a CRLF reply is read as LF); anything
else is :class:`MalformedEdit`. :func:`apply_edit` applies one block to a file's text and
:func:`apply_edits` applies a reply's blocks to a set of files, collecting what did not apply for
:func:`failure_report`. All of it is pure: no I/O, the caller reads and writes the files.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import msgspec

from events.errors import CouncilError

__all__ = ["FORMAT", "Applied", "EditBlock", "EditDoesNotApply", "MalformedEdit", "apply_edit", "apply_edits",
           "failure_report", "parse_edits"]

FORMAT = """\
Change files with SEARCH/REPLACE blocks. A block is the file's path alone on a line, an opening fence, \
<<<<<<< SEARCH, the existing lines to find, =======, the lines to put in their place, >>>>>>> REPLACE, \
and a closing fence:

src/greet.py
```python
<<<<<<< SEARCH
def greet(name):
    return "hello " + name
=======
def greet(name: str) -> str:
    return f"hello {name}"
>>>>>>> REPLACE
```

- SEARCH must copy the existing lines exactly, character for character: indentation, comments, docstrings.
- SEARCH must match one place only. Keep blocks small: the lines that change and just enough around them to be \
unique. Make several changes with several blocks.
- To create a new file, leave SEARCH empty and put the whole file between ======= and >>>>>>> REPLACE.
- Paths are relative to the repository root. Never write a block for a file whose contents you were not shown, \
except to create a new one.
"""
"""The instructions for a system prompt; its example is a block :func:`parse_edits` reads."""

REMINDER = ("Write each edit as the file's path alone on a line, then ```, then <<<<<<< SEARCH, the exact lines "
            "to find, =======, the lines to put instead, >>>>>>> REPLACE, and ``` to close.")
"""The short statement of the format every :class:`MalformedEdit` message ends with."""

_HEAD = re.compile(r"<{5,9} SEARCH>?[ \t]*")
_DIVIDER = re.compile(r"={5,9}[ \t]*")
_END = re.compile(r">{5,9} REPLACE[ \t]*")
_FENCE = re.compile(r"[ \t]*(?:`{3,}|~{3,})[^`]*")
_HEADING = re.compile(r"#+\s+")


class EditBlock(msgspec.Struct, frozen=True):
    """One edit: in the file at ``path``, replace the lines ``search`` with ``replace``.

    ``path`` is relative to the repository root, in ``/`` form. ``search`` and ``replace`` are whole lines with
    their line endings; ``search == ""`` creates the file with ``replace`` as its content.
    """

    path: str
    search: str
    replace: str


class Applied(msgspec.Struct, frozen=True):
    """What :func:`apply_edits` did: the new content of every file a block changed, and the blocks that failed.

    ``succeeded`` holds the blocks that applied, in order, so a report can say how many did.
    """

    changed: dict[str, str]
    failed: list[tuple[EditBlock, str]]
    succeeded: list[EditBlock] = []


class MalformedEdit(CouncilError):
    """A reply whose SEARCH/REPLACE blocks cannot be read; the message is written for the model to fix them.

    ``block`` is the 1-based number of the broken block (``None`` when the reply holds none), ``path`` its file
    when that was read.
    """

    def __init__(self, problem: str, block: int | None = None, path: str | None = None) -> None:
        self.problem = problem
        self.block = block
        self.path = path
        where = "" if block is None else f"block {block}" + ("" if path is None else f" ({path})") + ": "
        super().__init__(f"{where}{problem}. {REMINDER}")

    def __reduce__(self) -> tuple[type, tuple[str, int | None, str | None]]:  # crosses process boundaries intact
        return (type(self), (self.problem, self.block, self.path))


class EditDoesNotApply(CouncilError):
    """A block that was read but does not fit its file; the message (several lines) goes back to the model."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.path, str(self)))


# -- reading a reply -------------------------------------------------------------------------------


def parse_edits(reply: str) -> list[EditBlock]:
    """Every SEARCH/REPLACE block of ``reply``, in order; :class:`MalformedEdit` if any cannot be read or none is there.

    A fence left open after a block means the reply was cut off or garbled, and is refused too.
    """
    lines = reply.replace("\r\n", "\n").split("\n")
    blocks: list[EditBlock] = []
    last_end = -1  # the line of the previous block's >>>>>>> REPLACE
    open_fence: int | None = None  # the line of a fence opened outside blocks and not yet closed
    block_in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        number = len(blocks) + 1
        if _HEAD.fullmatch(line):
            path = _path_before(lines, i, last_end, blocks[-1].path if blocks else None, number)
            search, i = _section(lines, i + 1, number, path, closing=_DIVIDER)
            replace, i = _section(lines, i + 1, number, path, closing=_END)
            blocks.append(EditBlock(path=path, search=search if search.strip() else "", replace=replace))
            last_end = i
            block_in_fence = open_fence is not None
        elif _DIVIDER.fullmatch(line) or _END.fullmatch(line):
            raise MalformedEdit(f"line {i + 1} of the reply, {line.strip()!r}, belongs to no block: "
                                "its <<<<<<< SEARCH line is missing or misspelled", number)
        elif _FENCE.fullmatch(line):
            open_fence, block_in_fence = (i if open_fence is None else None), False
        i += 1
    if not blocks:
        raise MalformedEdit("the reply holds no SEARCH/REPLACE block")
    if open_fence is not None and block_in_fence:
        raise MalformedEdit(f"the fence {lines[open_fence].strip()!r} opened on line {open_fence + 1} of the reply "
                            "is never closed; end it with ``` on its own line after >>>>>>> REPLACE",
                            len(blocks), blocks[-1].path)
    return blocks


def _section(lines: list[str], start: int, number: int, path: str, closing: re.Pattern[str]) -> tuple[str, int]:
    """The text from ``start`` up to the line ``closing`` matches, and that line's index."""
    name = "SEARCH" if closing is _DIVIDER else "REPLACE"
    for j in range(start, len(lines)):
        line = lines[j]
        if closing.fullmatch(line):
            return "".join(f"{body}\n" for body in lines[start:j]), j
        if _HEAD.fullmatch(line):
            want = "=======" if closing is _DIVIDER else ">>>>>>> REPLACE"
            raise MalformedEdit(f"its {name} section runs into the next <<<<<<< SEARCH (line {j + 1}) without "
                                f"its {want} line", number, path)
        if _END.fullmatch(line):  # only reached while looking for the divider
            raise MalformedEdit(f"its SEARCH section has no ======= divider before >>>>>>> REPLACE (line {j + 1})",
                                number, path)
        if _DIVIDER.fullmatch(line):  # only reached while looking for the end
            raise MalformedEdit(f"its REPLACE section holds a second ======= (line {j + 1}); end REPLACE with "
                                ">>>>>>> REPLACE", number, path)
    missing = "no ======= divider and no >>>>>>> REPLACE end" if closing is _DIVIDER else "no >>>>>>> REPLACE end"
    raise MalformedEdit(f"the reply ends inside it, with {missing} (was the reply cut off?)", number, path)


def _path_before(lines: list[str], head: int, floor: int, previous: str | None, number: int) -> str:
    """The path of the block whose ``<<<<<<< SEARCH`` is on line ``head``: the nearest line above it that is not
    blank and not a fence, or ``previous`` when nothing but blank and fence lines separate it from that block."""
    j = head - 1
    while j > floor and (not lines[j].strip() or _FENCE.fullmatch(lines[j])):
        j -= 1
    if j > floor:
        return _clean_path(lines[j], number)
    if previous is None:
        raise MalformedEdit("no file path before <<<<<<< SEARCH; put the file's path alone on the line before "
                            "the opening fence", number)
    return previous


def _clean_path(raw: str, number: int) -> str:
    """The path a path line names, without Markdown decoration, checked and normalised."""
    text, before = raw.strip(), None
    while text != before:
        before = text
        text = _HEADING.sub("", text.strip(), count=1).strip("`*").rstrip(":").strip()
    text = text.replace("\\_", "_")  # Markdown's escaped underscore

    def refuse(why: str) -> MalformedEdit:
        return MalformedEdit(f"the path line {raw.strip()!r} {why}", number)

    if not text:
        raise refuse("names no file; put the file's path alone on the line before the opening fence")
    if any(char.isspace() for char in text):
        raise refuse("is not a file path (a path is alone on its line and holds no spaces); put the file's path "
                     "there, or start a block for the same file right after the previous >>>>>>> REPLACE")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise refuse("holds control characters")
    if "\\" in text:
        raise refuse("uses backslashes; separate directories with /")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text) or text.split("/")[0] == "~":
        raise refuse("is absolute; give the path relative to the repository root")
    parts = text.split("/")
    if ".." in parts:
        raise refuse("climbs with '..'; give the path from the repository root without '..'")
    if text.endswith("/"):
        raise refuse("names a directory, not a file")
    parts = [part for part in parts if part not in ("", ".")]
    if not parts:
        raise refuse("names the repository root, not a file")
    if any(part.lower() == ".git" for part in parts):
        raise refuse("is inside .git/, which edits never touch")
    return "/".join(parts)


# -- applying a block ------------------------------------------------------------------------------


def apply_edit(content: str | None, block: EditBlock) -> str:
    """The file's content after ``block``; ``content`` is ``None`` when the file does not exist.

    A blank SEARCH creates the file (it must be missing, empty or blank). Otherwise SEARCH must match one run of
    whole lines: exactly, else after a uniform change of indentation and ignoring trailing spaces (REPLACE then gets
    the same change of indentation); nothing fuzzier. Lines outside the run, the file's line ending (``\\n`` or
    ``\\r\\n``) and whether it ends with one are kept. Raises :class:`EditDoesNotApply` saying why and what to send.
    """
    path = block.path
    if not block.search.strip():
        if content is None or not content.strip():
            return block.replace
        raise EditDoesNotApply(path, f"{path} already exists; to change it, SEARCH for the lines to replace "
                                     "(an empty SEARCH only creates a new file).")
    if content is None:
        raise EditDoesNotApply(path, f"{path} does not exist, so its SEARCH lines cannot be found; to create it, "
                                     "leave SEARCH empty and put the whole file after =======.")
    lines = _split(content)
    bodies = [_body(line) for line in lines]
    search, replace = [_body(line) for line in _split(block.search)], [_body(line) for line in _split(block.replace)]
    newline = "\r\n" if next((line for line in lines if line.endswith("\n")), "").endswith("\r\n") else "\n"
    starts = _exact(bodies, search)
    if len(starts) == 1:
        return _splice(lines, starts[0], len(search), replace, newline)
    if starts:
        raise EditDoesNotApply(path, _ambiguous(path, starts, ""))
    loose = _loose(bodies, search)
    if len(loose) == 1:
        start, indent = loose[0]
        return _splice(lines, start, len(search), _reindent(replace, _indent_of(search), indent), newline)
    if loose:
        raise EditDoesNotApply(path, _ambiguous(path, [start for start, _ in loose],
                                                " when indentation and trailing spaces are ignored"))
    raise EditDoesNotApply(path, _not_found(block, bodies, search, replace))


def _split(text: str) -> list[str]:
    """``text``'s lines, each with its ``\\n`` (the last may have none); only ``\\n`` ends a line."""
    lines = text.split("\n")
    last = lines.pop()
    return [f"{line}\n" for line in lines] + ([last] if last else [])


def _body(line: str) -> str:
    """A line without its ``\\n`` or ``\\r\\n``."""
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def _exact(bodies: list[str], search: list[str]) -> list[int]:
    """Where ``search`` occurs in ``bodies`` as a run of equal lines."""
    size = len(search)
    return [i for i in range(len(bodies) - size + 1) if bodies[i:i + size] == search]


def _indent_of(lines: list[str]) -> int:
    """The smallest indentation among the non-blank ``lines``."""
    return min(len(line) - len(line.lstrip()) for line in lines if line.strip())


def _loose(bodies: list[str], search: list[str]) -> list[tuple[int, str]]:
    """Where ``search`` occurs in ``bodies`` once every line's trailing spaces are dropped and its indentation moved
    by the same amount, with the indentation the run's least indented line has in the file."""
    trimmed = [line.rstrip() for line in search]
    least = _indent_of(trimmed)
    core = [line[least:] for line in trimmed]
    found: list[tuple[int, str]] = []
    for start in range(len(bodies) - len(core) + 1):
        indent: str | None = None
        for want, have in zip(core, (body.rstrip() for body in bodies[start:start + len(core)]), strict=True):
            if not want and not have:
                continue
            prefix = have[:len(have) - len(want)]
            if not want or not have.endswith(want) or prefix.strip() or indent not in (None, prefix):
                break
            indent = prefix
        else:
            found.append((start, indent or ""))
    return found


def _reindent(lines: list[str], least: int, indent: str) -> list[str]:
    """``lines`` with the ``least`` columns of indentation the SEARCH lines shared replaced by ``indent``."""
    moved: list[str] = []
    for line in lines:
        own = len(line) - len(line.lstrip())
        if not line.strip():
            moved.append(line)
        elif own >= least:
            moved.append(indent + line[least:])
        else:  # less indented than SEARCH was: move it by the same offset, down to no indentation
            moved.append(indent[:max(0, len(indent) - (least - own))] + line[own:])
    return moved


def _splice(lines: list[str], start: int, size: int, new: list[str], newline: str) -> str:
    """``lines`` with ``lines[start:start + size]`` replaced by ``new`` (bodies, given ``newline`` endings)."""
    before, inserted, after = lines[:start], [f"{body}{newline}" for body in new], lines[start + size:]
    if not after and not lines[-1].endswith("\n"):  # the run ended a file that has no final newline: keep it so
        if inserted:
            inserted[-1] = inserted[-1][:-len(newline)]
        elif before:
            before[-1] = _body(before[-1])
    return "".join(before + inserted + after)


# -- what goes back to the model -------------------------------------------------------------------


def _ambiguous(path: str, starts: list[int], how: str) -> str:
    """The message for a SEARCH that matches several places."""
    at = ", ".join(str(start + 1) for start in starts[:5]) + (", ..." if len(starts) > 5 else "")
    return (f"The SEARCH lines match {len(starts)} places in {path}{how} (starting on lines {at}); include more "
            "of the lines around the change in SEARCH to make it unique.")


def _not_found(block: EditBlock, bodies: list[str], search: list[str], replace: list[str]) -> str:
    """The message for a SEARCH that matches nowhere: what was sought, and the file's nearest lines if any."""
    path = block.path
    parts = [f"The SEARCH lines match no lines in {path}. They were:", _fenced(search)]
    start, size = _closest(bodies, search)
    if size:
        parts += [f"Did you mean to match these lines of {path} (lines {start + 1}-{start + size})?",
                  _fenced(bodies[start:start + size])]
    if any(line.strip() for line in replace) and _exact(bodies, replace):
        parts.append(f"Are you sure you need this block? Its REPLACE lines are already in {path}.")
    parts.append("SEARCH must copy the existing lines exactly, with their whitespace, comments and docstrings.")
    return "\n".join(parts)


def _closest(bodies: list[str], search: list[str]) -> tuple[int, int]:
    """The first run of ``len(search)`` file lines that holds the most SEARCH lines (compared stripped), as (start,
    size); size 0 when no non-blank SEARCH line occurs in the file."""
    wanted = Counter(line.strip() for line in search if line.strip())
    size = min(len(search), len(bodies))
    best, best_start = 0, 0
    for start in range(len(bodies) - size + 1):
        window = Counter(body.strip() for body in bodies[start:start + size])
        score = sum(min(count, window[line]) for line, count in wanted.items())
        if score > best:
            best, best_start = score, start
    return (best_start, size) if best else (0, 0)


def _fenced(lines: list[str]) -> str:
    """``lines`` inside a fence longer than any run of backticks they hold."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence, *lines, fence])


# -- a reply's blocks over a set of files ----------------------------------------------------------


def apply_edits(files: Mapping[str, str | None], blocks: Sequence[EditBlock]) -> Applied:
    """Apply ``blocks`` in order to ``files`` (path -> content, ``None`` or absent: no such file).

    Blocks on one file apply one after another to its running content; a block that does not apply is recorded in
    ``failed`` with the reason and changes nothing. Never raises :class:`EditDoesNotApply`.
    """
    changed: dict[str, str] = {}
    failed: list[tuple[EditBlock, str]] = []
    succeeded: list[EditBlock] = []
    for block in blocks:
        content = changed[block.path] if block.path in changed else files.get(block.path)
        try:
            changed[block.path] = apply_edit(content, block)
        except EditDoesNotApply as error:
            failed.append((block, str(error)))
        else:
            succeeded.append(block)
    return Applied(changed=changed, failed=failed, succeeded=succeeded)


def failure_report(applied: Applied) -> str:
    """What to tell the model about the blocks that failed (``""`` when none did): each one's path and reason, then,
    if others applied, that they must not be sent again."""
    if not applied.failed:
        return ""
    failed, done = len(applied.failed), len(applied.succeeded)
    parts = [f"# {failed} SEARCH/REPLACE {'block' if failed == 1 else 'blocks'} failed to apply"]
    parts += [f"\n## {block.path}\n{why}" for block, why in applied.failed]
    if done:
        these = ("block was", "it") if done == 1 else ("blocks were", "them")
        parts.append(f"\nThe other {done} SEARCH/REPLACE {these[0]} applied successfully. Don't re-send {these[1]}. "
                     f"Just reply with fixed versions of the {'block' if failed == 1 else 'blocks'} above that failed "
                     "to match.")
    return "\n".join(parts) + "\n"
