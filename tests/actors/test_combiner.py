"""Combining concurrent calls, and the store actor's group commit, as plain classes without Ray."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from actors.combiner import Combiner
from actors.store_actor import GroupCommitter
from events import NO_STREAM, AppendResult, open_store
from events.catalogue import TaskQueued
from events.errors import ConcurrencyError


def run_threads(n: int, target) -> list[object]:  # type: ignore[no-untyped-def]
    results: list[object] = [None] * n
    start = threading.Barrier(n)

    def body(i: int) -> None:
        start.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_each_thread_gets_its_own_results_and_sends_never_overlap() -> None:
    in_send, overlaps, sends = threading.Lock(), [], []

    def send(items: list[int]) -> list[int]:
        if not in_send.acquire(blocking=False):
            overlaps.append(items)
            return [i * 10 for i in items]
        try:
            sends.append(list(items))
            time.sleep(0.005)  # long enough for others to pile up behind this send
            return [i * 10 for i in items]
        finally:
            in_send.release()

    combiner = Combiner(send)
    results = run_threads(16, lambda i: combiner.submit([i, i + 100]))
    assert results == [[i * 10, (i + 100) * 10] for i in range(16)]
    assert overlaps == []
    assert len(sends) < 16  # threads that arrived during a send went out together
    assert sorted(x for s in sends for x in s) == sorted([*range(16), *range(100, 116)])


def test_a_failed_send_raises_in_every_thread_of_its_group_and_the_next_group_still_goes() -> None:
    calls = []

    def send(items: list[str]) -> list[str]:
        calls.append(items)
        if "bad" in items:
            raise OSError("disk full")
        return items

    combiner = Combiner(send)
    with pytest.raises(OSError, match="disk full"):
        combiner.submit(["bad"])
    assert combiner.submit(["good"]) == ["good"]


def test_after_sees_each_sends_results_before_any_caller_is_answered() -> None:
    seen: list[list[int]] = []
    combiner = Combiner(lambda items: [i + 1 for i in items], after=seen.append)
    assert combiner.submit([1, 2]) == [2, 3]
    assert seen == [[2, 3]]


def test_group_commit_moves_the_head_and_wakes_waiters_only_after_the_commit(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    committer = GroupCommitter(store)
    assert committer.wait_for(1, timeout=0.01) == 0  # nothing yet: the timeout answers with the head
    woke: list[int] = []
    waiter = threading.Thread(target=lambda: woke.append(committer.wait_for(5, timeout=10)))
    waiter.start()
    results = run_threads(5, lambda i: committer.submit([(f"task-{i}", [TaskQueued(task_id=str(i), priority=2)],
                                                          NO_STREAM)]))
    waiter.join(10)
    assert all(isinstance(r, list) and isinstance(r[0], AppendResult) for r in results)
    assert woke == [5] and committer.head == store.head() == 5
    assert committer.appends == 5 and 1 <= committer.flushes <= 5
    # a refusal is that caller's result, not the group's failure
    again = committer.submit([("task-0", [TaskQueued(task_id="0", priority=2)], NO_STREAM)])
    assert isinstance(again[0], ConcurrencyError) and committer.head == 5
