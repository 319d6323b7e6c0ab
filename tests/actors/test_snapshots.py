"""The snapshot contract (``actors.snapshots``) over a tiny process and an in-memory log: a snapshot only ever
saves time — a missing, altered, foreign or newer one falls back to the replay, never to a wrong state."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actors.follow import Follower, Process
from actors.snapshots import SnapshotInvalid, Snapshots, SnapshotSettings
from events import EventStore, RecordedEvent, open_store
from events.blobs import BlobStore
from events.catalogue import AlertRaised, SnapshotTaken
from events.envelope import ANY
from events.streams import snapshot as snapshot_stream


class Tally(Process):
    """Counts alerts and remembers the last one's message: a state whose replay is easy to check."""

    snapshot_schema = "tally"
    snapshot_version = 2

    def __init__(self) -> None:
        self.count, self.last = 0, ""
        self.alerted = 0

    @property
    def changed(self) -> int:
        return self.alerted

    def evolve(self, event: RecordedEvent) -> None:
        if isinstance(event.payload, AlertRaised):
            self.count, self.last = self.count + 1, event.payload.summary
            self.alerted = event.position

    def encode_state(self) -> bytes:
        return msgspec.msgpack.encode([self.position, self.count, self.last])

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        if version not in (1, 2):
            raise SnapshotInvalid(f"version {version}")
        try:
            at, count, last = msgspec.msgpack.decode(data, type=tuple[int, int, str])
        except msgspec.DecodeError as exc:
            raise SnapshotInvalid(str(exc)) from None
        self.position, self.count, self.last = at, count, last


