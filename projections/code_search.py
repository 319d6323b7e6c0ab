"""Ranked full-text search over a source tree: an agent's "search the repository" tool (and, later, knowledge).

A :class:`CodeIndex` cuts each file into overlapping chunks of lines and indexes every chunk in two
SQLite FTS5 tables, because code is searched two ways:

* ``words`` (``unicode61`` tokenizer, ranked by BM25) finds whole words. Identifiers are words
  too: ``unicode61`` already splits ``issue_jwt_token`` at its underscores, and a second column
  holds each camelCase identifier of the chunk split into its parts (``JwtToken`` -> ``Jwt Token``,
  ``HTTPServer2`` -> ``HTTP Server 2``), so "jwt token" finds both spellings.
* ``grams`` (``trigram`` tokenizer) finds parts of identifiers: ``wt_to`` finds
  ``issue_jwt_token``. A term needs three characters to be a trigram query.

Each query term is searched as a quoted FTS5 phrase, so nothing a user types is read as FTS5
syntax (``NEAR``, ``*``, ``col:``, ``-``, parentheses and quotes are just text). The two rankings
are merged by reciprocal-rank fusion, whole words weighing twice what fragments do: a chunk that
holds a term as a word ranks above one that only holds it inside a longer identifier.

Everything runs in memory with the standard library's ``sqlite3``: no network, no extension to
download. Nothing here imports Ray.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import msgspec

from projections.errors import ProjectionError

CHUNK_LINES = 20
"""Lines in a chunk."""
CHUNK_OVERLAP = 5
"""Lines a chunk shares with the next one, so a match near a boundary sits whole in one chunk."""
SNIPPET_LINES = 5
"""At most this many lines in a hit's snippet."""
MIN_TRIGRAM_TERM = 3
"""Shorter terms are not searched in the trigram table (a trigram query needs three characters)."""
MAX_TERMS = 64
"""Only the first this many distinct terms of a query are searched."""
SKIPPED_DIRS = frozenset({
    ".git", "node_modules", "__pycache__", ".venv", "venv", ".council",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".tox",
})
"""Directories :meth:`CodeIndex.from_tree` never enters (so is any directory holding ``pyvenv.cfg``)."""
BINARY_SNIFF_BYTES = 8 * 1024
"""A NUL byte in this many first bytes makes a file binary."""

_RRF_K = 60  # reciprocal-rank fusion's usual damping constant
# Whole words weigh twice what fragments do: a chunk found only by a whole word (a camelCase or snake_case spelling
# the trigram table cannot see) still outranks the best fragment-only chunk unless it ranks below ~60th among words.
_WORDS_WEIGHT = 1.0
_GRAMS_WEIGHT = 0.5
_TERM = re.compile(r"\w+")
_WORD = re.compile(r"[^\W_]+")
# An identifier with a case or digit boundary inside it. The lookbehind anchors each try at the start of a run
# of letters and digits, so a long run without a boundary is scanned once (linear), not from every position.
_CAMEL_IDENTIFIER = re.compile(r"(?<![^\W_])[^\W_]*?(?:[^\W\d_A-Z][A-Z]|[A-Z][A-Z][a-z]|[^\W\d_]\d|\d[^\W\d_])[^\W_]*")
_CAMEL_BOUNDARY = re.compile(r"(?<=[^\W\d_A-Z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])"
                             r"|(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")

_SCHEMA = """
CREATE TABLE files (path TEXT PRIMARY KEY);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL REFERENCES files(path),
    first_line INTEGER NOT NULL,
    body TEXT NOT NULL,
    parts TEXT NOT NULL
);
CREATE INDEX chunks_by_path ON chunks(path);
CREATE VIRTUAL TABLE words USING fts5(body, parts, content='chunks', content_rowid='id', tokenize='unicode61');
CREATE VIRTUAL TABLE grams USING fts5(body, content='chunks', content_rowid='id', tokenize='trigram');
"""


