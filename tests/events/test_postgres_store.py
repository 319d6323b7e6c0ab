"""What only the PostgreSQL backend has: a server, its URL, its errors, its database-level rules, restarts.

Crashes mid-append are tested on every durable backend by the conformance suite.
"""

from __future__ import annotations

import threading
import time

import msgspec
import psycopg
import pytest
import type_index_checks
from postgres_server import PostgresServer

from events import ANY, NO_STREAM, EventStore, open_store, postgres_append
from events.catalogue import TaskQueued, TaskSubmitted
from events.errors import InvalidStoreUrl, NewerStoreSchema, NotAStore, StoreUnavailable
from events.postgres import PostgresRecorder


@pytest.fixture
def server(pg_server: PostgresServer) -> PostgresServer:
    return pg_server


@pytest.fixture
def pg_url(server: PostgresServer) -> str:
    return server.new_database()


def queued(task: str) -> TaskQueued:
    return TaskQueued(task_id=task, priority=1)


def test_bad_urls_and_unreachable_servers_say_what_to_do(server: PostgresServer) -> None:
    with pytest.raises(InvalidStoreUrl, match="not a PostgreSQL connection URL"):
        open_store("postgresql://host/db?nonsense_option=1")
    with pytest.raises(StoreUnavailable, match=r"cannot be reached .* check that the server is running"):
        open_store("postgresql://council@127.0.0.1:1/x")
    with pytest.raises(NotAStore, match="create it"):
        open_store(server.url("no_such_database"))


def test_a_database_without_a_store_is_created_only_when_asked(pg_url: str) -> None:
    with pytest.raises(NotAStore, match="there is no event store in the database"):
        open_store(pg_url, create=False)
    with open_store(pg_url) as s:
        s.append("s", [queued("a")])
    with open_store(pg_url, create=False) as s:
        assert s.head() == 1


def test_databases_that_are_not_stores_are_refused(server: PostgresServer) -> None:
    partial = server.new_database()
    server.sql("CREATE TABLE council_commits (id int)", database=partial.rsplit("/", 1)[1])
    with pytest.raises(NotAStore, match="only part of an agent-council event store"):
        open_store(partial)
    other = server.new_database()
    db = other.rsplit("/", 1)[1]
    for table in ("council_meta (key text, value text)", "council_commits (id int)", "council_event_ids (id int)"):
        server.sql(f"CREATE TABLE {table}", database=db)
    with pytest.raises(NotAStore, match="not an agent-council event store"):
        open_store(other)


def test_a_store_from_a_newer_schema_is_refused(server: PostgresServer, pg_url: str) -> None:
    open_store(pg_url).close()
    server.sql("UPDATE council_meta SET value = '99' WHERE key = 'schema'", database=pg_url.rsplit("/", 1)[1])
    with pytest.raises(NewerStoreSchema, match=r"newer agent-council .*store schema 99"):
        open_store(pg_url)


def test_the_database_itself_refuses_update_delete_and_truncate(pg_url: str) -> None:
    with open_store(pg_url) as s:
        s.append("s", [queued("a")])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in ("UPDATE council_commits SET events = '\\x00'", "DELETE FROM council_commits",
                          "TRUNCATE council_commits", "UPDATE council_event_ids SET position = 9",
                          "DELETE FROM council_event_ids", "TRUNCATE council_event_ids CASCADE"):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
                conn.execute(statement)  # type: ignore[arg-type]
    with open_store(pg_url) as s:
        assert s.head() == 1 and s.verify().ok


def test_a_role_granted_only_select_and_insert_appends_but_cannot_rewrite(server: PostgresServer,
                                                                           pg_url: str) -> None:
    open_store(pg_url).close()
    db = pg_url.rsplit("/", 1)[1]
    server.sql(f"CREATE ROLE writer_{db} LOGIN")
    for statement in PostgresRecorder.writer_grants(f"writer_{db}"):
        server.sql(statement, database=db)
    url = pg_url.replace("//council@", f"//writer_{db}@")
    with open_store(url) as s:
        s.append("s", [queued("a"), queued("b")])
        assert s.verify().ok
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ("DROP TRIGGER council_commits_no_update ON council_commits",
                          "ALTER TABLE council_commits DISABLE TRIGGER ALL", "DELETE FROM council_event_ids",
                          "UPDATE council_commits SET stream = 'x'", "TRUNCATE council_commits CASCADE",
                          "DELETE FROM council_commit_types", "UPDATE council_commit_types SET type = 'x'"):
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.IntegrityConstraintViolation)):
                conn.execute(statement)  # type: ignore[arg-type]


def test_a_read_of_a_rare_type_reads_only_the_commits_holding_it(pg_url: str) -> None:
    type_index_checks.rare_reads_touch_only_their_commits(pg_url)


