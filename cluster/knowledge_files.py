"""Knowledge as files a team reviews in pull requests: ``knowledge/`` in a repository, one Markdown file an entry.

::

    knowledge/
      context/payments.md      patterns/jwt-hs256.md      practices/review-sql.md      lessons/flaky-clock.md

Each file opens with a TOML header between ``+++`` lines, then the entry's title as a first-level
heading, then its body::

    +++
    id = "jwt-hs256"
    kind = "pattern"
    tags = ["auth", "jwt"]
    +++
    # Sign tokens with HS256 and a 32-byte secret

    Issue them with ``issue_token`` …

The header's fields: ``id`` (lower-case letters, digits and dashes), ``kind`` (context, pattern,
practice or lesson — the file's folder must be the kind's), ``tags``, and, as an export writes
them, ``source``, ``origin`` and ``evidence``. :func:`read_directory` reads a whole tree and
refuses it, naming the file and what is wrong, before anything is written; :func:`changes` is what
importing it appends (an entry per new file, a revision per changed one, nothing for the rest);
:func:`export` writes the current entries back, so that importing an export changes nothing.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events import NO_STREAM, CouncilError, Intent, streams
from events.catalogue import KnowledgeAdded, KnowledgeKind, KnowledgeRevised, KnowledgeSource
from projections.knowledge import Entry, KnowledgeBase

FOLDERS: dict[str, str] = {"context": "context", "pattern": "patterns", "practice": "practices", "lesson": "lessons"}
"""Kind → the folder its files live in."""
MOST_BYTES = 256 * 1024
"""The largest knowledge file read."""
FENCE = "+++"


class KnowledgeFileError(CouncilError):
    """A knowledge file or directory cannot be read as entries: which, where, and what to change."""


class Header(BaseModel):
    """A knowledge file's TOML header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    kind: KnowledgeKind
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)
    source: KnowledgeSource = "import"
    origin: Annotated[str, Field(max_length=1000)] = ""
    evidence: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=1000)


@dataclass(frozen=True)
class EntryText:
    """An entry as a file says it: its header, title and body, and the file."""

    header: Header
    title: str
    body: str
    path: str


