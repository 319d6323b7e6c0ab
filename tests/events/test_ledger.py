"""The ledger catches any changed byte, removed event or reordering; `council verify` reports it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import Metadata, NewEvent, merkle, open_store
from events.catalogue import TaskQueued, TaskSubmitted
from events.errors import CorruptLog, LedgerError
from events.ledger import GENESIS, LedgerVerifier, canonical_bytes, event_hash

BATCHES = [1, 3, 1, 4, 1, 2]  # positions 1 | 2-4 | 5 | 6-9 | 10 | 11-12
EVENTS = sum(BATCHES)
EVENT_FIELDS = ["event_id", "type", "schema_version", "metadata", "payload", "hash"]
COMMIT_COLUMNS = ["first_position", "stream", "last_version", "recorded_at"]


def fill(url: str) -> None:
    with open_store(url) as s:
        n = 0
        for b, size in enumerate(BATCHES):
            batch = []
            for _ in range(size):
                batch.append(NewEvent(payload=TaskSubmitted(task_id=f"t{n}", capability="test.run", inputs={"i": n}),
                                      metadata=Metadata(actor="tester")))
                n += 1
            s.append(f"task-{b % 3}", batch)


class Tamperer:
    """Edits the SQLite file under the store, as someone with write access to it could."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for name in ("commits_no_update", "commits_no_delete", "event_ids_no_update", "event_ids_no_delete"):
            self.conn.execute(f"DROP TRIGGER {name}")

    def commit_of(self, position: int) -> tuple[Any, ...]:
        return self.conn.execute(
            "SELECT last_position, first_position, stream, last_version, recorded_at, events FROM commits "
            "WHERE last_position >= ? ORDER BY last_position LIMIT 1", (position,)).fetchone()

    def edit_event(self, position: int, change: Callable[[list[Any]], list[Any] | None]) -> None:
        last, first, *_, blob = self.commit_of(position)
        events = msgspec.msgpack.decode(blob)
        events[position - first] = change(events[position - first])
        events = [e for e in events if e is not None]
        self.set(last, "events", msgspec.msgpack.encode(events))

    def events(self, position: int) -> list[list[Any]]:
        return msgspec.msgpack.decode(self.commit_of(position)[5])

    def set(self, last_position: int, column: str, value: object) -> None:
        self.conn.execute(f"UPDATE commits SET {column} = ? WHERE last_position = ?", (value, last_position))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[str, Tamperer]]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    fill(url)
    t = Tamperer(tmp_path / "events.db")
    yield url, t
    t.conn.close()


def verify(url: str):  # type: ignore[no-untyped-def]
    with open_store(url, create=False) as s:
        return s.verify()


def changed(value: object) -> object:
    if isinstance(value, bytes):
        return bytes([value[0] ^ 0x01]) + value[1:]
    if isinstance(value, int):
        return value + 100
    return value + "x"  # type: ignore[operator]


def test_the_hash_chain_is_the_documented_construction(ledger) -> None:  # type: ignore[no-untyped-def]
    url, _ = ledger
    with open_store(url) as s:
        rows = list(s.scan_rows())
        prev = GENESIS
        for row in rows:
            expected = merkle.leaf_hash(msgspec.msgpack.encode([*row[:9], prev]))
            assert expected == merkle.leaf_hash(canonical_bytes(row, prev)) == event_hash(row, prev) == row[9]
            prev = row[9]
        assert s.verify().root == merkle.root([r[9] for r in rows])


def test_an_intact_log_verifies(ledger) -> None:  # type: ignore[no-untyped-def]
    report = verify(ledger[0])
    assert report.ok and report.checked == EVENTS and report.head == EVENTS


@pytest.mark.parametrize("field", range(len(EVENT_FIELDS)), ids=EVENT_FIELDS)
def test_changing_any_field_of_an_event_inside_a_batch_is_caught_at_that_event(ledger, field: int) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    t.edit_event(7, lambda e: [*e[:field], changed(e[field]), *e[field + 1:]])
    report = verify(url)
    assert not report.ok and report.failed_position == 7 and report.checked == 6


@pytest.mark.parametrize("column", COMMIT_COLUMNS)
def test_changing_a_column_of_a_commit_is_caught_at_its_first_event(ledger, column: str) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    last = t.commit_of(7)[0]
    value = t.conn.execute(f"SELECT {column} FROM commits WHERE last_position = ?", (last,)).fetchone()[0]
    t.set(last, column, changed(value))
    report = verify(url)
    assert not report.ok and report.failed_position == 6


