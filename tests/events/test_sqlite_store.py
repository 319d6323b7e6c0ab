"""What only the embedded SQLite backend has: a file, its format, its durability.

Crashes mid-append are tested on every durable backend by the conformance suite.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import type_index_checks

from events import open_store
from events.catalogue import TaskQueued
from events.errors import InvalidStoreUrl, NewerStoreSchema, NotAStore

WRITER = Path(__file__).with_name("store_writer.py")


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel/events.db") as s:
        s.append("s", [TaskQueued(task_id="a", priority=1)])
    assert (tmp_path / "rel" / "events.db").exists()
    with open_store(f"sqlite:///{tmp_path}/rel/events.db") as s:  # absolute: four slashes
        assert s.head() == 1
    with open_store("rel/events.db") as s:  # a bare path
        assert s.head() == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the store URL is empty"),
        ("mysql://db/x", "scheme 'mysql' is not supported"),
        ("sqlite://", "has no path"),
        ("sqlite:///", "has no path"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreUrl, match=message):
        open_store(url)


def test_paths_that_are_not_stores_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(NotAStore, match="is not an agent-council event store"):
        open_store(f"sqlite:///{garbage}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(NotAStore, match="an SQLite database but not an agent-council event store"):
        open_store(f"sqlite:///{other}")
    with pytest.raises(NotAStore, match="is a directory"):
        open_store(f"sqlite:///{tmp_path}")
    with pytest.raises(NotAStore, match="there is no event store at"):
        open_store(f"sqlite:///{tmp_path}/missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    assert garbage.read_bytes().startswith(b"this is not a database")


def test_a_store_from_a_newer_schema_is_refused(sqlite_url: str) -> None:
    open_store(sqlite_url).close()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(NewerStoreSchema, match=r"newer agent-council .*store schema 99"):
        open_store(sqlite_url)


def test_the_database_itself_refuses_update_and_delete(sqlite_url: str) -> None:
    with open_store(sqlite_url) as s:
        s.append("s", [TaskQueued(task_id="a", priority=1)])
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        for statement in ("UPDATE commits SET events = x'00'", "DELETE FROM commits",
                          "UPDATE event_ids SET position = 9", "DELETE FROM event_ids"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)


def test_uses_wal_and_full_synchronous(sqlite_url: str) -> None:
    with open_store(sqlite_url) as s:
        s.append("s", [TaskQueued(task_id="a", priority=1)])
        conn = s._recorder._writer  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_an_append_that_returned_survives_the_process(sqlite_url: str) -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from events import open_store\nfrom events.catalogue import TaskQueued\n"
        f"s = open_store({sqlite_url!r})\n"
        "print(s.append('s', [TaskQueued(task_id='a', priority=1)]).positions[0], flush=True)\n"
        "import os; os._exit(0)\n"  # no close, no cleanup
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "1"
    with open_store(sqlite_url, create=False) as s:
        assert [e.payload for e in s.read_all()] == [TaskQueued(task_id="a", priority=1)]


def test_a_read_of_a_rare_type_reads_only_the_commits_holding_it(sqlite_url: str) -> None:
    type_index_checks.rare_reads_touch_only_their_commits(sqlite_url)


def test_a_schema_1_file_gains_the_type_index_and_verifies_unchanged(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")

    def downgrade() -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE commit_types")
            conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")

    type_index_checks.schema_1_log_upgrades_on_open(sqlite_url, downgrade)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM commit_types")
