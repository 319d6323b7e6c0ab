"""The projector over real stores and real DuckDB files: incremental equals rebuilt, reopening, refusals."""

from __future__ import annotations

import re
from pathlib import Path
from random import Random

import duckdb
import pytest
from projection_support import append_raw, recount_problems, snapshot, write_random_log

from events import EventStore, open_store
from events.catalogue import (
    AgentRegistered,
    RequestFinished,
    RequestSubmitted,
    TaskAssigned,
    TaskQueued,
    TaskSubmitted,
)
from events.errors import InvalidPayload
from projections import (
    Fold,
    NotAProjection,
    ProjectionLogMismatch,
    ProjectionSchemaMismatch,
    Projector,
    ProjectorClosed,
    QueryFailed,
    persist,
)
from projections.rows import AgentRow, RequestRow, TaskRow
from projections.schema import AGENTS, REQUESTS, SCHEMA_VERSION, TASKS


@pytest.fixture(scope="module")
def random_log() -> EventStore:
    store = open_store("memory://")
    write_random_log(store, tasks=400, requests=60, seed=12)
    return store


def rebuilt(store: EventStore, upto: int | None = None) -> Projector:
    fresh = Projector(store, None)
    fresh.catch_up(upto)
    return fresh


def test_incremental_catch_up_in_random_steps_equals_a_rebuild(random_log: EventStore, tmp_path: Path) -> None:
    head = random_log.head()
    rng = Random(5)
    path = tmp_path / "p.duckdb"
    projector = Projector(random_log, path, batch_size=37)
    checked = 0
    while projector.position < head:
        n = projector.catch_up(rng.randint(1, 400))
        assert n >= 1
        if rng.random() < 0.3:  # stop and start again from the file
            projector.close()
            projector = Projector(random_log, path, batch_size=rng.randint(1, 200))
        if checked < 4 and rng.random() < 0.2:  # compare at some positions on the way, not just the end
            checked += 1
            with rebuilt(random_log, projector.position) as fresh:
                assert snapshot(projector) == snapshot(fresh)
    assert projector.position == head and projector.catch_up() == 0
    assert recount_problems(projector) == {}
    incremental = snapshot(projector)
    assert incremental["tasks"] and incremental["requests"] and incremental["agents"]
    assert projector.rebuild() == head
    assert snapshot(projector) == incremental
    projector.close()


def test_every_status_and_model_shows_up_in_the_random_log(random_log: EventStore) -> None:
    with rebuilt(random_log) as p:
        statuses = {r[0] for r in p.query("SELECT DISTINCT status FROM tasks").rows}
        assert statuses == {"submitted", "queued", "assigned", "running", "completed", "failed", "dead_lettered"}
        assert {r[0] for r in p.query("SELECT DISTINCT status FROM agents").rows} >= {"live", "unresponsive", "retired"}
        assert {r[0] for r in p.query("SELECT DISTINCT status FROM requests").rows} == {"open", "completed", "failed"}
        assert p.query("SELECT count(*) FROM dead_letters").rows[0][0] > 0
        assert p.query("SELECT count(*) FROM tasks WHERE request_id IS NULL").rows[0][0] > 0


def test_the_projector_decodes_slim_payloads_the_same_as_the_full_upcast_payloads(random_log: EventStore) -> None:
    fold = Fold()
    for row in random_log.scan_rows():
        if row[4] in fold.reads:  # v1 agent registrations upcast; unknown types skipped
            fold.apply_payload(row[0], row[4], row[6], random_log.registry.decode(row[4], row[5], row[8]))
    with rebuilt(random_log) as p:
        con = p.connection()
        assert sorted(persist.load(con, TASKS, TaskRow), key=lambda r: r.task_id) == sorted(
            fold.tasks.values(), key=lambda r: r.task_id)
        assert sorted(persist.load(con, REQUESTS, RequestRow), key=lambda r: r.request_id) == sorted(
            fold.requests.values(), key=lambda r: r.request_id)
        assert sorted(persist.load(con, AGENTS, AgentRow), key=lambda r: r.agent_id) == sorted(
            fold.agents.values(), key=lambda r: r.agent_id)
        assert p.query("SELECT count(*) FROM agents WHERE version = '0.1'").rows[0][0] > 0  # the v1 registrations