def test_a_removed_commit_is_caught(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    t.conn.execute("DELETE FROM commits WHERE last_position = 5")
    report = verify(url)
    assert not report.ok and report.failed_position == 5 and "missing" in (report.problem or "")


def test_an_event_removed_from_inside_a_batch_is_caught(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    t.edit_event(7, lambda e: None)
    report = verify(url)
    assert not report.ok and report.failed_position == 6 and "has 3 events" in (report.problem or "")


def test_events_reordered_inside_a_batch_are_caught(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    last = t.commit_of(6)[0]
    events = t.events(6)
    events[0], events[2] = events[2], events[0]
    t.set(last, "events", msgspec.msgpack.encode(events))
    report = verify(url)
    assert not report.ok and report.failed_position == 6


def test_commits_swapped_are_caught(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    a, b = t.events(5), t.events(10)
    t.set(5, "events", msgspec.msgpack.encode(b))
    t.set(10, "events", msgspec.msgpack.encode(a))
    report = verify(url)
    assert not report.ok and report.failed_position == 5


def test_an_event_rewritten_with_its_hash_recomputed_is_still_caught_at_the_next(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    with open_store(url) as s:
        rows = list(s.scan_rows())
    row = list(rows[4])  # position 5, a commit of its own
    row[8] = row[8].replace(b'"i":4', b'"i":9')
    row[9] = event_hash(row, rows[3][9])
    t.edit_event(5, lambda e: [e[0], e[1], e[2], e[3], row[8], row[9]])
    report = verify(url)
    assert not report.ok and report.failed_position == 6


@given(position=st.integers(1, EVENTS), offset=st.integers(0, 100_000), bit=st.integers(0, 7))
def test_any_single_bit_flip_in_the_stored_events_is_caught(tmp_path_factory: pytest.TempPathFactory,
                                                            position: int, offset: int, bit: int) -> None:
    path = tmp_path_factory.mktemp("flip") / "events.db"
    fill(f"sqlite:///{path}")
    t = Tamperer(path)
    last, first, *_, blob = t.commit_of(position)
    flipped = bytearray(blob)
    flipped[offset % len(flipped)] ^= 1 << bit
    t.set(last, "events", bytes(flipped))
    t.conn.close()
    report = verify(f"sqlite:///{path}")
    assert not report.ok and first <= (report.failed_position or 0) <= last


def test_reading_a_damaged_commit_raises_a_clear_error(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    t.set(5, "events", b"\xc1garbage")
    with open_store(url) as s, pytest.raises(CorruptLog, match=r"damaged at position 5.*run `council verify`"):
        s.read_all()
    report = verify(url)
    assert not report.ok and report.failed_position == 5 and "cannot be decoded" in (report.problem or "")


def test_the_verifier_reports_a_short_read() -> None:
    report = LedgerVerifier().report(head=3)
    assert not report.ok and report.failed_position == 1


def test_appends_after_verification_extend_the_same_tree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    fill(url)
    with open_store(url) as s:
        old_root = s.verify().root
        s.append("more", [TaskQueued(task_id="x", priority=0)])
        new = s.verify()
        assert new.ok and new.head == EVENTS + 1
        assert merkle.verify_consistency(EVENTS, EVENTS + 1, old_root, new.root, s.consistency_proof(EVENTS))


def test_another_process_appending_keeps_the_chain_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with open_store(url) as mine:
        mine.append("a", [TaskQueued(task_id="x", priority=0)])
        fill(url)  # another store object on the file: our remembered head is stale now
        mine.append("a", [TaskQueued(task_id="y", priority=0)])
        assert mine.verify().ok and mine.head() == EVENTS + 2


def test_store_proof_arguments_are_checked() -> None:
    with open_store("memory://") as s:
        s.append("s", [TaskQueued(task_id="x", priority=0)])
        with pytest.raises(LedgerError, match="position 2 is not in a tree of 1"):
            s.inclusion_proof(2)
        with pytest.raises(LedgerError, match="beyond the log's head"):
            s.root(5)
        with pytest.raises(LedgerError, match="old size 0"):
            s.consistency_proof(0)


# -- the command line -----------------------------------------------------------------------------


def council(*args: str) -> subprocess.CompletedProcess[str]:
    # Run from an empty directory: a council home (keys, a published checkpoint) must not be picked up.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True, timeout=120,
                              cwd=cwd, env={k: v for k, v in env.items() if not k.startswith("COUNCIL_")})


def test_council_verify_passes_on_an_intact_log(ledger) -> None:  # type: ignore[no-untyped-def]
    url, _ = ledger
    out = council("verify", "--store", url)
    assert out.returncode == 0, out.stderr
    with open_store(url) as s:
        root = s.root().hex()
    keys = Path(url.removeprefix("sqlite:///")).parent / "keys"  # the council's home is its log's directory
    assert out.stdout.splitlines() == [f"ok: {EVENTS} events checked, head {EVENTS}, root {root}",
                                       "blobs: none named",  # a log with no model call names no blob
                                       f"checkpoints: not checked (no council key in {keys})"]


def test_council_verify_fails_naming_the_position(ledger) -> None:  # type: ignore[no-untyped-def]
    url, t = ledger
    t.edit_event(9, lambda e: [*e[:4], e[4].replace(b"t8", b"t9"), e[5]])
    out = council("verify", "--store", url)
    assert out.returncode == 1
    assert out.stdout.startswith("FAILED at position 9:")


def test_council_verify_on_a_missing_store_is_a_one_line_error(tmp_path: Path) -> None:
    out = council("verify", "--store", f"sqlite:///{tmp_path}/nothing.db")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: there is no event store at {tmp_path}/nothing.db; "
                                               "check --store (or COUNCIL_STORE), or start a council with "
                                               "`council up`"]
    assert not (tmp_path / "nothing.db").exists()
