"""The contract every event store backend must pass unchanged (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import collections
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC
from pathlib import Path

import msgspec
import pytest
from store_writer import kill_writer_repeatedly, write_batches

from events import ANY, NO_STREAM, AppendResult, EventStore, Metadata, NewEvent, merkle
from events.catalogue import AgentRegistered, TaskCompleted, TaskQueued, TaskSubmitted
from events.errors import (
    ConcurrencyError,
    EventTooLarge,
    IdempotencyConflict,
    InvalidAppend,
    InvalidPayload,
    InvalidStreamName,
    StoreClosed,
    UnknownEventType,
)
from events.registry import Event

WRITER = Path(__file__).with_name("store_writer.py")


def submitted(task: str, **kw: object) -> TaskSubmitted:
    return TaskSubmitted(task_id=task, capability="code.generate", **kw)  # type: ignore[arg-type]


# -- append and read -------------------------------------------------------------------------


def test_append_assigns_gap_free_positions_and_stream_versions(store: EventStore) -> None:
    a = store.append("task-a", [submitted("a"), TaskQueued(task_id="a", priority=2)])
    b = store.append("task-b", [submitted("b")])
    c = store.append("task-a", [TaskCompleted(task_id="a", agent_id="coder-1", attempt=1)])
    assert (a.positions, a.stream_version) == ((1, 2), 2)
    assert (b.positions, b.stream_version) == ((3,), 1)
    assert (c.positions, c.stream_version) == ((4,), 3)
    assert store.head() == 4
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4]
    assert [(e.position, e.stream_version) for e in store.read_stream("task-a")] == [(1, 1), (2, 2), (4, 3)]


def test_read_back_gives_the_envelope_and_the_typed_payload(store: EventStore) -> None:
    eid = uuid.uuid4()
    meta = Metadata(correlation_id="req-1", causation_id="cmd-9", actor="orchestrator", warrant_id="w-1",
                    extra={"trace": "abc"})
    payload = submitted("t1", priority=0, inputs={"path": "src/x.py", "n": [1, 2.5, None, True]}, depends_on=["t0"])
    before = time.time()
    store.append("task-t1", [NewEvent(payload=payload, event_id=eid, metadata=meta)])
    (event,) = store.read_stream("task-t1")
    assert event.payload == payload and type(event.payload) is TaskSubmitted
    assert event.metadata == meta
    assert event.event_id == eid
    assert (event.type, event.schema_version, event.stream, event.stream_version) == ("task.submitted", 1, "task-t1", 1)
    assert event.recorded_at.tzinfo is UTC and before - 1 <= event.recorded_at.timestamp() <= time.time() + 1
    assert len(event.hash) == 32


def test_read_stream_and_read_all_windows(store: EventStore) -> None:
    for i in range(10):
        store.append("s", [TaskQueued(task_id=f"t{i}", priority=i % 4)])
        store.append("other", [submitted(f"t{i}")])
    assert [e.stream_version for e in store.read_stream("s", from_version=4, limit=3)] == [4, 5, 6]
    assert store.read_stream("s", from_version=11) == []
    assert store.read_stream("nobody-here") == []
    assert [e.position for e in store.read_all(from_position=5, limit=4)] == [5, 6, 7, 8]
    assert store.read_all(from_position=21) == []
    queued = store.read_all(types=["task.queued"])
    assert [e.position for e in queued] == list(range(1, 21, 2))
    assert store.read_all(limit=0) == []


def test_recorded_at_never_goes_backwards(store: EventStore) -> None:
    for i in range(20):
        store.append(f"s{i % 3}", [submitted(f"t{i}")])
    times = [e.recorded_at for e in store.read_all()]
    assert times == sorted(times)


# -- optimistic concurrency --------------------------------------------------------------------


def test_expected_version_is_enforced_and_a_mismatch_writes_nothing(store: EventStore) -> None:
    store.append("s", [submitted("a")], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError, match="at version 1, but the append expected"):
        store.append("s", [submitted("b")], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError):
        store.append("s", [submitted("b")], expected_version=0)
    with pytest.raises(ConcurrencyError):
        store.append("s", [submitted("b")], expected_version=2)
    assert store.head() == 1
    assert store.append("s", [submitted("b")], expected_version=1).stream_version == 2
    assert store.append("s", [submitted("c")], expected_version=ANY).stream_version == 3
    assert store.append("new", [submitted("d")], expected_version=0).stream_version == 1
    assert store.head() == 4


def test_racing_writers_with_the_same_expected_version_exactly_one_wins(store: EventStore) -> None:
    store.append("contended", [submitted("seed")])
    wins, losses = [], []

    def writer(n: int) -> None:
        try:
            store.append("contended", [submitted(f"w{n}")], expected_version=1)
            wins.append(n)
        except ConcurrencyError:
            losses.append(n)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    assert store.head() == 2


# -- idempotency ---------------------------------------------------------------------------------


def test_a_retried_batch_returns_its_original_positions_and_writes_nothing(backend) -> None:  # type: ignore[no-untyped-def]
    store = backend.open()
    store.append("x", [submitted("x0")])
    batch = [NewEvent(payload=submitted(f"t{i}")) for i in range(3)]
    first = store.append("task", batch, expected_version=NO_STREAM)
    again = store.append("task", batch, expected_version=NO_STREAM)  # stale expectation: still a retry
    anyway = store.append("task", batch, expected_version=ANY)
    assert first.duplicate is False and first.positions == (2, 3, 4)
    assert again.duplicate and again.positions == first.positions and again.stream_version == 3
    assert anyway == again
    assert store.head() == 4
    if backend.durable:
        store.close()
        reopened = backend.open()
        assert reopened.append("task", batch, expected_version=NO_STREAM) == again
        assert reopened.head() == 4


def test_a_retried_subset_of_a_batch_is_also_a_retry(store: EventStore) -> None:
    batch = [NewEvent(payload=submitted(f"t{i}")) for i in range(4)]
    store.append("task", batch)
    result = store.append("task", batch[1:3])
    assert result.duplicate and result.positions == (2, 3) and result.stream_version == 3
    assert store.head() == 4


def test_a_batch_mixing_stored_and_new_ids_is_refused_whole(store: EventStore) -> None:
    old = NewEvent(payload=submitted("old"))
    store.append("task", [old])
    with pytest.raises(IdempotencyConflict, match=r"mixes 1 event id.* with 2 new"):
        store.append("task", [old, NewEvent(payload=submitted("n1")), NewEvent(payload=submitted("n2"))])
    assert store.head() == 1


def test_an_id_reused_for_different_content_is_refused(store: EventStore) -> None:
    eid = uuid.uuid4()
    store.append("task", [NewEvent(payload=submitted("a"), event_id=eid)])
    with pytest.raises(IdempotencyConflict, match="different content"):
        store.append("task", [NewEvent(payload=submitted("b"), event_id=eid)])
    with pytest.raises(IdempotencyConflict, match="different content"):
        store.append("elsewhere", [NewEvent(payload=submitted("a"), event_id=eid)])
    assert store.head() == 1


def test_a_batch_repeating_an_id_is_refused(store: EventStore) -> None:
    e = NewEvent(payload=submitted("a"))
    with pytest.raises(InvalidAppend, match="repeats an event id"):
        store.append("task", [e, e])
    assert store.head() == 0


# -- bad input: a typed error that names the problem, and nothing written -----------------------


class NotRegistered(Event, frozen=True):
    value: int = 1


@pytest.mark.parametrize(
    ("stream", "events", "expected", "error", "message"),
    [
        ("", [TaskQueued(task_id="a", priority=1)], ANY, InvalidStreamName, "stream name '' is not valid"),
        ("has space", [TaskQueued(task_id="a", priority=1)], ANY, InvalidStreamName, "not valid"),
        ("-leading", [TaskQueued(task_id="a", priority=1)], ANY, InvalidStreamName, "not valid"),
        ("x" * 201, [TaskQueued(task_id="a", priority=1)], ANY, InvalidStreamName, "1-200 characters"),
        ("s", [], ANY, InvalidAppend, "has no events"),
        ("s", [{"task_id": "a"}], ANY, InvalidAppend, "is a dict"),
        ("s", [TaskQueued(task_id="a", priority=1)], -1, InvalidAppend, "expected_version -1"),
        ("s", [TaskQueued(task_id="a", priority=1)], True, InvalidAppend, "expected_version True"),
        ("s", [TaskQueued(task_id="a", priority=1)], "1", InvalidAppend, "expected_version '1'"),
        ("s", [NotRegistered()], ANY, UnknownEventType, r"NotRegistered \(item 1\) is not a registered event type"),
        ("s", [TaskQueued(task_id="a", priority=7)], ANY, InvalidPayload, r"<= 3 - at `\$.priority`"),
        ("s", [TaskQueued(task_id="a", priority="high")], ANY, InvalidPayload, r"Expected `int`, got `str`"),  # type: ignore[arg-type]
        ("s", [TaskQueued(task_id="", priority=1)], ANY, InvalidPayload, r"\$.task_id"),
        ("s", [submitted("a", inputs={"f": object()})], ANY, InvalidPayload, "does not fit its schema"),
    ],
)
def test_bad_appends_raise_a_named_error_and_write_nothing(  # type: ignore[no-untyped-def]
    store: EventStore, stream, events, expected, error, message
) -> None:
    store.append("before", [TaskQueued(task_id="ok", priority=1)])
    with pytest.raises(error, match=message):
        store.append(stream, [TaskQueued(task_id="good", priority=1), *events] if events else events,
                     expected_version=expected)
    assert store.head() == 1


def test_an_event_over_the_size_limit_is_refused(backend) -> None:  # type: ignore[no-untyped-def]
    store = backend.open(max_event_bytes=2048)
    store.append("s", [submitted("fits", title="x" * 1500)])
    with pytest.raises(EventTooLarge, match=r"event 1 .* over the limit of 2,048 \(max_event_bytes\)"):
        store.append("s", [submitted("fits"), submitted("big", inputs={"blob": "y" * 4000})])
    assert store.head() == 1


def test_default_size_limit_is_one_mebibyte(store: EventStore) -> None:
    assert store.max_event_bytes == 1024 * 1024
    with pytest.raises(EventTooLarge):
        store.append("s", [submitted("big", inputs={"blob": "z" * (1024 * 1024)})])


def test_bad_read_arguments_are_refused(store: EventStore) -> None:
    with pytest.raises(InvalidAppend, match="from_position must be an integer >= 1"):
        store.read_all(from_position=0)
    with pytest.raises(InvalidAppend, match="limit"):
        store.read_all(limit=-1)
    with pytest.raises(InvalidStreamName):
        store.read_stream("bad name")
    with pytest.raises(UnknownEventType, match=re.escape("'task.nonsense' is not known")):
        store.read_all(types=["task.nonsense"])
    with pytest.raises(UnknownEventType):
        store.subscribe(types=["task.nonsense"])


def test_a_closed_store_refuses_work(backend) -> None:  # type: ignore[no-untyped-def]
    store = backend.open()
    store.append("s", [submitted("a")])
    store.close()
    with pytest.raises(StoreClosed):
        store.append("s", [submitted("b")])
    with pytest.raises(StoreClosed):
        store.read_all()


# -- subscriptions -------------------------------------------------------------------------------


def test_subscription_catches_up_then_follows_live(store: EventStore) -> None:
    for i in range(5):
        store.append("s", [submitted(f"t{i}")])
    received = []
    with store.subscribe(from_position=3) as sub:
        received += sub.poll(timeout=1)
        assert [e.position for e in received] == [3, 4, 5]
        assert sub.poll(timeout=0.05) == []

        def later() -> None:
            time.sleep(0.1)
            store.append("s", [submitted("t5"), submitted("t6")])

        threading.Thread(target=later).start()
        deadline = time.monotonic() + 5
        while len(received) < 5 and time.monotonic() < deadline:
            received += sub.poll(timeout=1)
    assert [e.position for e in received] == [3, 4, 5, 6, 7]


def test_subscription_iterates_until_closed(store: EventStore) -> None:
    store.append("s", [submitted("a"), submitted("b")])
    sub = store.subscribe()
    seen = []

    def consume() -> None:
        for event in sub:
            seen.append(event.position)

    t = threading.Thread(target=consume)
    t.start()
    store.append("s", [submitted("c")])
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sub.close()
    t.join(timeout=5)
    assert not t.is_alive() and seen == [1, 2, 3]


def test_subscription_with_a_type_filter_skips_others_without_missing_any(store: EventStore) -> None:
    with store.subscribe(types=["agent.registered"], batch_size=3) as sub:
        got = []
        for i in range(20):
            store.append("s", [submitted(f"t{i}")])
            if i % 3 == 0:
                agent = AgentRegistered(agent_id=f"a{i}", role="coder", capabilities=["code.generate"])
                store.append("agents", [agent])
            got += sub.poll(timeout=0)
        got += sub.poll(timeout=0.2)
    assert [e.payload.agent_id for e in got] == [f"a{i}" for i in range(0, 20, 3)]  # type: ignore[attr-defined]
    assert sub.position == store.head() + 1


# -- concurrency ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_writers_and_a_tailing_reader_lose_repeat_and_interleave_nothing(backend) -> None:  # type: ignore[no-untyped-def]
    writers, batches = 8, 25
    store = backend.open()
    seen: list = []
    stop = threading.Event()

    def tail() -> None:
        with store.subscribe(batch_size=64) as sub:
            while not stop.is_set() or sub.position <= store.head():
                seen.extend(sub.poll(timeout=0.05))

    reader = threading.Thread(target=tail)
    reader.start()
    if store.shared_across_processes:
        procs = [subprocess.Popen([sys.executable, str(WRITER), "batches", backend.url, str(w), str(batches), str(w)],
                                  stdout=subprocess.PIPE, text=True) for w in range(writers)]
        totals = [int(p.communicate(timeout=120)[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
    else:
        totals = [0] * writers

        def run(w: int) -> None:
            totals[w] = write_batches(store, w, batches, w)

        threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    stop.set()
    reader.join(timeout=30)
    total = sum(totals)
    assert store.head() == total
    assert [e.position for e in seen] == list(range(1, total + 1))  # none skipped, none repeated, in order
    batches_seen: dict[tuple[int, int], list[int]] = {}
    for e in seen:
        tag = e.payload.inputs  # type: ignore[attr-defined]
        batches_seen.setdefault((tag["w"], tag["b"]), []).append(e.position)
        assert tag["i"] == e.stream_version - 1
    assert len(batches_seen) == writers * batches
    for positions in batches_seen.values():
        assert positions == list(range(positions[0], positions[0] + len(positions)))  # contiguous: not interleaved
    assert store.verify().ok


# -- the ledger over every backend ---------------------------------------------------------------


def test_ledger_verifies_and_proves_over_any_backend(store: EventStore) -> None:
    for i in range(13):
        store.append(f"s{i % 4}", [submitted(f"t{i}")])
    report = store.verify()
    assert report.ok and report.checked == 13 and report.head == 13
    leaves = store.leaf_hashes()
    assert report.root == merkle.root(leaves) == store.root()
    for position in (1, 7, 13):
        proof = store.inclusion_proof(position)
        assert merkle.verify_inclusion(leaves[position - 1], position - 1, 13, proof, report.root)
    old_root = store.root(5)
    assert merkle.verify_consistency(5, 13, old_root, report.root, store.consistency_proof(5))
    hashes = [e.hash for e in store.read_all()]
    assert len(set(hashes)) == 13


def test_an_empty_store_verifies(store: EventStore) -> None:
    report = store.verify()
    assert report.ok and report.checked == 0 and report.root == merkle.EMPTY_ROOT


def test_payload_bytes_are_deterministic_for_equal_dicts(store: EventStore) -> None:
    a = submitted("a", inputs={"x": 1, "y": 2})
    b = submitted("a", inputs={"y": 2, "x": 1})
    eid = uuid.uuid4()
    store.append("s", [NewEvent(payload=a, event_id=eid)])
    assert store.append("s", [NewEvent(payload=b, event_id=eid)]).duplicate
    assert msgspec.json.encode(store.read_all()[0].payload) == msgspec.json.encode(a)


def test_reads_of_any_window_over_multi_event_batches_match_the_log(store: EventStore) -> None:
    rng = random.Random(11)
    for b in range(40):
        stream = f"s{rng.randint(0, 3)}"
        store.append(stream, [TaskQueued(task_id=f"t{b}.{i}", priority=rng.randint(0, 3)) if rng.random() < 0.5
                              else submitted(f"t{b}.{i}") for i in range(rng.randint(1, 30))])
    everything = store.read_all()
    head = store.head()
    assert [e.position for e in everything] == list(range(1, head + 1))
    for _ in range(60):
        start, limit = rng.randint(1, head + 2), rng.choice([None, 0, 1, 7, 50, 1000])
        types = rng.choice([None, ["task.queued"], ["task.submitted", "task.queued"]])
        want = [e for e in everything[start - 1:] if types is None or e.type in types]
        assert store.read_all(start, limit, types) == (want if limit is None else want[:limit])
        stream = f"s{rng.randint(0, 4)}"
        version = rng.randint(1, 40)
        in_stream = [e for e in everything if e.stream == stream and e.stream_version >= version]
        assert store.read_stream(stream, version, limit) == (in_stream if limit is None else in_stream[:limit])
    with store.subscribe(from_position=17, types=["task.queued"], batch_size=5) as sub:
        followed = []
        while batch := sub.poll(timeout=0):
            followed += batch
    assert followed == [e for e in everything[16:] if e.type == "task.queued"]


# -- group commits -------------------------------------------------------------------------------


def test_a_group_of_appends_is_decided_one_by_one_and_stored_together(store: EventStore) -> None:
    store.append("taken", [submitted("x")])
    retry = [NewEvent(payload=submitted("r"))]
    store.append("retried", retry)
    results = store.append_many([
        ("a", [submitted("a1"), submitted("a2")], NO_STREAM),
        ("taken", [submitted("late")], NO_STREAM),  # stale: refused, the rest goes on
        ("a", [submitted("a3")], 2),  # sees the first request of its own group
        ("retried", retry, ANY),  # a retry inside a group is still a retry
        ("b", [TaskQueued(task_id="q", priority=9)], ANY),  # invalid payload: refused before the store
        ("", [submitted("n")], ANY),  # invalid stream name
        ("b", [submitted("b1")], ANY),
    ])
    assert results[0] == AppendResult((3, 4), 2)
    assert isinstance(results[1], ConcurrencyError)
    assert results[2] == AppendResult((5,), 3)
    assert results[3] == AppendResult((2,), 1, duplicate=True)
    assert isinstance(results[4], InvalidPayload) and isinstance(results[5], InvalidStreamName)
    assert results[6] == AppendResult((6,), 1)
    assert store.head() == 6 and [e.stream for e in store.read_all()] == ["taken", "retried", "a", "a", "a", "b"]
    assert store.verify().ok


def test_a_group_of_only_refusals_writes_nothing(store: EventStore) -> None:
    store.append("s", [submitted("x")])
    results = store.append_many([("s", [submitted("y")], NO_STREAM), ("t", [], ANY)])
    assert isinstance(results[0], ConcurrencyError) and isinstance(results[1], InvalidAppend)
    assert store.head() == 1 and store.append_many([]) == []


# -- crashes (durable backends) ------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_batch_leaves_each_batch_wholly_present_or_absent(durable_backend) -> None:  # type: ignore[no-untyped-def]
    kill_writer_repeatedly(durable_backend.url, "forever", 400)
    s = durable_backend.open(create=False)
    events = s.read_all()
    report = s.verify()
    assert report.ok, report
    by_stream: dict[str, list[TaskSubmitted]] = collections.defaultdict(list)
    for e in events:
        by_stream[e.stream].append(e.payload)  # type: ignore[arg-type]
    assert len(by_stream) >= 5
    for stream, payloads in by_stream.items():
        assert [p.inputs["i"] for p in payloads] == list(range(400)), f"batch {stream} is partial"
    assert [e.position for e in events] == list(range(1, len(events) + 1))


@pytest.mark.slow
def test_sigkill_mid_group_commit_leaves_each_group_wholly_present_or_absent(durable_backend) -> None:  # type: ignore[no-untyped-def]
    kill_writer_repeatedly(durable_backend.url, "groups", 100)
    s = durable_backend.open(create=False)
    events = s.read_all()
    assert s.verify().ok
    per_group = collections.Counter(e.payload.inputs["g"] for e in events)  # type: ignore[attr-defined]
    assert len(per_group) >= 5
    assert set(per_group.values()) == {400}, "a group commit was torn"