def parse(path: str, text: str) -> EntryText:
    """The entry in ``text`` (the file at ``path``, relative to the knowledge directory); :class:`KnowledgeFileError`
    naming the file, the line and what to change if it is not one."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != FENCE:
        raise KnowledgeFileError(f"{path}:1: a knowledge file starts with a TOML header between {FENCE} lines "
                                 f"(id, kind, tags), then '# Title', then the body")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    except StopIteration:
        raise KnowledgeFileError(f"{path}: the header opened on line 1 is never closed; end it with a line "
                                 f"{FENCE}") from None
    try:
        raw: dict[str, Any] = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeFileError(f"{path}: the header is not TOML ({exc}); write it as key = value lines") from None
    try:
        header = Header.model_validate(raw)
    except ValidationError as exc:
        said = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'header'}: {e['msg']}" for e in exc.errors()[:5])
        raise KnowledgeFileError(f"{path}: the header does not fit ({said})") from None
    rest = lines[end + 1:]
    first = next((i for i, line in enumerate(rest) if line.strip()), None)
    heading = re.match(r"^#\s+(\S.*)$", rest[first]) if first is not None else None
    if first is None or heading is None:
        raise KnowledgeFileError(f"{path}:{end + 2}: after the header comes the entry's title as '# Title'")
    folder = Path(path).parts[0] if len(Path(path).parts) > 1 else ""
    if folder != FOLDERS[header.kind]:
        where = f"{folder}/" if folder else "the top of the directory"
        raise KnowledgeFileError(f"{path}: a {header.kind} belongs in {FOLDERS[header.kind]}/, not {where}; move "
                                 "the file or change its kind")
    body = "\n".join(rest[first + 1:]).strip()
    return EntryText(header, heading[1].strip(), body, path)


def render(entry: Entry) -> str:
    """``entry`` as its file: the header, the title, the body (what :func:`parse` reads back as the same)."""
    header = [FENCE, f"id = {_toml(entry.entry_id)}", f"kind = {_toml(entry.kind)}",
              f"tags = [{', '.join(_toml(t) for t in entry.tags)}]", f"source = {_toml(entry.source)}"]
    if entry.origin:
        header.append(f"origin = {_toml(entry.origin)}")
    if entry.evidence:
        header.append(f"evidence = [{', '.join(str(p) for p in entry.evidence)}]")
    return "\n".join([*header, FENCE, f"# {entry.title}", "", entry.body.strip(), ""])


def read_directory(root: Path) -> list[EntryText]:
    """Every entry under ``root`` (its ``context/``, ``patterns/``, ``practices/`` and ``lessons/`` folders), or
    :class:`KnowledgeFileError` for the first file that is not one — nothing is half-read."""
    if not root.is_dir():
        raise KnowledgeFileError(f"{root} is not a directory; give the knowledge directory (with context/, "
                                 "patterns/, practices/, lessons/)")
    found: list[EntryText] = []
    seen: dict[str, str] = {}
    for folder in FOLDERS.values():
        where = root / folder
        if not where.is_dir() or where.is_symlink():
            continue
        for path in sorted(where.rglob("*.md")):
            name = path.relative_to(root).as_posix()
            if path.is_symlink() or not path.is_file():
                raise KnowledgeFileError(f"{name} is not a plain file; knowledge files are never links")
            if path.stat().st_size > MOST_BYTES:
                raise KnowledgeFileError(f"{name} is over {MOST_BYTES // 1024} KiB; split it into several entries")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise KnowledgeFileError(f"{name} is not UTF-8 text") from None
            entry = parse(name, text)
            if entry.header.id in seen:
                raise KnowledgeFileError(f"{seen[entry.header.id]} and {name} both say id = "
                                         f"{entry.header.id!r}; give each entry its own id")
            seen[entry.header.id] = name
            found.append(entry)
    return found


def changes(base: KnowledgeBase, entries: list[EntryText]) -> tuple[list[Intent], dict[str, int]]:
    """What importing ``entries`` appends to a log whose knowledge is ``base``: ``knowledge.added`` for a new id,
    ``knowledge.revised`` for one whose text changed (each at its stream's version), nothing for the rest; and
    how many of each."""
    intents: list[Intent] = []
    counted = {"added": 0, "revised": 0, "unchanged": 0}
    for e in entries:
        h = e.header
        now = base.entries.get(h.id)
        if now is None:
            version = base.versions.get(h.id)  # a retired entry's id comes back as a revision
            if version is None:
                intents.append(Intent(streams.knowledge(h.id), [_added(e)], NO_STREAM))
            else:
                intents.append(Intent(streams.knowledge(h.id), [_revised(e, f"imported again from {e.path}")],
                                      version))
            counted["added"] += 1
        elif (now.kind, now.title, now.body, now.tags) != (h.kind, e.title, e.body, list(h.tags)):
            intents.append(Intent(streams.knowledge(h.id), [_revised(e, f"imported from {e.path}")],
                                  base.versions[h.id]))
            counted["revised"] += 1
        else:
            counted["unchanged"] += 1
    return intents, counted


def _added(e: EntryText) -> KnowledgeAdded:
    h = e.header
    return KnowledgeAdded(entry_id=h.id, kind=h.kind, title=e.title, body=e.body, tags=list(h.tags), source=h.source,
                          origin=h.origin or e.path, evidence=list(h.evidence))


def _revised(e: EntryText, reason: str) -> KnowledgeRevised:
    h = e.header
    return KnowledgeRevised(entry_id=h.id, kind=h.kind, title=e.title, body=e.body, tags=list(h.tags),
                            source=h.source, origin=h.origin or e.path, evidence=list(h.evidence), reason=reason)


def export(base: KnowledgeBase, root: Path) -> list[Path]:
    """Write every current entry to ``root/<folder>/<id>.md`` (folders made as needed); the files written. Files
    already there for other ids are left as they are."""
    if root.exists() and not root.is_dir():
        raise KnowledgeFileError(f"{root} is a file; give a directory to export the knowledge into")
    written = []
    for entry in sorted(base.entries.values(), key=lambda e: (e.kind, e.entry_id)):
        path = root / FOLDERS[entry.kind] / f"{entry.entry_id}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(entry), encoding="utf-8")
        written.append(path)
    return written


def _toml(value: str) -> str:
    """``value`` as a TOML basic string (JSON's escapes are TOML's; DEL, which JSON leaves, is escaped too)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")

