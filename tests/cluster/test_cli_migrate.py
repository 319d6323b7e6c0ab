"""`council migrate` and `--store postgresql://...` / COUNCIL_STORE, as a user runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import council
from postgres_server import PostgresServer

from events import open_store
from events.catalogue import TaskQueued


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer.start() as running:
        yield running


def test_migrate_copies_a_sqlite_log_that_then_verifies_on_postgresql(server: PostgresServer, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(source) as s:
        for i in range(50):
            s.append(f"task-{i}", [TaskQueued(task_id=f"t{i}", priority=i % 3)])
        root = s.root().hex()
    target = server.new_database()
    done = council("migrate", "--from", source, "--to", target, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"ok: 50 events copied and verified, root {root}" in done.stdout
    verified = council("verify", "--store", target, cwd=tmp_path)
    assert f"ok: 50 events checked, head 50, root {root}" in verified.stdout
    listed = council("events", "--limit", "2", cwd=tmp_path, env={"COUNCIL_STORE": target})
    assert listed.returncode == 0 and "task-1" in listed.stdout, listed.stdout + listed.stderr

    again = council("migrate", "--from", source, "--to", target, cwd=tmp_path)
    assert again.returncode == 2 and "already holds 50 events" in again.stderr
    missing = council("migrate", "--from", f"sqlite:///{tmp_path / 'nope.db'}", "--to", server.new_database(),
                      cwd=tmp_path)
    assert missing.returncode == 2 and "there is no event store at" in missing.stderr
    down = council("verify", "--store", "postgresql://council@127.0.0.1:1/x", cwd=tmp_path)
    assert down.returncode == 2 and "check that the server is running" in down.stderr
