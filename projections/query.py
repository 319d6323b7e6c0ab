"""Read-only SQL over the read models: through a running projector, or straight from its file.

What runs, decided by DuckDB's own parser (never by matching text):

* ``SELECT`` in all its forms (``WITH``, ``VALUES``, ``FROM t``, ``UNION``...), and what DuckDB
  parses as one: ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``;
* ``EXPLAIN`` and ``EXPLAIN ANALYZE`` of such a statement (``EXPLAIN ANALYZE`` runs its
  statement, so the explained statement is parsed and checked too).

Everything else is refused before anything runs — ``INSERT``, ``UPDATE``, ``DELETE``,
``CREATE``, ``DROP``, ``ALTER``, ``ATTACH``, ``DETACH``, ``COPY``, ``EXPORT``, ``PRAGMA``,
``SET``/``RESET``/``USE``, ``INSTALL``/``LOAD``, ``CALL``, ``CHECKPOINT``, transactions,
``PREPARE``/``EXECUTE``, ``VACUUM``/``ANALYZE`` — and so is a text with several statements if any
one is refused, and an empty one. Behind the parser stand two more walls: connections that serve
SQL have DuckDB's ``enable_external_access`` off, so ``read_csv``, ``read_parquet``, ``glob`` and
the like cannot open any file but the database; and the statements run in a transaction that is
rolled back (on a projector's connection) or on a connection opened ``read_only`` (from a file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from projections.errors import NotAProjection, ProjectionBusy, QueryFailed, ReadOnlyQueryError
from projections.schema import STATE_TABLE

_READ = {duckdb.StatementType.SELECT}
_EXPLAIN = re.compile(r"^\s*explain\s+(?:analy[sz]e\s+)?", re.IGNORECASE)
_OPTIONS = re.compile(r"^\([^()]*\)\s*")
_ADVICE = "use SELECT (WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN of a SELECT also work)"


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a query returned: column names, one tuple per row (times as aware UTC datetimes), and as of when.

    ``position`` is the log position the read models had folded when the query ran: a
    projector's fold, or a file's stored checkpoint (None if that cannot be known).
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    position: int | None = None


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Set up a fresh connection that may serve a user's SQL: UTC times, no files but the database itself.

    ``TimeZone`` is set first (it needs the ICU extension, which DuckDB loads on first use) and
    ``enable_external_access`` last: once it is off, it cannot be turned on again on this database,
    and ``read_csv``, ``read_parquet``, ``glob``, ``COPY`` and the like refuse to touch any file.
    """
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_external_access = false")
    return con


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The statements of ``sql`` if every one is read-only; else :class:`ReadOnlyQueryError`, one line.

    Parses with ``con``'s DuckDB parser and runs nothing. An unparsable text raises
    :class:`QueryFailed`.
    """
    if not isinstance(sql, str):
        raise ReadOnlyQueryError(f"the query must be SQL text, got {type(sql).__name__}")
    statements = _parse(con, sql)
    if not statements:
        raise ReadOnlyQueryError(f"the query is empty; {_ADVICE}")
    for statement in statements:
        kind = statement.type
        if kind in _READ:
            continue
        if kind == duckdb.StatementType.EXPLAIN and _explains_a_read(con, statement.query):
            continue
        what = _describe(statement)
        several = f" in statement {statements.index(statement) + 1} of {len(statements)}" if len(statements) > 1 else ""
        raise ReadOnlyQueryError(f"only read-only statements run here (got {what}{several}); {_ADVICE}")
    return [s.query for s in statements]


def run_read_only(con: duckdb.DuckDBPyConnection, sql: str, *, rollback: bool) -> QueryResult:
    """Check ``sql`` with :func:`check_read_only`, run it on ``con`` and return the last statement's result.

    With ``rollback=True`` the statements run in a transaction that is rolled back afterwards,
    so even a statement that slipped past the parser could leave nothing behind. DuckDB errors
    (unknown table, bad cast, a file access refused...) raise :class:`QueryFailed`.
    """
    statements = check_read_only(con, sql)
    try:
        if rollback:
            con.begin()
        try:
            for text in statements:  # each runs to the end, so an error anywhere is reported
                table = con.sql(text).to_arrow_table()
        finally:
            if rollback:
                con.rollback()
    except duckdb.Error as exc:
        raise QueryFailed(f"the query failed: {_one_line(exc)}") from None
    return result_of(table)


def result_of(table: pa.Table, position: int | None = None) -> QueryResult:
    """An Arrow table as a :class:`QueryResult` (times become aware UTC datetimes, lists lists)."""
    rows = list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    return QueryResult(list(table.column_names), rows, position)


def query_file(path: str | Path, sql: str) -> QueryResult:
    """Run read-only ``sql`` on the projection file at ``path``, opened read-only, for when no projector runs.

    The connection is opened with ``read_only=True`` and external access off (see the module
    docs), then closed. Raises :class:`NotAProjection` for a missing or non-DuckDB file and
    :class:`ProjectionBusy` while another process (a projector) has the file open for writing.
    """
    con = open_read_only(path)
    try:
        result = run_read_only(con, sql, rollback=False)
        try:
            state = con.execute(f"SELECT position FROM {STATE_TABLE}").fetchall()
        except duckdb.Error:  # not a projection after all: the answer stands, its position is unknown
            state = []
        return QueryResult(result.columns, result.rows, state[0][0] if state else None)
    finally:
        con.close()


def open_read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection, external access off, to the projection file at ``path``; the caller closes it.

    Raises :class:`NotAProjection` for a missing or non-DuckDB file and :class:`ProjectionBusy`
    while another process (a projector) has the file open for writing.
    """
    path = Path(path)
    if not path.is_file():
        raise NotAProjection(f"there is no projection file at {path}; run the projector first, or check the path")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.ConnectionException as exc:  # this process has the file open already
        raise ProjectionBusy(f"{path} is open in this process (a Projector?); query it through that projector "
                             f"({_one_line(exc)})") from None
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise ProjectionBusy(f"{path} is open for writing by another process (a running projector?); "
                                 "use that projector, or stop it first") from None
        raise NotAProjection(f"{path} cannot be opened as a projection ({_one_line(exc)})") from None
    return configure(con)


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    try:
        return con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryFailed(f"the query does not parse: {_one_line(exc)}") from None


def _explains_a_read(con: duckdb.DuckDBPyConnection, text: str) -> bool:
    """Whether the EXPLAIN statement ``text`` explains exactly one read-only statement.

    DuckDB's parser reports EXPLAIN without what it explains, so the explained text is parsed on
    its own: after ``EXPLAIN [ANALYZE]`` as it stands, or after an options group like ``(FORMAT
    json)``. Anything that does not parse as one SELECT is refused.
    """
    match = _EXPLAIN.match(text)
    if match is None:
        return False
    rest = text[match.end():]
    options = _OPTIONS.match(rest)
    for candidate in (rest, rest[options.end():] if options else None):
        if candidate is None:
            continue
        try:
            inner = con.extract_statements(candidate)
        except duckdb.Error:
            continue
        if len(inner) == 1 and inner[0].type in _READ:
            return True
    return False


def _describe(statement: duckdb.Statement) -> str:
    """A short name for a refused statement: its type, and its first word when DuckDB lumps several."""
    kind = statement.type.name
    first = statement.query.split(None, 1)[0].upper() if statement.query.strip() else kind
    first = first.rstrip(";")
    return kind if first == kind else f"{first} ({kind})"


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:1])
    return text or type(exc).__name__