class CodeSearchError(ProjectionError):
    """A code index was misused: closed, given a tree that is not a directory, or given a bad argument."""


class Hit(msgspec.Struct, frozen=True):
    """One matching chunk of a file.

    ``line`` is 1-based: the first line of ``snippet``, the chunk's line that holds the most query
    terms. ``snippet`` runs from there to the last line holding a term among the next few, at
    most :data:`SNIPPET_LINES` lines, each as written in the file (joined by ``\\n``, without
    ``\\r``). ``score`` is higher for better hits and comparable only between hits of one search.
    """

    path: str
    line: int
    snippet: str
    score: float


class CodeIndex:
    """A search index of text files, held in an in-memory SQLite database.

    Thread safety: every method takes one lock, so calls from several threads are serialized
    (one writer at a time, and no search sees half an :meth:`add`).
    """

    def __init__(self) -> None:
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.executescript(_SCHEMA)
        self._db: sqlite3.Connection | None = db
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_tree(cls, root: Path, *, max_file_bytes: int = 512 * 1024) -> CodeIndex:
        """An index of every text file under ``root``, with paths relative to it in POSIX style.

        Skipped: symbolic links (files and directories alike, so nothing outside ``root`` is read),
        the directories in :data:`SKIPPED_DIRS` and any directory holding ``pyvenv.cfg``, files over
        ``max_file_bytes``, files with a NUL byte in their first :data:`BINARY_SNIFF_BYTES`, files
        that are not valid UTF-8, and files or directories that cannot be read.
        """
        top = Path(root)
        if not top.is_dir():
            raise CodeSearchError(f"{top} is not a directory; give the root directory of the tree to index")
        index = cls()
        with index._guard() as db, _transaction(db):
            for path, text in _text_files(top, max_file_bytes):
                _replace(db, path, text)
        return index

    def add(self, path: str, text: str) -> None:
        """Index ``text`` as the content of ``path``, replacing what was indexed for ``path`` before."""
        if not isinstance(path, str) or not path:
            raise CodeSearchError(f"a file's path must be a non-empty string, got {path!r}")
        if not isinstance(text, str):
            raise CodeSearchError(f"the text of {path} must be a string, got {type(text).__name__}; decode it first")
        with self._guard() as db, _transaction(db):
            _replace(db, path, text)

    def remove(self, path: str) -> None:
        """Forget ``path`` and its chunks; a path that is not indexed is ignored."""
        with self._guard() as db, _transaction(db):
            _forget(db, path)

    # -- reading ----------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 20) -> list[Hit]:
        """The best ``limit`` hits for ``query``, best first, at most one per chunk and per (path, line).

        The query's terms are its runs of letters, digits and underscores (the first
        :data:`MAX_TERMS` distinct ones); a chunk matches if it holds any term, and ranks higher
        the more terms it holds, the rarer they are, and when they are whole words. A query
        without a letter or digit returns ``[]``.
        """
        if not isinstance(query, str):
            raise CodeSearchError(f"the query must be a string, got {type(query).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise CodeSearchError(f"limit must be a positive integer, got {limit!r}")
        terms = _terms(query)
        if not terms:
            return []
        pool = max(100, 5 * limit)
        with self._guard() as db:
            fused: dict[int, float] = {}
            for table, expression, weight in (("words", _words_expression(terms), _WORDS_WEIGHT),
                                              ("grams", _grams_expression(terms), _GRAMS_WEIGHT)):
                if not expression:
                    continue
                rows = db.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY rank LIMIT ?",
                                  (expression, pool)).fetchall()
                for rank, (chunk_id,) in enumerate(rows, start=1):
                    fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (_RRF_K + rank)
            if not fused:
                return []
            chunks = _chunks(db, list(fused))
        needles = _needles(terms)
        ranked = sorted(fused, key=lambda c: (-fused[c], chunks[c][0], chunks[c][1]))
        hits: list[Hit] = []
        seen: set[tuple[str, int]] = set()
        for chunk_id in ranked:
            path, first_line, body = chunks[chunk_id]
            offset, lines = _snippet(body.split("\n"), needles)
            line = first_line + offset
            if (path, line) in seen:  # the same lines, found again in the overlap of the next chunk
                continue
            seen.add((path, line))
            hits.append(Hit(path=path, line=line, snippet="\n".join(lines), score=fused[chunk_id]))
            if len(hits) == limit:
                break
        return hits

    def files(self) -> list[str]:
        """The indexed paths, sorted."""
        with self._guard() as db:
            return [path for (path,) in db.execute("SELECT path FROM files ORDER BY path")]

    def __len__(self) -> int:
        """The number of indexed chunks."""
        with self._guard() as db:
            (count,) = db.execute("SELECT count(*) FROM chunks").fetchone()
            return int(count)

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the index; later calls raise :class:`CodeSearchError`. Closing twice is harmless."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> CodeIndex:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise CodeSearchError("the code index is closed; build a new one (CodeIndex() or "
                                      "CodeIndex.from_tree(root))")
            yield self._db