def alerts(store: EventStore, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.append("alerts", [AlertRaised(key="k", source="test", summary=f"m{i}")])


def state(p: Tally) -> tuple[int, int, str]:
    return p.position, p.count, p.last


@pytest.fixture
def store() -> EventStore:
    return open_store("memory://")


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def replayed(store: EventStore) -> Tally:
    p = Tally()
    p.advance(store)
    return p


def test_recovery_from_a_snapshot_folds_only_the_tail_and_equals_a_replay(store: EventStore, blobs: BlobStore) -> None:
    alerts(store, 50)
    p = replayed(store)
    taken = Snapshots("tally", blobs).take(p, store)
    assert taken is not None and taken.position == 50
    alerts(store, 7, 50)
    fresh, snaps = Tally(), Snapshots("tally", blobs)
    recovery = snaps.recover(fresh, store)
    assert recovery.from_snapshot and recovery.snapshot_position == 50 and not recovery.fallback
    assert recovery.folded == 8  # the snapshot's own event and 7 alerts
    assert state(fresh) == state(replayed(store))


def test_without_snapshots_or_a_blob_store_recovery_is_a_replay_and_no_fallback(store: EventStore,
                                                                                blobs: BlobStore) -> None:
    alerts(store, 5)
    for snaps in (Snapshots("tally", blobs), Snapshots("tally", None)):
        p = Tally()
        r = snaps.recover(p, store)
        assert not r.from_snapshot and r.fallback == "" and r.folded == 5 and state(p) == state(replayed(store))


def test_an_altered_or_missing_blob_falls_back_to_a_replay_and_says_why(store: EventStore, blobs: BlobStore,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    alerts(store, 10)
    taken = Snapshots("tally", blobs).take(replayed(store), store)
    assert taken is not None
    alerts(store, 3, 10)
    blobs.path(taken.digest).write_bytes(b"not the state")
    p = Tally()
    r = Snapshots("tally", blobs).recover(p, store)
    assert not r.from_snapshot and "altered" in r.fallback and "replaying the log" in caplog.text
    assert state(p) == state(replayed(store))
    blobs.path(taken.digest).unlink()
    p = Tally()
    r = Snapshots("tally", blobs).recover(p, store)
    assert not r.from_snapshot and "missing" in r.fallback and state(p) == state(replayed(store))


def test_a_newer_foreign_or_impossible_snapshot_is_passed_over_for_an_older_valid_one(store: EventStore,
                                                                                    blobs: BlobStore) -> None:
    alerts(store, 10)
    good = Snapshots("tally", blobs).take(replayed(store), store)
    assert good is not None
    alerts(store, 4, 10)
    digest = blobs.put(b"whatever")
    stream = snapshot_stream("tally")
    for schema, version, position in (("tally", 3, 12), ("other", 1, 12), ("tally", 2, 10**9)):
        store.append(stream, [SnapshotTaken(actor="tally", position=position, schema=schema, version=version,
                                            digest=digest, size=8)], ANY)
    p = Tally()
    r = Snapshots("tally", blobs, SnapshotSettings(tries=4)).recover(p, store)
    assert r.snapshot_position == 10 and not r.fallback and state(p) == state(replayed(store))
    p = Tally()
    r = Snapshots("tally", blobs, SnapshotSettings(tries=3)).recover(p, store)  # only the three bad ones are tried
    assert not r.from_snapshot and state(p) == state(replayed(store))
    assert "newer release" in r.fallback and "schema is 'other'" in r.fallback and "past the log's head" in r.fallback


def test_the_newest_of_many_snapshots_is_found_and_used(store: EventStore, blobs: BlobStore) -> None:
    snaps = Snapshots("tally", blobs, SnapshotSettings(every_events=3, every_seconds=3600))
    p = Tally()
    follower = Follower(p, store, after_round=lambda: snaps.maybe_take(p, store))
    for i in range(40):
        alerts(store, 1, i)
        follower.step()
    assert snaps.taken == 13  # every 3 alerts (the snapshot's own event is not new work)
    fresh = Tally()
    r = Snapshots("tally", blobs).recover(fresh, store)
    assert r.snapshot_position == snaps.last_position and r.folded <= 3 and state(fresh) == state(replayed(store))


def test_time_calls_for_a_snapshot_only_when_something_new_was_folded(store: EventStore, blobs: BlobStore) -> None:
    now = [1000.0]
    snaps = Snapshots("tally", blobs, SnapshotSettings(every_events=10**6, every_seconds=60), clock=lambda: now[0])
    p = replayed(store)
    alerts(store, 1)
    p.advance(store)
    assert snaps.maybe_take(p, store) is None
    now[0] += 61
    assert snaps.maybe_take(p, store) is not None
    p.advance(store)  # folds the snapshot's own event
    now[0] += 61
    assert snaps.maybe_take(p, store) is None


def test_a_burst_of_work_is_snapshotted_once_it_goes_quiet_and_two_actors_never_snapshot_each_others_snapshots(
        store: EventStore, blobs: BlobStore) -> None:
    now = [1000.0]
    settings = SnapshotSettings(every_events=10**6, every_seconds=60, quiet_seconds=2)
    first, second = Snapshots("one", blobs, settings, clock=lambda: now[0]), Snapshots("two", blobs, settings,
                                                                                       clock=lambda: now[0])
    a, b = Tally(), Tally()
    alerts(store, 5)
    for p in (a, b):
        p.advance(store)
    assert first.maybe_take(a, store) is None and second.maybe_take(b, store) is None  # still busy
    now[0] += 2.5
    assert first.maybe_take(a, store) is not None and second.maybe_take(b, store) is not None  # quiet: once each
    head = store.head()
    for _ in range(10):  # each folds the other's snapshot event, time passes: nothing calls for another
        now[0] += 61
        for p in (a, b):
            p.advance(store)
        assert first.maybe_take(a, store) is None and second.maybe_take(b, store) is None
    assert store.head() == head


def test_a_snapshot_that_cannot_be_stored_is_counted_and_changes_nothing(store: EventStore, tmp_path: Path) -> None:
    alerts(store, 3)
    (tmp_path / "file").write_text("")
    snaps = Snapshots("tally", BlobStore(tmp_path / "file" / "blobs"))  # a path that cannot be a directory
    p = replayed(store)
    assert snaps.take(p, store) is None and snaps.failed == 1 and store.head() == 3


def test_a_hook_that_does_not_set_the_position_is_an_error_that_says_so(store: EventStore, blobs: BlobStore) -> None:
    class Careless(Tally):
        def restore_state(self, data: bytes, position: int, version: int) -> None:
            self.count = 1

    alerts(store, 3)
    Snapshots("tally", blobs).take(replayed(store), store)
    with pytest.raises(SnapshotInvalid, match="fix the hook"):
        Snapshots("tally", blobs).recover(Careless(), store)