def test_views_read_the_tables(tmp_path: Path) -> None:
    store = open_store("memory://")
    store.append("agent-a1", [AgentRegistered(agent_id="a1", role="coder", capabilities=["x"], slots=4)])
    for i, priority in enumerate([0, 0, 2]):
        store.append(f"task-t{i}", [TaskSubmitted(task_id=f"t{i}", capability="x", priority=priority),
                                    TaskQueued(task_id=f"t{i}", priority=priority)])
    store.append("task-t0", [TaskAssigned(task_id="t0", agent_id="a1", lease_id="l", lease_expires_at=2e9, attempt=1)])
    with Projector(store, tmp_path / "p.duckdb") as p:
        p.catch_up()
        assert p.query("SELECT * FROM agent_load").rows == [("a1", 1, 4, 0.25)]
        queue = p.query("SELECT priority, depth, oldest_queued_at IS NOT NULL, oldest_age_s >= 0 FROM queue").rows
        assert queue == [(0, 1, True, True), (1, 0, False, None), (2, 1, True, True), (3, 0, False, None)]
        assert p.query("SELECT count(*) FROM dead_letters").rows == [(0,)]


def test_a_request_shows_what_its_orchestrator_came_to(tmp_path: Path) -> None:
    store = open_store("memory://")
    store.append("request-r1", [RequestSubmitted(request_id="r1", title="feature")])
    store.append("request-r2", [RequestSubmitted(request_id="r2", title="plain")])
    with Projector(store, tmp_path / "p.duckdb") as p:
        p.catch_up()
        assert p.query("SELECT request_id, outcome FROM requests ORDER BY 1").rows == [("r1", None), ("r2", None)]
        store.append("request-r1", [RequestFinished(request_id="r1", outcome="stopped", reason="the plan cannot run")])
        p.catch_up()
        assert p.query("SELECT request_id, outcome FROM requests ORDER BY 1").rows == [("r1", "stopped"),
                                                                                        ("r2", None)]


def test_new_events_are_folded_by_the_next_catch_up(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    with Projector(store, tmp_path / "p.duckdb") as p:
        assert p.catch_up() == 0 and p.position == 0
        store.append("task-t1", [TaskSubmitted(task_id="t1", capability="x")])
        assert p.catch_up() == 1 and p.position == 1
        store.append("task-t1", [TaskQueued(task_id="t1", priority=1)])
        assert p.catch_up() == 1
        assert p.query("SELECT status, priority FROM tasks").rows == [("queued", 1)]
    with Projector(store, tmp_path / "p.duckdb") as again:
        assert again.position == 2 and again.catch_up() == 0
        assert again.query("SELECT status FROM tasks").rows == [("queued",)]
    store.close()


def test_a_log_shorter_than_the_checkpoint_is_refused_until_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    long_log = open_store("memory://")
    write_random_log(long_log, tasks=30, seed=2)
    with Projector(long_log, path) as p:
        p.catch_up()
    short_log = open_store("memory://")
    write_random_log(short_log, tasks=5, seed=2)
    with pytest.raises(ProjectionLogMismatch) as refused:
        Projector(short_log, path)
    message = str(refused.value)
    assert f"ends at position {short_log.head()}" in message and "rebuild=True" in message and "\n" not in message
    with Projector(short_log, path, rebuild=True) as p:
        assert p.position == 0 and p.catch_up() == short_log.head()


def test_a_different_log_of_the_same_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    first, second = open_store("memory://"), open_store("memory://")
    write_random_log(first, tasks=10, seed=3)
    write_random_log(second, tasks=10, seed=3)  # the same events, but other ids and times: other hashes
    with Projector(first, path) as p:
        p.catch_up()
    with pytest.raises(ProjectionLogMismatch, match="holds a different event at position"):
        Projector(second, path)


def test_a_file_of_another_schema_version_is_refused_until_rebuilt(tmp_path: Path, random_log: EventStore) -> None:
    path = tmp_path / "p.duckdb"
    with Projector(random_log, path) as p:
        p.catch_up(100)
    con = duckdb.connect(str(path))
    con.execute("UPDATE _projector_state SET schema_version = 0")
    con.close()
    expected = f"has projection schema 0, this agent-council writes schema {SCHEMA_VERSION}"
    with pytest.raises(ProjectionSchemaMismatch, match=expected):
        Projector(random_log, path)
    with Projector(random_log, path, rebuild=True) as p:
        assert p.position == 0


def test_a_path_that_is_not_a_projection_is_refused(tmp_path: Path) -> None:
    store = open_store("memory://")
    foreign = tmp_path / "other.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE invoices (n INTEGER)")
    con.close()
    with pytest.raises(NotAProjection, match="not an agent-council projection"):
        Projector(store, foreign)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database\n" * 100)
    with pytest.raises(NotAProjection, match="cannot be opened as a projection"):
        Projector(store, text)
    with pytest.raises(NotAProjection, match="is a directory"):
        Projector(store, tmp_path)


