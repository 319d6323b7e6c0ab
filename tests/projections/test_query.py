"""Read-only SQL: what runs, what is refused (one line, before anything runs), and the file path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from projection_support import write_random_log

from events import EventStore, open_store
from projections import NotAProjection, ProjectionBusy, Projector, QueryFailed, ReadOnlyQueryError, query_file

READS = [
    "SELECT count(*) FROM tasks",
    "select status, count(*) AS n FROM tasks GROUP BY ALL ORDER BY n DESC",
    "WITH done AS (SELECT * FROM tasks WHERE status = 'completed') SELECT count(*) FROM done",
    "FROM queue",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT 1 UNION ALL SELECT 2",
    "EXPLAIN SELECT * FROM tasks",
    "EXPLAIN ANALYZE SELECT count(*) FROM tasks",
    "explain (format json) select 1",
    "DESCRIBE tasks",
    "SHOW TABLES",
    "SUMMARIZE agents",
    "SELECT * FROM pragma_table_info('tasks')",
    "/* a comment */ SELECT 1; -- and another",
    "SELECT 1; SELECT 2 AS last",
]

WRITES = [
    ("INSERT INTO tasks (task_id) VALUES ('x')", "INSERT"),
    ("UPDATE tasks SET status = 'completed'", "UPDATE"),
    ("DELETE FROM tasks", "DELETE"),
    ("CREATE TABLE t (a INTEGER)", "CREATE"),
    ("CREATE OR REPLACE VIEW queue AS SELECT 1", "CREATE"),
    ("CREATE MACRO m() AS 1", "CREATE"),
    ("DROP TABLE tasks", "DROP"),
    ("ALTER TABLE tasks ADD COLUMN x INTEGER", "ALTER"),
    ("ATTACH 'other.duckdb' AS other", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("COPY tasks TO 'tasks.csv'", "COPY"),
    ("EXPORT DATABASE 'somewhere'", "EXPORT"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("PRAGMA table_info('tasks')", "PRAGMA"),
    ("SET threads = 1", "SET"),
    ("RESET threads", "RESET (SET)"),
    ("USE memory", "USE (SET)"),
    ("INSTALL httpfs", "INSTALL (LOAD)"),
    ("LOAD httpfs", "LOAD"),
    ("CALL pragma_version()", "CALL"),
    ("CHECKPOINT", "CHECKPOINT (CALL)"),
    ("BEGIN TRANSACTION", "BEGIN (TRANSACTION)"),
    ("COMMIT", "COMMIT (TRANSACTION)"),
    ("VACUUM", "VACUUM"),
    ("ANALYZE", "ANALYZE (VACUUM)"),
    ("PREPARE p AS SELECT 1", "PREPARE"),
    ("EXECUTE p", "EXECUTE"),
    ("EXPLAIN ANALYZE INSERT INTO tasks (task_id) VALUES ('x')", "EXPLAIN"),
    ("EXPLAIN DELETE FROM tasks", "EXPLAIN"),
    ("SELECT 1; DROP TABLE tasks", "DROP in statement 2 of 2"),
    ("DELETE FROM tasks; SELECT 1", "DELETE in statement 1 of 2"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStore, Path]:
    """A log and its projection file, closed."""
    store = open_store("memory://")
    write_random_log(store, tasks=60, seed=4)
    path = tmp_path_factory.mktemp("query") / "p.duckdb"
    with Projector(store, path) as projector:
        projector.catch_up()
    return store, path


@pytest.fixture
def projection(built: tuple[EventStore, Path]) -> Iterator[tuple[Projector, Path]]:
    """A projector open on the file; tests close it before they query the file by path."""
    store, path = built
    projector = Projector(store, path)
    yield projector, path
    projector.close()


@pytest.mark.parametrize("sql", READS)
def test_read_only_statements_run(projection: tuple[Projector, Path], sql: str) -> None:
    projector, _ = projection
    result = projector.query(sql)
    assert result.columns and isinstance(result.rows, list)


def test_results_come_back_as_columns_and_tuples(projection: tuple[Projector, Path]) -> None:
    projector, _ = projection
    result = projector.query("SELECT 1 AS one, 'x' AS ex, [1, 2] AS l UNION ALL SELECT 2, 'y', []")
    assert result.columns == ["one", "ex", "l"] and result.rows == [(1, "x", [1, 2]), (2, "y", [])]
    assert projector.query("SELECT 1; SELECT 2 AS last").columns == ["last"]
    times = projector.query("SELECT submitted_at FROM tasks WHERE submitted_at IS NOT NULL LIMIT 1").rows[0][0]
    assert times.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(("sql", "named"), WRITES)
def test_anything_but_a_read_is_refused_in_one_line_before_it_runs(projection: tuple[Projector, Path], sql: str,
                                                                   named: str) -> None:
    projector, path = projection
    before = projector.query("SELECT count(*), count(DISTINCT status) FROM tasks").rows
    for run in (projector.query, lambda s: query_file(path, s)):
        with pytest.raises(ReadOnlyQueryError) as refused:
            run(sql)
        message = str(refused.value)
        assert message.startswith(f"only read-only statements run here (got {named})"), message
        assert "use SELECT" in message and "\n" not in message
        projector.close()  # the file path is for when no projector has the file open
    assert query_file(path, "SELECT count(*), count(DISTINCT status) FROM tasks").rows == before
    assert {r[0] for r in query_file(path, "SHOW TABLES").rows} >= {"tasks", "requests", "agents", "queue"}


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", ";;"])
def test_an_empty_query_is_refused(projection: tuple[Projector, Path], sql: str) -> None:
    with pytest.raises(ReadOnlyQueryError, match="the query is empty; use SELECT"):
        projection[0].query(sql)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('/tmp/anything.parquet')",
])
def test_table_functions_cannot_read_files(projection: tuple[Projector, Path], sql: str) -> None:
    projector, path = projection
    for run in (projector.query, lambda s: query_file(path, s)):
        with pytest.raises(QueryFailed) as failed:
            run(sql)
        assert "\n" not in str(failed.value) and "disabled by configuration" in str(failed.value)
        projector.close()


def test_sql_errors_are_one_line(projection: tuple[Projector, Path]) -> None:
    with pytest.raises(QueryFailed, match="the query does not parse: Parser Error"):
        projection[0].query("SELEC 1")
    with pytest.raises(QueryFailed, match="the query failed: Catalog Error: Table with name nope does not exist"):
        projection[0].query("SELECT * FROM nope")


def test_the_file_path_query_reads_the_file_read_only(projection: tuple[Projector, Path]) -> None:
    projector, path = projection
    sql = "SELECT status, count(*) FROM tasks GROUP BY ALL ORDER BY 1"
    through_projector = projector.query(sql)
    with pytest.raises(ProjectionBusy, match="is open in this process"):
        query_file(path, sql)
    projector.close()
    assert query_file(path, sql) == through_projector
    assert query_file(str(path), "FROM queue").columns == ["priority", "depth", "oldest_queued_at", "oldest_age_s"]


def test_the_file_path_query_needs_a_file(tmp_path: Path) -> None:
    with pytest.raises(NotAProjection, match="there is no projection file at"):
        query_file(tmp_path / "missing.duckdb", "SELECT 1")
    (tmp_path / "junk.duckdb").write_bytes(b"\0junk" * 1000)
    with pytest.raises(NotAProjection, match="cannot be opened as a projection"):
        query_file(tmp_path / "junk.duckdb", "SELECT 1")