def test_a_schema_1_database_gains_the_type_index_and_verifies_unchanged(server: PostgresServer,
                                                                          pg_url: str) -> None:
    db = pg_url.rsplit("/", 1)[1]

    def downgrade() -> None:
        server.sql("DROP TABLE council_commit_types", database=db)
        server.sql("DROP FUNCTION council_append, council_mp_uint, council_mp_array", database=db)
        server.sql("UPDATE council_meta SET value = '1' WHERE key = 'schema'", database=db)

    type_index_checks.schema_1_log_upgrades_on_open(pg_url, downgrade)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM council_meta WHERE key = 'schema'").fetchone() == ("2",)


def test_the_server_encodes_integers_and_array_headers_as_msgspec_does(pg_url: str) -> None:
    open_store(pg_url).close()
    edges = [0, 1, 15, 16, 17, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in edges:
            assert conn.execute("SELECT council_mp_uint(%s)", (n,)).fetchone() == (msgspec.msgpack.encode(n),)
            if n < 70000:
                header = msgspec.msgpack.encode([None] * n)[: len(msgspec.msgpack.encode([None] * n)) - n]
                assert conn.execute("SELECT council_mp_array(%s::int)", (n,)).fetchone() == (header,), n


def test_groups_the_server_seals_verify_and_read_back_as_python_seals_them(pg_url: str) -> None:
    # Batch sizes across MessagePack's array-header widths, positions and versions across its integer widths.
    with open_store(pg_url) as s:
        recorder = s._recorder
        assert isinstance(recorder, PostgresRecorder)
        sizes = [1, 15, 16, 17, 90, 300, 2]
        for n in sizes:
            events = [TaskSubmitted(task_id=f"t{n}.{i}", capability="code.generate", inputs={"i": i, "x": "y" * i})
                      for i in range(n)]
            requests = [("one", ANY, s._prepare("one", events, ANY)),
                        (f"s{n}", NO_STREAM, s._prepare(f"s{n}", events[:3], NO_STREAM))]
            args = postgres_append.arguments(requests, time.time_ns() // 1000)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                row = conn.execute(postgres_append.CALL, args).fetchone()
            assert row is not None and row[0] is not None, "the server declined a plain group"
            results, head = postgres_append.results(requests, row[0])
            assert head == s.head() and results[1].positions[-1] == head
        report = s.verify()
        assert report.ok and report.head == sum(sizes) + sum(min(3, n) for n in sizes), report
        assert [e.stream_version for e in s.read_stream("one")] == list(range(1, sum(sizes) + 1))
        assert s.read_stream("s300")[2].payload == TaskSubmitted(task_id="t300.2", capability="code.generate",
                                                                 inputs={"i": 2, "x": "yy"})
        # A group the server declines writes nothing: a stale expected version, a stored id.
        stale = [("one", 5, s._prepare("one", [queued("z")], 5))]
        again = [(f"s{sizes[0]}", ANY, requests[1][2])]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for declined in (stale, again):
                args = postgres_append.arguments(declined, time.time_ns() // 1000)
                assert conn.execute(postgres_append.CALL, args).fetchone() == (None,)
        assert s.head() == report.head
        assert postgres_append.arguments([*stale, *stale], 0) is None  # one stream twice: decided in Python


def test_a_waiter_wakes_on_another_process_s_append_through_notify(pg_url: str) -> None:
    # A poll interval of a minute: only the notification can wake the waiter in time.
    waiter = EventStore(PostgresRecorder(pg_url, poll_interval=60.0))
    writer = open_store(pg_url)
    try:
        woke: list[float] = []

        def wait() -> None:
            waiter.wait_for(1, timeout=30)
            woke.append(time.monotonic())

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.5)  # the waiter is blocked and its listener is listening
        appended = time.monotonic()
        writer.append("s", [queued("a")])
        thread.join(timeout=30)
        assert woke and woke[0] - appended < 2.0
        with waiter.subscribe() as sub:
            assert [e.position for e in sub.poll(timeout=1)] == [1]
    finally:
        waiter.close()
        writer.close()


def test_the_store_reconnects_after_the_server_restarts(pg_url: str) -> None:
    with PostgresServer.start() as own:  # its own server: restarting the shared one would cut other tests
        url = own.new_database()
        with open_store(url) as s:
            s.append("s", [queued("a")])
            with s.subscribe() as sub:
                assert len(sub.poll(timeout=1)) == 1
                own.restart()
                s.append("s", [queued("b")])  # the pool's connections were cut; a fresh one is used
                assert [e.position for e in sub.poll(timeout=5)] == [2]
            assert s.head() == 2 and s.verify().ok


def test_two_logs_live_in_two_schemas_of_one_database(server: PostgresServer, pg_url: str) -> None:
    db = pg_url.rsplit("/", 1)[1]
    server.sql("CREATE SCHEMA team_a", database=db)
    team_a = f"{pg_url}?options=-csearch_path%3Dteam_a"
    with open_store(team_a) as a, open_store(pg_url) as public:
        a.append("s", [queued("a1"), queued("a2")])
        public.append("s", [queued("p1")])
        with public.subscribe() as sub:
            assert [e.payload.task_id for e in sub.poll(timeout=1)] == ["p1"]  # type: ignore[attr-defined]
        assert a.head() == 2 and public.head() == 1 and a.verify().ok
