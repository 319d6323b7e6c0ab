"""Copying a SQLite log into PostgreSQL, hash for hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres_server import PostgresServer
from store_writer import batch, write_batches

from events import open_store
from events.errors import NotAStore
from events.migrate import TargetNotEmpty, copy_log


def test_a_log_is_copied_hash_for_hash_and_the_copy_appends_on(tmp_path: Path, pg_server: PostgresServer) -> None:
    source = f"sqlite:///{tmp_path / 'events.db'}"
    target = pg_server.new_database()
    with open_store(source) as s:
        write_batches(s, 1, 300, seed=3)  # 300 appends of 1-20 events
        s.append_many([(f"g-{k}", batch(f"g-{k}", {"k": k}, 3), 0) for k in range(4)])
        head, root = s.head(), s.root()
    seen: list[int] = []
    report = copy_log(source, target, progress=lambda done, total: seen.append(done))
    assert report.events == head and report.root == root and seen[-1] == head
    with open_store(source) as s, open_store(target) as t:
        assert list(s.scan_rows()) == list(t.scan_rows())
        assert t.verify().ok and t.root() == root
        assert [e.stream_version for e in t.read_stream("g-2")] == [1, 2, 3]
        assert t.append("after", batch("after", {}, 2)).positions == (head + 1, head + 2)
        assert t.verify().ok


def test_a_missing_source_or_a_full_target_is_refused_and_nothing_is_written(tmp_path: Path,
                                                                            pg_server: PostgresServer) -> None:
    target = pg_server.new_database()
    with pytest.raises(NotAStore, match="there is no event store"):
        copy_log(f"sqlite:///{tmp_path / 'missing.db'}", target)
    source = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(source) as s:
        s.append("a", batch("a", {}, 1))
    with open_store(target) as t:
        t.append("b", batch("b", {}, 2))
    with pytest.raises(TargetNotEmpty, match="already holds 2 events"):
        copy_log(source, target)
    with open_store(target) as t:
        assert t.head() == 2