# -- writing ---------------------------------------------------------------------------------------


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _replace(db: sqlite3.Connection, path: str, text: str) -> None:
    _forget(db, path)
    db.execute("INSERT INTO files(path) VALUES (?)", (path,))
    for first_line, body in _chunked(text):
        parts = _camel_parts(body)
        cursor = db.execute("INSERT INTO chunks(path, first_line, body, parts) VALUES (?, ?, ?, ?)",
                            (path, first_line, body, parts))
        chunk_id = cursor.lastrowid
        db.execute("INSERT INTO words(rowid, body, parts) VALUES (?, ?, ?)", (chunk_id, body, parts))
        db.execute("INSERT INTO grams(rowid, body) VALUES (?, ?)", (chunk_id, body))


def _forget(db: sqlite3.Connection, path: str) -> None:
    rows = db.execute("SELECT id, body, parts FROM chunks WHERE path = ?", (path,)).fetchall()
    for chunk_id, body, parts in rows:
        # The FTS tables keep no copy of the text (content='chunks'): 'delete' must be given exactly the values
        # that were indexed, or the index silently keeps stale tokens. So read them from chunks, before deleting.
        db.execute("INSERT INTO words(words, rowid, body, parts) VALUES ('delete', ?, ?, ?)", (chunk_id, body, parts))
        db.execute("INSERT INTO grams(grams, rowid, body) VALUES ('delete', ?, ?)", (chunk_id, body))
    db.execute("DELETE FROM chunks WHERE path = ?", (path,))
    db.execute("DELETE FROM files WHERE path = ?", (path,))


def _chunked(text: str) -> Iterator[tuple[int, str]]:
    """(first line, 1-based; the lines joined by ``\\n``) for each window of :data:`CHUNK_LINES` lines."""
    lines = _lines(text)
    step = CHUNK_LINES - CHUNK_OVERLAP
    start = 0
    while start < len(lines):
        yield start + 1, "\n".join(lines[start:start + CHUNK_LINES])
        if start + CHUNK_LINES >= len(lines):
            break
        start += step


def _lines(text: str) -> list[str]:
    # Lines end at "\n" only (as editors and `grep -n` count them); str.splitlines would also split at form
    # feeds and other separators and so shift every later line number.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _camel_parts(body: str) -> str:
    """The camelCase (and letter-digit) identifiers of ``body`` split into their parts, one per line."""
    return "\n".join(_CAMEL_BOUNDARY.sub(" ", name) for name in _CAMEL_IDENTIFIER.findall(body))


# -- querying --------------------------------------------------------------------------------------


