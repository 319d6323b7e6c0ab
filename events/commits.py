"""The commit table both SQL backends store the log in, and how it is read back.

A *commit* is one stored append: a row of ``(last_position, first_position, stream,
last_version, recorded_at, events)`` whose ``events`` is one MessagePack array of ``[event_id,
type, schema_version, metadata, payload, hash]``, one entry per position
``first_position..last_position``. :mod:`events.sqlite` and :mod:`events.postgres` lay it out
alike and differ only in the table's name, the driver's placeholder and how a query is run;
:class:`CommitTable` does the reading for both, given those three.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import msgspec

from events.errors import CorruptLog
from events.ledger import Row
from events.recorder import Recorder

COLUMNS = "last_position, first_position, stream, last_version, recorded_at, events"
"""A commit's columns, in the order :func:`expand` takes them."""

PAGE = 256
"""Commits fetched per query while reading a long range."""

pack = msgspec.msgpack.Encoder().encode
"""Encodes a commit's events (the ``events`` list of :class:`events.recorder.Sealed`)."""

_unpack = msgspec.msgpack.Decoder(list[tuple[bytes, str, int, bytes, bytes, bytes]]).decode
_END = 2**62  # beyond any position


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


class CommitTable(Recorder):
    """The reading half of a recorder that keeps the log in a commit table.

    A subclass names its table (``TABLE``) and its driver's placeholder (``MARK``, ``?`` or
    ``%s``) and runs queries (:meth:`_query`); reads by stream, by position and long scans
    follow from those.
    """

    TABLE: ClassVar[str]
    MARK: ClassVar[str]
    _BY_STREAM: ClassVar[str]
    _BY_POSITION: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        t, m = cls.TABLE, cls.MARK
        cls._BY_STREAM = (f"SELECT last_version, {COLUMNS} FROM {t} WHERE stream = {m} AND last_version >= {m} "
                          f"ORDER BY last_version LIMIT {m}")
        cls._BY_POSITION = (f"SELECT last_position, {COLUMNS} FROM {t} WHERE last_position >= {m} "
                            f"ORDER BY last_position LIMIT {m}")

    @abc.abstractmethod
    def _query(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """The rows ``query`` returns, bytes columns as ``bytes``; errors as :class:`events.errors.StoreError`."""

    def read_stream(self, stream: str, from_version: int, limit: int | None) -> list[Row]:
        rows: list[Row] = []
        for commit in self._pages(self._BY_STREAM, (stream,), from_version):
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
        for commit in self._pages(self._BY_POSITION, (), from_position):
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
        for commit in self._pages(self._BY_POSITION, (), from_position, first=PAGE):
            first = commit[2]
            if first > end:
                return
            yield from expand(*commit[1:])[max(0, from_position - first): max(0, end - first + 1)]

    def _pages(self, query: str, params: tuple[object, ...], start: int, first: int = 8) -> Iterator[tuple[Any, ...]]:
        """Commits in key order from ``start`` (the first column is the key), in pages that grow.

        Small first pages keep a short read from fetching commits it will not use; later pages
        grow to ``PAGE`` so a long read makes few queries.
        """
        size = first
        while True:
            page = self._query(query, (*params, start, size))
            yield from page
            if len(page) < size:
                return
            start = page[-1][0] + 1
            size = min(size * 2, PAGE)
