"""The commit table both SQL backends store the log in, and how it is read back.

A *commit* is one stored append: a row of ``(last_position, first_position, stream,
last_version, recorded_at, events)`` whose ``events`` is one MessagePack array of ``[event_id,
type, schema_version, metadata, payload, hash]``, one entry per position
``first_position..last_position``. Beside it, a *type index* holds one ``(type,
last_position)`` row for every event type a commit holds, so a read of a few types visits only
the commits that hold them instead of decoding the whole log. :mod:`events.sqlite` and
:mod:`events.postgres` lay both out alike and differ only in the tables' names, the driver's
placeholder and how a query is run; :class:`CommitTable` does the reading for both, given those.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from events.errors import CorruptLog, NewerStoreSchema, NotAStore
from events.ledger import Row
from events.recorder import Recorder

FORMAT = "agent-council.events"
"""The ``format`` a store's meta table names: what marks a database as an event store."""

SCHEMA_VERSION = 2
"""The newest store schema this agent-council reads and writes. Schema 2 added the type index."""

COLUMNS = "last_position, first_position, stream, last_version, recorded_at, events"
"""A commit's columns, in the order :func:`expand` takes them."""

PAGE = 256
"""Commits fetched per query while reading a long range."""

pack = msgspec.msgpack.Encoder().encode
"""Encodes a commit's events (the ``events`` list of :class:`events.recorder.Sealed`)."""

_unpack = msgspec.msgpack.Decoder(list[tuple[bytes, str, int, bytes, bytes, bytes]]).decode
_END = 2**62  # beyond any position


def needs_type_index(meta: Mapping[str, str], place: str, found: str) -> bool:
    """Whether a store whose meta table holds ``meta`` must be upgraded to schema 2 (its type index
    added and filled, its schema set to 2) before use.

    Raises :class:`NotAStore` if ``meta`` does not name this format and :class:`NewerStoreSchema`
    if a newer agent-council wrote it; ``place`` names the store in those messages (an SQLite
    path, "the database 'x' on host:port") and ``found`` says what was found there instead
    ("is an SQLite database"). Each backend runs the upgrade itself, in the transaction it
    read ``meta`` in.
    """
    if meta.get("format") != FORMAT:
        raise NotAStore(f"{place} {found} but not an agent-council event store")
    schema = int(meta.get("schema", "0"))
    if schema > SCHEMA_VERSION:
        raise NewerStoreSchema(
            f"{place} was written by a newer agent-council (store schema {schema}; this one reads "
            f"up to {SCHEMA_VERSION}); upgrade agent-council to open it"
        )
    return schema < 2


def expand(last_position: int, first_position: int, stream: str, last_version: int, recorded_at: int,
           blob: bytes) -> list[Row]:
    """The ledger rows of one commit; :class:`CorruptLog` if the commit cannot be read back."""
    try:
        events = _unpack(blob)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptLog(first_position, f"the commit holding positions {first_position}..{last_position} "
                         f"cannot be decoded ({exc})") from None
    if len(events) != last_position - first_position + 1:
        raise CorruptLog(first_position, f"the commit holding positions {first_position}..{last_position} "
                         f"has {len(events)} events")
    version = last_version - len(events) + 1
    return [
        (first_position + i, stream, version + i, eid, type_, schema, recorded_at, meta, payload, digest)
        for i, (eid, type_, schema, meta, payload, digest) in enumerate(events)
    ]


def types_of(blob: bytes) -> set[str]:
    """The event types a stored commit holds; empty if it cannot be decoded (verify reports that)."""
    try:
        return {e[1] for e in _unpack(blob)}
    except (msgspec.DecodeError, UnicodeDecodeError):
        return set()


def type_index(commits: Iterable[tuple[int, bytes]]) -> Iterator[tuple[str, int]]:
    """The type index's rows for ``commits`` given as ``(last_position, events)``: to build it for an old log."""
    for last_position, blob in commits:
        for type_ in types_of(blob):
            yield type_, last_position


