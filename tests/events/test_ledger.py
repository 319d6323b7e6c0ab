"""The ledger catches any changed byte, removed event or reordering; `council verify` reports it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import Metadata, NewEvent, merkle, open_store
from events.catalogue import TaskQueued, TaskSubmitted
from events.ledger import GENESIS, LedgerVerifier, canonical_bytes, chain_hash, event_leaf_hash

EVENTS = 12
COLUMNS = ["stream", "stream_version", "event_id", "type", "schema_version", "recorded_at", "metadata", "payload", "hash"]


def fill(url: str) -> None:
    with open_store(url) as s:
        for i in range(EVENTS):
            s.append(f"task-{i % 3}", [NewEvent(payload=TaskSubmitted(task_id=f"t{i}", capability="test.run", inputs={"i": i}),
                                             metadata=Metadata(actor="tester"))])


@pytest.fixture
def ledger_db(tmp_path: Path) -> Iterator[tuple[str, sqlite3.Connection]]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    fill(url)
    conn = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")  # an attacker with the file can do this too
    conn.execute("DROP TRIGGER events_no_delete")
    yield url, conn
    conn.close()


def verify(url: str):  # type: ignore[no-untyped-def]
    with open_store(url, create=False) as s:
        return s.verify()


def test_the_hash_chain_is_the_documented_construction(ledger_db) -> None:  # type: ignore[no-untyped-def]
    url, _ = ledger_db
    with open_store(url) as s:
        rows = list(s.scan_rows())
        prev = GENESIS
        for row in rows:
            leaf = merkle.leaf_hash(canonical_bytes(row))
            assert leaf == event_leaf_hash(row)
            prev = chain_hash(prev, leaf)
            assert row[9] == prev
        assert s.verify().root == merkle.root([event_leaf_hash(r) for r in rows])


def test_an_intact_log_verifies(ledger_db) -> None:  # type: ignore[no-untyped-def]
    report = verify(ledger_db[0])
    assert report.ok and report.checked == EVENTS and report.head == EVENTS


@pytest.mark.parametrize("column", COLUMNS)
def test_changing_any_column_of_an_event_is_caught_at_that_position(ledger_db, column: str) -> None:  # type: ignore[no-untyped-def]
    url, conn = ledger_db
    value = conn.execute(f"SELECT {column} FROM events WHERE position = 5").fetchone()[0]
    if isinstance(value, bytes):
        changed: object = bytes([value[0] ^ 0x01]) + value[1:]
    elif isinstance(value, int):
        changed = value + 100
    else:
        changed = value + "x"
    conn.execute(f"UPDATE events SET {column} = ? WHERE position = 5", (changed,))
    report = verify(url)
    assert not report.ok and report.failed_position == 5 and report.checked == 4


def test_a_removed_event_is_caught(ledger_db) -> None:  # type: ignore[no-untyped-def]
    url, conn = ledger_db
    conn.execute("DELETE FROM events WHERE position = 7")
    report = verify(url)
    assert not report.ok and report.failed_position == 7 and "missing" in (report.problem or "")


def test_reordered_events_are_caught(ledger_db) -> None:  # type: ignore[no-untyped-def]
    url, conn = ledger_db
    a = conn.execute("SELECT * FROM events WHERE position = 3").fetchone()
    b = conn.execute("SELECT * FROM events WHERE position = 8").fetchone()
    conn.execute("DELETE FROM events WHERE position IN (3, 8)")
    conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", (3, *b[1:]))
    conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", (8, *a[1:]))
    report = verify(url)
    assert not report.ok and report.failed_position == 3


def test_an_event_moved_with_its_hash_recomputed_is_still_caught_after_it(ledger_db) -> None:  # type: ignore[no-untyped-def]
    url, conn = ledger_db
    row = list(conn.execute("SELECT * FROM events WHERE position = 6").fetchone())
    row[8] = row[8].replace(b'"i":5', b'"i":9')
    prev = conn.execute("SELECT hash FROM events WHERE position = 5").fetchone()[0]
    row[9] = chain_hash(prev, event_leaf_hash(row))
    conn.execute("UPDATE events SET payload = ?, hash = ? WHERE position = 6", (row[8], row[9]))
    report = verify(url)
    assert not report.ok and report.failed_position == 7


@given(position=st.integers(1, EVENTS), column=st.sampled_from(["metadata", "payload", "hash", "event_id"]),
       offset=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_single_bit_flip_in_any_event_is_caught(tmp_path_factory: pytest.TempPathFactory, position: int,
                                                    column: str, offset: int, bit: int) -> None:
    path = tmp_path_factory.mktemp("flip") / "events.db"
    fill(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    value = bytearray(conn.execute(f"SELECT {column} FROM events WHERE position = ?", (position,)).fetchone()[0])
    value[offset % len(value)] ^= 1 << bit
    conn.execute(f"UPDATE events SET {column} = ? WHERE position = ?", (bytes(value), position))
    conn.close()
    report = verify(f"sqlite:///{path}")
    assert not report.ok and report.failed_position == position


def test_the_verifier_reports_a_short_read() -> None:
    verifier = LedgerVerifier()
    report = verifier.report(head=3)
    assert not report.ok and report.failed_position == 1


# -- the command line -----------------------------------------------------------------------------


def council(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or Path(__file__).resolve().parents[2])


def test_council_verify_passes_on_an_intact_log(ledger_db) -> None:  # type: ignore[no-untyped-def]
    url, _ = ledger_db
    out = council("verify", "--store", url)
    assert out.returncode == 0, out.stderr
    with open_store(url) as s:
        root = s.root().hex()
    assert out.stdout.strip() == f"ok: {EVENTS} events checked, head {EVENTS}, root {root}"


def test_council_verify_fails_naming_the_position(ledger_db) -> None:  # type: ignore[no-untyped-def]
    url, conn = ledger_db
    conn.execute("UPDATE events SET payload = CAST(REPLACE(CAST(payload AS TEXT), 't8', 't9') AS BLOB) WHERE position = 9")
    out = council("verify", "--store", url)
    assert out.returncode == 1
    assert out.stdout.startswith("FAILED at position 9:")


def test_council_verify_on_a_missing_store_is_a_one_line_error(tmp_path: Path) -> None:
    out = council("verify", "--store", f"sqlite:///{tmp_path}/nothing.db")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: there is no event store at {tmp_path}/nothing.db; "
                                               "check --store, or append to create one"]
    assert not (tmp_path / "nothing.db").exists()


def test_appends_after_verification_extend_the_same_tree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    fill(url)
    with open_store(url) as s:
        old_root = s.verify().root
        s.append("more", [TaskQueued(task_id="x", priority=0)])
        new = s.verify()
        assert new.ok and new.head == EVENTS + 1
        assert merkle.verify_consistency(EVENTS, EVENTS + 1, old_root, new.root, s.consistency_proof(EVENTS))


def test_store_proof_arguments_are_checked(tmp_path: Path) -> None:
    from events.errors import LedgerError

    with open_store("memory://") as s:
        s.append("s", [TaskQueued(task_id="x", priority=0)])
        with pytest.raises(LedgerError, match="position 2 is not in a tree of 1"):
            s.inclusion_proof(2)
        with pytest.raises(LedgerError, match="beyond the log's head"):
            s.root(5)
        with pytest.raises(LedgerError, match="old size 0"):
            s.consistency_proof(0)


