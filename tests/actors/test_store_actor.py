"""The store actor on a real local Ray: group commit, idempotent client retries, crash recovery."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import ray
from ray_support import ask, sigkill

from actors import names
from actors.store_actor import StoreActor
from actors.store_client import StoreClient
from actors.store_wire import calls_to_wire, results_from_wire
from events import NO_STREAM, NewEvent, open_store
from events.catalogue import TaskQueued, TaskSubmitted
from events.errors import ConcurrencyError


@pytest.fixture
def store_url(tmp_path: Path, ray_instance: None):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'events.db'}"
    name = f"store-{uuid.uuid4().hex[:6]}"
    handle = StoreActor.options(name=name, namespace=names.NAMESPACE, lifetime="detached").remote(url, 1 << 20)
    yield url, handle
    ray.kill(handle)


@ray.remote
def writer(handle: ray.actor.ActorHandle, w: int, n: int) -> int:
    client = StoreClient(handle)
    for i in range(n):
        client.append(f"w{w}-{i}", [TaskQueued(task_id=f"{w}.{i}", priority=2)], NO_STREAM)
    return n


def test_concurrent_appenders_are_committed_together(store_url) -> None:  # type: ignore[no-untyped-def]
    url, handle = store_url
    total = sum(ray.get([writer.remote(handle, w, 25) for w in range(8)]))
    stats = ray.get(handle.stats.remote())
    assert stats["appends"] == total == 200 and stats["head"] == 200
    # A burst of calls in flight at once: those that arrive while a commit is being written go
    # to disk together with the next one.
    burst = [handle.append_many.remote(calls_to_wire([(f"burst-{i}", [NewEvent(payload=TaskQueued(task_id=f"b{i}",
                                                                                           priority=2))], NO_STREAM)]))
             for i in range(300)]
    assert all(len(r) == 1 and not isinstance(r[0], Exception) for r in map(results_from_wire, ray.get(burst)))
    after = ray.get(handle.stats.remote())
    assert after["appends"] == 500 and after["flushes"] - stats["flushes"] < 300, "no appends shared a transaction"
    with open_store(url) as s:
        assert s.head() == 500 and s.verify().ok


def test_refusals_come_back_as_the_store_raised_them(store_url) -> None:  # type: ignore[no-untyped-def]
    _, handle = store_url
    client = StoreClient(handle)
    client.append("s", [TaskQueued(task_id="a", priority=1)], NO_STREAM)
    with pytest.raises(ConcurrencyError, match="at version 1, but the append expected"):
        client.append("s", [TaskQueued(task_id="b", priority=1)], NO_STREAM)
    assert [e.payload.task_id for e in client.read_stream("s")] == ["a"]


def test_wait_for_returns_when_the_log_moves(store_url) -> None:  # type: ignore[no-untyped-def]
    _, handle = store_url
    client = StoreClient(handle)
    assert client.wait_for(1, timeout=0.1) == 0
    threading.Timer(0.2, lambda: client.append("s", [TaskQueued(task_id="a", priority=1)])).start()
    assert client.wait_for(1, timeout=10) == 1


@pytest.mark.parametrize("door", [True, False], ids=["through-its-door", "through-ray"])
def test_killing_the_store_actor_loses_and_duplicates_nothing(store_url, door: bool) -> None:  # type: ignore[no-untyped-def]
    url, handle = store_url
    client = StoreClient(handle, door=door)
    planned = [NewEvent(payload=TaskSubmitted(task_id=f"t{i}", capability="noop")) for i in range(300)]
    done = threading.Event()

    def append_all() -> None:
        for i, event in enumerate(planned):
            client.append(f"task-t{i}", [event], NO_STREAM)
        done.set()

    thread = threading.Thread(target=append_all)
    thread.start()
    kills = 0
    while not done.is_set() and kills < 3:
        pid = ask(handle.pid)
        if client.head() > 50 * (kills + 1):
            sigkill(pid)
            kills += 1
    thread.join(timeout=120)
    assert done.is_set() and kills >= 1
    with open_store(url) as s:
        ids = [e.event_id for e in s.read_all()]
        assert s.verify().ok
    assert sorted(ids) == sorted(e.event_id for e in planned)  # each exactly once


def test_a_writer_on_the_store_actors_node_appends_through_its_door(store_url) -> None:  # type: ignore[no-untyped-def]
    _, handle = store_url
    here, there = StoreClient(handle), StoreClient(handle, door=False)
    for i in range(5):
        here.append(f"here-{i}", [TaskQueued(task_id=f"h{i}", priority=1)], NO_STREAM)
        there.append(f"there-{i}", [TaskQueued(task_id=f"t{i}", priority=1)], NO_STREAM)
    stats = ask(handle.stats)
    assert stats["through_door"] == 5 and stats["appends"] == 10  # the other five were Ray calls
    with pytest.raises(ConcurrencyError, match="at version 1, but the append expected"):  # refusals cross it too
        here.append("here-0", [TaskQueued(task_id="h", priority=1)], NO_STREAM)


def test_a_store_actor_that_cannot_open_its_door_takes_every_append_through_ray(tmp_path: Path,
                                                                              ray_instance: None) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # a socket's path there is over the 108 bytes one may have
    deep.mkdir(parents=True)
    handle = StoreActor.options(runtime_env={"env_vars": {"TMPDIR": str(deep)}}).remote(
        f"sqlite:///{tmp_path / 'events.db'}", 1 << 20)
    try:
        assert ask(handle.door) is None
        client = StoreClient(handle)
        client.append("s", [TaskQueued(task_id="a", priority=1)], NO_STREAM)
        assert ask(handle.stats)["appends"] == 1 and ask(handle.stats)["through_door"] == 0
    finally:
        ray.kill(handle)


def test_appends_from_many_threads_share_calls_and_each_gets_its_own_answer(store_url) -> None:  # type: ignore[no-untyped-def]
    url, handle = store_url
    client = StoreClient(handle)
    client.append("taken", [TaskQueued(task_id="x", priority=1)])
    outcomes: dict[int, object] = {}

    def worker(n: int) -> None:
        stream = "taken" if n % 10 == 0 else f"s{n}"
        try:
            outcomes[n] = client.append(stream, [TaskQueued(task_id=str(n), priority=1)], NO_STREAM)
        except ConcurrencyError as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = sorted(n for n, o in outcomes.items() if isinstance(o, ConcurrencyError))
    assert refused == list(range(0, 60, 10))  # exactly the appends to the taken stream
    with open_store(url) as s:
        assert s.head() == 1 + 54 and s.verify().ok