class CommitTable(Recorder):
    """The reading half of a recorder that keeps the log in a commit table.

    A subclass names its commit table (``TABLE``), its type index (``TYPES``) and its driver's
    placeholder (``MARK``, ``?`` or ``%s``) and runs queries (:meth:`_query`); reads by stream,
    by position, by type and long scans follow from those.
    """

    TABLE: ClassVar[str]
    TYPES: ClassVar[str]
    MARK: ClassVar[str]
    _BY_STREAM: ClassVar[str]
    _BY_POSITION: ClassVar[str]
    _BY_TYPES: ClassVar[dict[int, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        t, m = cls.TABLE, cls.MARK
        cls._BY_STREAM = (f"SELECT last_version, {COLUMNS} FROM {t} WHERE stream = {m} AND last_version >= {m} "
                          f"ORDER BY last_version LIMIT {m}")
        cls._BY_POSITION = (f"SELECT last_position, {COLUMNS} FROM {t} WHERE last_position >= {m} "
                            f"ORDER BY last_position LIMIT {m}")
        cls._BY_TYPES = {}

    @classmethod
    def _by_types(cls, n: int) -> str:
        """The commits holding any of ``n`` types from a position: each type's next commits from the index,
        merged. Each type reads at most a page of index entries, so a rare type costs a few probes
        and a common one no more than a page."""
        if n not in cls._BY_TYPES:
            t, k, m = cls.TABLE, cls.TYPES, cls.MARK
            each = " UNION ".join(
                f"SELECT last_position FROM (SELECT last_position FROM {k} WHERE type = {m} AND last_position >= {m} "
                f"ORDER BY last_position LIMIT {m}) AS k{i}" for i in range(n))
            cls._BY_TYPES[n] = (f"SELECT last_position, {COLUMNS} FROM {t} WHERE last_position IN ({each}) "
                                f"ORDER BY last_position LIMIT {m}")
        return cls._BY_TYPES[n]

    @abc.abstractmethod
    def _query(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """The rows ``query`` returns, bytes columns as ``bytes``; errors as :class:`events.errors.StoreError`."""

    def read_stream(self, stream: str, from_version: int, limit: int | None) -> list[Row]:
        rows: list[Row] = []
        for commit in self._pages(self._BY_STREAM, lambda start, size: (stream, start, size), from_version):
            expanded = expand(*commit[1:])
            rows.extend(expanded[max(0, from_version - expanded[0][2]):])
            if limit is not None and len(rows) >= limit:
                return rows[:limit]
        return rows

    def read_all(self, from_position: int, limit: int | None, types: Sequence[str] | None,
                 until: int | None) -> list[Row]:
        wanted = None if types is None else frozenset(types)
        end = until if until is not None else _END
        rows: list[Row] = []
        if limit == 0:
            return rows
        if wanted is None:
            query, bind = self._BY_POSITION, _plain
        else:
            kinds = sorted(wanted)
            query = self._by_types(len(kinds))

            def bind(start: int, size: int) -> tuple[object, ...]:
                return (*(v for t in kinds for v in (t, start, size)), size)
        for commit in self._pages(query, bind, from_position):
            first = commit[2]
            if first > end:
                break
            window = expand(*commit[1:])[max(0, from_position - first): max(0, end - first + 1)]
            rows.extend(window if wanted is None else [r for r in window if r[4] in wanted])
            if limit is not None and len(rows) >= limit:
                return rows[:limit]
        return rows

    def scan(self, from_position: int, until: int | None) -> Iterator[Row]:
        end = until if until is not None else _END
        for commit in self._pages(self._BY_POSITION, _plain, from_position, first=PAGE):
            first = commit[2]
            if first > end:
                return
            yield from expand(*commit[1:])[max(0, from_position - first): max(0, end - first + 1)]

    def _pages(self, query: str, bind: Callable[[int, int], tuple[object, ...]], start: int,
               first: int = 8) -> Iterator[tuple[Any, ...]]:
        """Commits in key order from ``start`` (the first column is the key), in pages that grow.

        ``bind(start, size)`` gives ``query``'s parameters for one page. Small first pages keep a
        short read from fetching commits it will not use; later pages grow to ``PAGE`` so a long
        read makes few queries.
        """
        size = first
        while True:
            page = self._query(query, bind(start, size))
            yield from page
            if len(page) < size:
                return
            start = page[-1][0] + 1
            size = min(size * 2, PAGE)


def _plain(start: int, size: int) -> tuple[object, ...]:
    return start, size
