"""The one follower loop, on real stores: it folds, decides, appends in one commit, acts only on what was stored,
backs off while the store is away, survives a process's bug, and stops at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from actors import follow
from actors.follow import Follower, Process, reader_for
from events import NO_STREAM, AppendResult, CouncilError, EventStore, Intent, RecordedEvent, open_store
from events.catalogue import AgentHeartbeat, TaskQueued, TaskSubmitted
from events.errors import StoreUnavailable


class Queuer(Process):
    """Queues every submitted task once; remembers what it was told was stored."""

    def __init__(self) -> None:
        self.submitted: dict[str, int] = {}
        self.queued: set[str] = set()
        self.reacted: list[str] = []
        self.broken = 0
        self.meddle: list[Callable[[], object]] = []
        """Writes by someone else, made between this process catching up and deciding."""

    def evolve(self, event: RecordedEvent) -> None:
        if isinstance(event.payload, TaskSubmitted):
            self.submitted[event.payload.task_id] = event.stream_version
        elif isinstance(event.payload, TaskQueued):
            self.queued.add(event.payload.task_id)
        elif event.stream.startswith("task-") and event.stream[5:] in self.submitted:
            self.submitted[event.stream[5:]] = event.stream_version  # another writer's event moves the stream

    def sense(self, now: float) -> None:
        while self.meddle:
            self.meddle.pop()()

    def decide(self, now: float) -> Sequence[Intent]:
        if self.broken:
            self.broken -= 1
            raise ZeroDivisionError("a bug in a decision")
        return [Intent(f"task-{t}", [TaskQueued(task_id=t, priority=2)], v)
                for t, v in sorted(self.submitted.items()) if t not in self.queued]

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        self.reacted += [intent.stream for intent, _ in stored]

    def due(self, now: float) -> float:
        return now + 30.0  # nothing falls due on the clock: only the log wakes it


def submit(store: EventStore, task_id: str) -> None:
    store.append(f"task-{task_id}", [TaskSubmitted(task_id=task_id, capability="noop")], NO_STREAM)


class Counting:
    """The log, counting the group commits asked of it."""

    def __init__(self, store: EventStore) -> None:
        self.store, self.commits = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]:
        self.commits += 1
        return self.store.append_many(requests)


def test_a_round_appends_every_decision_in_one_commit_and_acts_only_on_what_was_stored() -> None:
    store = open_store("memory://")
    for t in ("a", "b", "c"):
        submit(store, t)
    process = Queuer()
    log = Counting(store)
    follower = Follower(process, log)  # type: ignore[arg-type]
    process.meddle.append(lambda: store.append("task-b", [TaskQueued(task_id="b", priority=1)]))  # b moves meanwhile
    assert follower.step() == (2, 1)
    assert log.commits == 1
    assert process.reacted == ["task-a", "task-c"]
    assert follower.step() == (0, 0) and follower.stats()["refused"] == 1


def test_a_refused_round_is_decided_again_at_once_not_after_the_longest_wait() -> None:
    store = open_store("memory://")
    submit(store, "b")
    process = Queuer()
    # Someone else writes to b's stream between the catch-up and the decision: the queueing is refused.
    process.meddle.append(lambda: store.append("task-b", [AgentHeartbeat(agent_id="x")]))
    follower = Follower(process, store, longest_wait=30.0)
    started = time.monotonic()
    thread = follower.start("queuer")
    try:
        while not process.queued and time.monotonic() < started + 5:
            time.sleep(0.01)
        took = time.monotonic() - started
    finally:
        follower.stop()
        store.append("agent-x", [AgentHeartbeat(agent_id="x")])  # wakes the waiting loop
        thread.join(5)
    assert process.queued == {"b"} and follower.refused == 1
    assert took < 2, "decided again only after a long wait"


def test_the_loop_wakes_when_the_log_moves_and_stops_at_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    process = Queuer()
    follower = Follower(process, store, longest_wait=30.0)
    thread = follower.start("queuer")
    try:
        submit(store, "a")
        deadline = time.monotonic() + 5
        while "a" not in process.queued and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.queued == {"a"}
    finally:
        stopped = time.monotonic()
        follower.stop()
        store.append("agent-x", [AgentHeartbeat(agent_id="x")])  # the waiter wakes; the loop sees it is stopped
        thread.join(5)
    assert not thread.is_alive() and time.monotonic() - stopped < 2


class Away:
    """The log, failing its first ``failures`` appends as if the store actor were down."""

    def __init__(self, store: EventStore, failures: int) -> None:
        self.store, self.failures, self.calls = store, failures, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("the store actor did not answer append_many within 60 s")
        return self.store.append_many(requests)


def test_while_the_store_is_away_the_loop_backs_off_then_acts_once_it_is_back() -> None:
    store = open_store("memory://")
    submit(store, "a")
    process = Queuer()
    log = Away(store, failures=3)
    follower = Follower(process, log)  # type: ignore[arg-type]
    started = time.monotonic()
    thread = follower.start("queuer")
    try:
        while not process.queued and time.monotonic() < started + 5:
            time.sleep(0.01)
        took = time.monotonic() - started
    finally:
        follower.stop()
        thread.join(5)
    assert took >= 0.35, "the waits double from 50 ms: 50, 100 and 200 ms"
    assert process.queued == {"a"} and process.reacted == ["task-a"]
    assert follower.failures == 3 and "StoreUnavailable" in str(follower.stats()["last_error"])
    assert [e.type for e in store.read_stream("task-a")] == ["task.submitted", "task.queued"]  # once


def test_a_bug_in_a_decision_is_counted_and_the_loop_goes_on() -> None:
    store = open_store("memory://")
    submit(store, "a")
    process = Queuer()
    process.broken = 2
    follower = Follower(process, store)
    thread = follower.start("queuer")
    try:
        deadline = time.monotonic() + 5
        while not process.queued and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        follower.stop()
        thread.join(5)
    assert process.queued == {"a"} and follower.failures == 2
    assert "ZeroDivisionError: a bug in a decision" in str(follower.stats()["last_error"])


class HeartbeatCounter(Process):
    """Folds only heartbeats: the others are not even read."""

    types = ("agent.heartbeat",)

    def __init__(self) -> None:
        self.beats = 0

    def evolve(self, event: RecordedEvent) -> None:
        assert event.type == "agent.heartbeat"
        self.beats += 1


def test_a_process_that_names_its_types_folds_each_of_them_once_and_stands_at_the_head(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "PAGE", 3)  # many pages a catch-up
    store = open_store("memory://")
    process = HeartbeatCounter()
    follower = Follower(process, store)
    written = 0
    for round_ in range(20):
        for i in range(round_ % 7):
            submit(store, f"t{round_}-{i}")
            store.append("agent-x", [AgentHeartbeat(agent_id="x")])
            written += 1
        follower.catch_up()
        assert process.position == store.head() and process.beats == written
    assert written > 50


def test_an_unfiltered_catch_up_reads_page_after_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "PAGE", 2)
    store = open_store("memory://")
    for t in "abcde":
        submit(store, t)
    process = Queuer()
    assert Follower(process, store).catch_up() == 5
    assert set(process.submitted) == set("abcde") and process.position == 5


def test_beats_appended_while_catching_up_are_never_skipped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    writer = open_store(url)
    process = HeartbeatCounter()
    follower = Follower(process, open_store(url))
    done = threading.Event()

    def write() -> None:
        for i in range(400):
            writer.append("agent-x", [AgentHeartbeat(agent_id="x")])
            submit(writer, f"t{i}")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        follower.catch_up()
    thread.join()
    follower.catch_up()
    assert process.beats == 400 and process.position == writer.head() == 800


def test_a_store_this_process_can_share_is_read_directly_and_any_other_through_the_store_actor(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert reader_for(url) is None  # no file yet: never created by a reader
    open_store(url).close()
    reader = reader_for(url)
    assert reader is not None and reader.url == url
    reader.close()
    assert reader_for("memory://") is None
    with pytest.raises(NotImplementedError):
        Process().evolve(None)  # type: ignore[arg-type]