def _terms(query: str) -> list[str]:
    terms: list[str] = []
    for term in _TERM.findall(query):
        if term not in terms and any(ch.isalnum() for ch in term):
            terms.append(term)
            if len(terms) == MAX_TERMS:
                break
    return terms


def _phrase(text: str) -> str:
    # A quoted FTS5 string is only ever a phrase of tokens: no operator, column filter or prefix is read inside it.
    return '"' + text.replace('"', '""') + '"'


def _words_expression(terms: list[str]) -> str:
    phrases: list[str] = []
    for term in terms:
        phrases.append(_phrase(term))
        split = _CAMEL_BOUNDARY.sub(" ", term)
        if split != term:
            phrases.append(_phrase(split))
    return " OR ".join(phrases)


def _grams_expression(terms: list[str]) -> str:
    return " OR ".join(_phrase(term) for term in terms if len(term) >= MIN_TRIGRAM_TERM)


def _chunks(db: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[str, int, str]]:
    found: dict[int, tuple[str, int, str]] = {}
    for start in range(0, len(ids), 500):  # stay far below SQLite's limit on bound parameters
        batch = ids[start:start + 500]
        marks = ",".join("?" * len(batch))
        for chunk_id, path, first_line, body in db.execute(
                f"SELECT id, path, first_line, body FROM chunks WHERE id IN ({marks})", batch):
            found[chunk_id] = (path, first_line, body)
    return found


# -- snippets --------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """``text`` without case or diacritics, as ``unicode61`` compares tokens."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


class _Needle(msgspec.Struct, frozen=True):
    """How a line is seen to hold one query term: the whole term, or every word part of it, case and accents aside."""

    whole: str
    parts: tuple[str, ...]


def _needles(terms: list[str]) -> list[_Needle]:
    return [_Needle(_fold(term), tuple(_fold(part) for part in _WORD.findall(_CAMEL_BOUNDARY.sub(" ", term))))
            for term in terms]


def _snippet(lines: list[str], needles: list[_Needle]) -> tuple[int, list[str]]:
    """(index in ``lines`` of the first snippet line, the snippet lines).

    The snippet starts at the line holding the most terms (the first such line), and runs to the
    last line holding a term among the :data:`SNIPPET_LINES` lines from there. A term is held by a
    line that contains it, or all its parts (``jwt token`` in ``JwtToken``; ``issue_jwt_token`` in
    ``issue_jwt_token``). If no line holds a term (possible only through tokenizer folding that
    this does not mirror), the line holding the most term parts leads; failing that, the first line.
    """
    folded = [_fold(line) for line in lines]
    held = [sum(1 for n in needles if n.whole in line or all(p in line for p in n.parts)) for line in folded]
    partly = [sum(1 for n in needles for p in n.parts if p in line) for line in folded]
    first = max(range(len(lines)), key=lambda i: (held[i], partly[i], -i))
    window = range(first, min(first + SNIPPET_LINES, len(lines)))
    last = max((i for i in window if held[i]), default=first)
    return first, lines[first:last + 1]


# -- walking a tree --------------------------------------------------------------------------------


def _text_files(root: Path, max_file_bytes: int) -> Iterator[tuple[str, str]]:
    """(POSIX path relative to ``root``, text) of each file :meth:`CodeIndex.from_tree` indexes."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIPPED_DIRS and not os.path.lexists(os.path.join(entry.path, "pyvenv.cfg")):
                    stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                text = _read_text(entry, max_file_bytes)
                if text is not None:
                    yield Path(entry.path).relative_to(root).as_posix(), text


def _read_text(entry: os.DirEntry[str], max_file_bytes: int) -> str | None:
    try:
        if entry.stat(follow_symlinks=False).st_size > max_file_bytes:
            return None
        # O_NOFOLLOW: a file swapped for a symbolic link since the directory was listed is not followed either.
        descriptor = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read(max_file_bytes + 1)
    except OSError:
        return None
    if len(data) > max_file_bytes or b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
