"""Copying a whole log into another backend, hash for hash: ``council migrate --from ... --to ...``.

The copy keeps every row as it is — position, stream version, event id, ``recorded_at``,
metadata and payload bytes, and the stored hash — so the copy's ledger is the source's ledger:
the same chain, the same Merkle root, and every signed checkpoint of the source verifies
against the copy. Rows are re-hashed while they are copied (:class:`events.ledger.LedgerVerifier`)
and the copy is verified afterwards and compared with the source position by position.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from events.errors import StoreError
from events.ledger import LedgerVerifier, Row
from events.store import EventStore, open_store

_CHUNK = 5000  # rows per transaction of the copy


class TargetNotEmpty(StoreError):
    """A log would be copied into a store that already holds events."""


class CopyMismatch(StoreError):
    """The copy of a log does not verify, or differs from its source."""


class CopyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What was copied: the event count and the Merkle root both logs share."""

    events: int
    root: bytes


def copy_log(source_url: str, target_url: str, *, progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy every event of the log at ``source_url`` into the empty store at ``target_url``, and verify the copy.

    The source must exist (:class:`events.errors.NotAStore` otherwise) and verify; the target must be
    a PostgreSQL store (created if the database holds none) with no events
    (:class:`TargetNotEmpty`). ``progress(copied, total)`` is called after each chunk. Raises
    :class:`CopyMismatch` if the copy's hashes or root differ from the source's in any place.
    """
    from events.postgres import PostgresRecorder

    with open_store(source_url, create=False) as source:
        total = source.head()
        with open_store(target_url) as target:
            recorder = target._recorder
            if not isinstance(recorder, PostgresRecorder):
                raise StoreError(f"{target_url} is not a PostgreSQL store; migrate copies a log into "
                                 "postgresql://user@host/dbname")
            if target.head():
                raise TargetNotEmpty(f"the target {target_url} already holds {target.head()} events; copy into an "
                                     "empty database (createdb a new one), nothing was written")
            checker = LedgerVerifier()
            chunk: list[Row] = []
            for row in source.scan_rows(1, total):
                chunk.append(row)
                if len(chunk) == _CHUNK:
                    _store(recorder, checker, chunk, total, progress)
                    chunk = []
            _store(recorder, checker, chunk, total, progress)
            _compare(source, target, source_url, target_url)
            return CopyReport(events=total, root=target.root() if total else b"")


def _store(recorder: object, checker: LedgerVerifier, chunk: list[Row], total: int,
           progress: Callable[[int, int], None] | None) -> None:
    from events.postgres import PostgresRecorder

    assert isinstance(recorder, PostgresRecorder)
    if not chunk:
        return
    if not checker.feed(chunk):
        position, problem = checker.failure or (chunk[0][0], "?")
        raise CopyMismatch(f"the source log fails verification at position {position} ({problem}); nothing after "
                           "it was copied. Run `council verify` on the source")
    recorder.import_rows(chunk)
    if progress is not None:
        progress(chunk[-1][0], total)


def _compare(source: EventStore, target: EventStore, source_url: str, target_url: str) -> None:
    """Raise :class:`CopyMismatch` unless the target verifies and holds the source's rows, hash for hash."""
    report = target.verify()
    if not report.ok:
        raise CopyMismatch(f"the copy in {target_url} fails verification at position {report.failed_position} "
                           f"({report.problem})")
    if report.head != source.head():
        raise CopyMismatch(f"the copy holds {report.head} events, the source {source.head()}")
    for mine, theirs in zip(source.scan_rows(1, report.head), target.scan_rows(1, report.head), strict=True):
        if mine != theirs:
            raise CopyMismatch(f"position {mine[0]} differs between {source_url} and {target_url}")
