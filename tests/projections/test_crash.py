"""Crash safety: a projector killed at any moment leaves its file at the end of a whole batch.

Reopened, it goes on from there and ends equal to a rebuild: no event applied twice, none skipped.
An event applied twice would show as a doubled count (attempts used, tasks in flight, a request's
tallies), one skipped as a missing or stale row, so comparing every table with a rebuild at the
checkpoint catches both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from projection_support import recount_problems, snapshot, write_random_log

from events import EventStore, open_store
from events.sqlite import SqliteRecorder
from projections import ProjectionBusy, Projector, query_file

WORKER = Path(__file__).with_name("projection_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def worker(url: str, path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(WORKER), url, str(path), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "ready", (line, proc.stderr.read() if proc.stderr else "")
    return proc


def equals_a_rebuild_at_its_checkpoint(store: EventStore, path: Path) -> int:
    with Projector(store, path) as projector, Projector(store, None) as fresh:
        fresh.catch_up(projector.position)
        assert snapshot(projector) == snapshot(fresh)
        assert recount_problems(projector) == {}
        return projector.position


@pytest.fixture(scope="module")
def sqlite_log(tmp_path_factory: pytest.TempPathFactory) -> EventStore:
    url = f"sqlite:///{tmp_path_factory.mktemp('crash') / 'events.db'}"
    store = open_store(url)
    recorder = store._recorder
    assert isinstance(recorder, SqliteRecorder)
    recorder._writer.execute("PRAGMA synchronous=OFF")  # filling the log fast; its durability is not under test
    write_random_log(store, tasks=2000, agents=20, requests=40, seed=21)
    return store


@pytest.mark.slow
def test_a_projector_killed_mid_catch_up_goes_on_without_repeating_or_skipping(sqlite_log: EventStore,
                                                                                tmp_path: Path) -> None:
    head, batch = sqlite_log.head(), 64
    path = tmp_path / "p.duckdb"
    stops = []
    for share in (0.2, 0.5, 0.8):  # kill it three times, each time further on
        proc = worker(sqlite_log.url, path, "follow", str(batch))
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "done" or int(line) >= head * share:
                break
        proc.kill()  # SIGKILL: no cleanup, most likely in the middle of the next batch
        proc.wait(timeout=30)
        position = equals_a_rebuild_at_its_checkpoint(sqlite_log, path)
        assert position % batch == 0 or position == head  # the end of a whole batch
        stops.append(position)
    assert stops == sorted(stops) and 0 < stops[0] < head, stops
    with Projector(sqlite_log, path) as projector:
        projector.catch_up()
    assert equals_a_rebuild_at_its_checkpoint(sqlite_log, path) == head


def test_events_folded_but_never_stored_are_folded_again_after_a_kill(sqlite_log: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    proc = worker(sqlite_log.url, path, "advance", "1000", "500")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == ["1500", "1000"]  # folded to 1500, stored to 1000
    finally:
        proc.kill()
        proc.wait()
    with Projector(sqlite_log, path) as projector:
        assert (projector.position, projector.checkpoint) == (1000, 1000)
        projector.catch_up(2000)
    assert equals_a_rebuild_at_its_checkpoint(sqlite_log, path) == 3000


def test_advance_answers_queries_at_once_and_flush_stores_them(sqlite_log: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    with Projector(sqlite_log, path) as projector, Projector(sqlite_log, None) as fresh:
        projector.catch_up(700)
        assert projector.advance(800) == 800 and (projector.position, projector.checkpoint) == (1500, 700)
        assert projector.unstored_events == 800 and projector.unstored_age > 0
        fresh.catch_up(1500)
        assert snapshot(projector) == snapshot(fresh)  # the overlay shows what the file lacks
        assert recount_problems(projector) == {}
        assert projector.flush() == 800 and projector.checkpoint == 1500 and projector.unstored_age == 0.0
        assert snapshot(projector) == snapshot(fresh)
        assert projector.advance(300) == 300
    # closing stores what was folded
    assert equals_a_rebuild_at_its_checkpoint(sqlite_log, path) == 1800


@pytest.mark.slow
def test_a_file_held_by_a_projector_in_another_process_is_reported_busy(sqlite_log: EventStore,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    with Projector(sqlite_log, path) as projector:
        projector.catch_up(100)
    proc = worker(sqlite_log.url, path, "hold")
    try:
        with pytest.raises(ProjectionBusy, match="open for writing by another process"):
            query_file(path, "SELECT 1")
        with pytest.raises(ProjectionBusy, match="open in another process"):
            Projector(sqlite_log, path)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert query_file(path, "SELECT count(*) > 0 FROM tasks").rows == [(True,)]