def test_rows_of_unknown_types_advance_the_checkpoint_without_being_decoded(tmp_path: Path) -> None:
    store = open_store("memory://")
    append_raw(store, "elsewhere", "order.shipped", 1, {"order": 1})
    store.append("task-t1", [TaskSubmitted(task_id="t1", capability="x")])
    append_raw(store, "elsewhere", "order.shipped", 4, {"order": 2})
    with Projector(store, None) as p:
        assert p.catch_up() == 3 and p.position == 3
        assert p.query("SELECT task_id, status FROM tasks").rows == [("t1", "submitted")]


def test_a_fresh_projection_file_and_its_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "p.duckdb"
    with Projector(open_store("memory://"), path) as p:
        assert p.position == 0 and path.exists()
        assert "position=0" in repr(p)


def test_an_event_that_does_not_decode_stops_the_projector_where_it_stands(tmp_path: Path) -> None:
    store = open_store("memory://")
    write_random_log(store, tasks=20, seed=8)
    good = store.head()
    append_raw(store, "task-broken", "task.queued", 1, {"task_id": "broken"})  # no priority: not a task.queued
    store.append("task-t1", [TaskQueued(task_id="t1", priority=0)])
    path = tmp_path / "p.duckdb"
    with Projector(store, path, batch_size=50) as p:
        unfit = re.escape("stored task.queued v1 payload does not fit its schema")
        for _ in range(2):  # it fails the same way every time: nothing past the bad event is skipped
            with pytest.raises(InvalidPayload, match=unfit):
                p.catch_up()
            assert p.position == good - good % 50
            with rebuilt(store, p.position) as fresh:
                assert snapshot(p) == snapshot(fresh)  # the fold forgot what it folded past the checkpoint
        assert p.catch_up(good - p.position) == good % 50 and p.position == good


def test_a_closed_projector_says_so() -> None:
    projector = Projector(open_store("memory://"), None)
    projector.close()
    for call in (projector.catch_up, projector.rebuild, lambda: projector.query("SELECT 1")):
        with pytest.raises(ProjectorClosed, match="is closed; open a new Projector"):
            call()
    projector.close()  # closing twice is fine


@pytest.mark.parametrize("table", ["tasks", "requests", "agents"])
def test_the_change_feed_gives_each_changed_row_once_as_sql_shows_it(random_log: EventStore, table: str) -> None:
    head = random_log.head()
    with Projector(random_log, None) as projector:
        projector.catch_up(head // 3)  # stored up to here; the rest is folded but not stored
        projector.advance()
        for after in (0, head // 5, head // 3, head // 2, head - 3, head):  # before and after the checkpoint
            feed = projector.changes(table, after)
            sql = projector.query(f"SELECT * FROM {table} WHERE position > {after} ORDER BY position")
            assert feed.position == head and feed.columns == sql.columns
            assert feed.rows == sql.rows
        assert projector.changes(table, head).rows == []


def test_following_the_change_feed_sees_every_change(random_log: EventStore) -> None:
    head = random_log.head()
    with Projector(random_log, None) as projector:
        after, latest = 0, {}
        while after < head:
            projector.advance(37)
            result = projector.changes("tasks", after)
            assert [r[-1] for r in result.rows] == sorted(r[-1] for r in result.rows)  # oldest change first
            latest.update((r[0], r) for r in result.rows)
            after = result.position
            if projector.unstored_events > 200:
                projector.flush()
        assert sorted(latest.values()) == sorted(projector.query("SELECT * FROM tasks").rows)


def test_the_change_feed_of_an_unknown_table_is_refused(random_log: EventStore) -> None:
    with Projector(random_log, None) as projector, pytest.raises(QueryFailed, match="follow one of tasks"):
        projector.changes("queue", 0)
