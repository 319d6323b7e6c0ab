"""The store actor's door without Ray: who is let in, what one bad guest costs the others (nothing), and the bytes."""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.store_actor import GroupCommitter
from actors.store_door import MAX_FRAME, Address, Door, Knock
from actors.store_wire import calls_to_wire, results_from_wire
from events import NO_STREAM, AppendResult, NewEvent, open_store
from events.catalogue import TaskQueued
from events.errors import ConcurrencyError


@pytest.fixture
def door(tmp_path: Path) -> Iterator[tuple[Door, GroupCommitter]]:
    committer = GroupCommitter(open_store(f"sqlite:///{tmp_path / 'events.db'}"))
    opened = Door(committer.submit_wire, "node-1")
    yield opened, committer
    opened.close()
    committer.store.close()


def append(stream: str, task: str) -> bytes:
    return calls_to_wire([(stream, [NewEvent(payload=TaskQueued(task_id=task, priority=1))], NO_STREAM)])


def test_a_guest_with_the_token_appends_and_hears_each_result_and_refusal(door: tuple[Door, GroupCommitter]) -> None:
    opened, committer = door
    knock = Knock(opened.address, timeout=10)
    [first] = results_from_wire(knock.call(append("s-1", "a")))
    [again] = results_from_wire(knock.call(append("s-1", "b")))
    knock.close()
    assert isinstance(first, AppendResult) and first.positions == (1,)
    assert isinstance(again, ConcurrencyError)  # the store's refusal, as the store raised it
    assert committer.store.head() == 1 and opened.answered == 2


def test_the_socket_is_for_its_owner_only(door: tuple[Door, GroupCommitter]) -> None:
    opened, _ = door
    path = Path(opened.address.path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_wrong_token_a_huge_frame_or_garbage_is_shown_out_and_nothing_is_appended(
        door: tuple[Door, GroupCommitter]) -> None:
    opened, committer = door
    wrong = Address(opened.address.node_id, opened.address.path, os.urandom(32))
    with pytest.raises((OSError, EOFError)):
        Knock(wrong, timeout=10).call(append("s-1", "a"))
    with socket.socket(socket.AF_UNIX) as raw:  # a length over the limit: no allocation, the connection ends
        raw.settimeout(10)
        raw.connect(opened.address.path)
        raw.sendall(opened.address.token + struct.pack("!I", MAX_FRAME + 1))
        assert raw.recv(1) == b""
    garbage = Knock(opened.address, timeout=10)
    with pytest.raises((OSError, EOFError)):
        garbage.call(b"\xc1 not a list of appends")
    garbage.close()
    assert committer.store.head() == 0 and opened.answered == 0
    knock = Knock(opened.address, timeout=10)  # the door still lets the next guest in
    assert isinstance(results_from_wire(knock.call(append("s-1", "a")))[0], AppendResult)
    knock.close()


def test_a_closed_door_refuses_a_knock(door: tuple[Door, GroupCommitter]) -> None:
    opened, _ = door
    opened.close()
    with pytest.raises(OSError):
        Knock(opened.address, timeout=1)
    assert not Path(opened.address.path).parent.exists()


def test_a_new_door_sweeps_away_the_directories_of_doors_whose_process_died(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    left = Path(tempfile.mkdtemp(prefix=f"council-store-door-{dead}-"))
    (left / "door").touch()
    alive = Path(tempfile.mkdtemp(prefix=f"council-store-door-{os.getpid()}-"))
    committer = GroupCommitter(open_store(f"sqlite:///{tmp_path / 'events.db'}"))
    opened = Door(committer.submit_wire, "node-1")
    try:
        assert not left.exists() and alive.exists()
    finally:
        opened.close()
        alive.rmdir()
        committer.store.close()
