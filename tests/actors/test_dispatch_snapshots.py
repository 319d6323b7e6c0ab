"""The dispatcher's snapshots over random logs: recovery from a snapshot plus the tail is the full replay's state,
a bad snapshot falls back to the replay, and forgetting finished tasks changes no decision."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import msgspec
import pytest
from random_logs import Upto, write_random_log
from snapshot_fallbacks import FALLBACKS, SnapshottingActor, falls_back

from actors.dispatch import Dispatch, DispatchSettings, DispatchState
from actors.dispatch.process import status_in
from actors.snapshots import Snapshots
from events import EventStore, open_store
from events.blobs import BlobStore
from events.catalogue import StrategyChanged, TaskStatus
from events.streams import STRATEGIES

SETTINGS = DispatchSettings(lease=60, heartbeat_timeout=15, backoff_base=2, ageing=600)


def random_log(seed: int, tasks: int = 150) -> EventStore:
    store = open_store("memory://")
    write_random_log(store, tasks=tasks, agents=6, requests=8, seed=seed)
    if seed % 3 == 0:  # a lease strategy: it changes the settings a snapshot must bring back
        store.append(STRATEGIES, [StrategyChanged(strategy_id=f"s{seed}", kind="lease", subject="code.generate",
                                                  value="120", reason="tasks outlive their lease")])
    return store


def replayed(store: EventStore, forget: bool = True) -> Dispatch:
    d = Dispatch(SETTINGS, started_at=0.0)
    d.state = DispatchState(forget=forget)
    d.advance(store)
    return d


def decisions(d: Dispatch, now: float) -> list[tuple[str, list[bytes], object]]:
    """What ``d`` decides at ``now``, lease ids numbered from 1 (so two dispatchers' decisions compare)."""
    numbers = itertools.count(1)
    d.new_lease_id = lambda: f"lease-{next(numbers)}"
    return [(i.stream, [msgspec.json.encode(e) for e in i.events], i.expected) for i in d.decide(now)]


def test_recovery_from_a_snapshot_and_the_tail_is_the_full_replay_over_random_logs(tmp_path: Path) -> None:
    proved = 0
    for seed in range(12):
        store = random_log(seed)
        head = store.head()
        blobs = BlobStore(tmp_path / f"blobs-{seed}")
        # Every other log drops finished tasks' records 150 positions on, across the snapshot, and asks the log.
        settings = SETTINGS.model_copy(update={"remember_finished": 150}) if seed % 2 else SETTINGS
        for cut in (1, head // 3, head // 2, head - 5, head):
            at = Dispatch(settings, started_at=0.0, lookup=status_in(store))
            at.state.compact_after = 10 if seed % 2 else 1000  # and compacts its queues often
            at.advance(Upto(store, cut))
            assert Snapshots("dispatcher", blobs).take(at, store) is not None
            recovered = Dispatch(settings, started_at=0.0, lookup=status_in(store))
            recovery = Snapshots("dispatcher", blobs).recover(recovered, store)
            assert recovery.snapshot_position == cut and not recovery.fallback
            full = Dispatch(settings, started_at=0.0, lookup=status_in(store))
            full.state.compact_after = at.state.compact_after
            full.advance(store)
            assert recovered.encode_state() == full.encode_state()
            assert recovered.settings == full.settings
            now = time.time()
            assert decisions(recovered, now) == decisions(full, now)
            proved += 1
    assert proved == 60


@pytest.mark.parametrize("case", FALLBACKS)
def test_a_snapshot_that_cannot_be_believed_falls_back_to_the_replay(case: str, tmp_path: Path) -> None:
    falls_back(SnapshottingActor("dispatcher", "dispatcher", random_log(4), lambda: Dispatch(SETTINGS, started_at=0.0)),
               case, tmp_path)


def test_forgetting_finished_tasks_changes_no_decision_over_random_logs() -> None:
    """At many points of random logs, a dispatcher that forgets finished tasks, one that also drops their records 60
    positions later (and asks the log about them), and one that keeps everything decide the same (the same intents
    in the same order) and answer heartbeats the same (the one that dropped a record: where it still has it)."""
    proved = decided = forgot = looked_up = 0
    for seed in range(10):
        store = random_log(100 + seed, tasks=120)
        head = store.head()
        asked = status_in(store)

        def counted(task_id: str, position: int) -> TaskStatus | None:
            nonlocal looked_up
            looked_up += 1
            return asked(task_id, position)  # noqa: B023  # called only within this iteration

        forgetting, keeping = Dispatch(SETTINGS, started_at=0.0), Dispatch(SETTINGS, started_at=0.0)
        keeping.state = DispatchState(forget=False)
        dropping = Dispatch(SETTINGS.model_copy(update={"remember_finished": 60}), started_at=0.0, lookup=counted)
        dropping.state.compact_after = 5  # and compacts its queues often
        agents = [f"ag{i}" for i in range(6)]
        for cut in range(1, head + 1, 7):
            view = Upto(store, cut)
            for d in (forgetting, keeping, dropping):
                d.advance(view)
            now = time.time() + (cut % 5) * 30  # some rounds late enough for backoffs and leases to fall due
            theirs = decisions(keeping, now)
            assert decisions(forgetting, now) == theirs, f"seed {100 + seed}, position {cut}"
            assert decisions(dropping, now) == theirs, f"seed {100 + seed}, position {cut}"
            for task_id in keeping.state.tasks:
                known = task_id in dropping.state.tasks or task_id in dropping.state.finished
                for attempt, agent in itertools.product((1, 2, 3), agents):
                    answer = keeping.over(task_id, attempt, agent)
                    assert forgetting.over(task_id, attempt, agent) == answer
                    assert not known or dropping.over(task_id, attempt, agent) == answer
                    proved += 1
            decided += len(theirs)
            proved += 1
        forgot += len(forgetting.state.finished)
        final = {t.task_id for t in keeping.state.tasks.values() if t.status in (TaskStatus.COMPLETED,
                                                                                  TaskStatus.CANCELLED)}
        assert final == set(forgetting.state.finished) and not final & set(forgetting.state.tasks)
        assert len(dropping.state.finished) < len(forgetting.state.finished)
    print(f"forgetting: {proved} decisions and heartbeat answers proved equal, {decided} intents, {forgot} forgotten, "
          f"{looked_up} statuses asked of the log")
    assert proved > 10_000 and decided > 100 and forgot > 500 and looked_up > 100, (proved, decided, forgot, looked_up)


def test_the_state_stays_the_size_of_the_work_in_flight() -> None:
    store = open_store("memory://")
    write_random_log(store, tasks=400, agents=6, requests=8, seed=7, finish=True)
    d = replayed(store)
    assert len(d.state.tasks) == sum(1 for t in d.state.tasks.values() if t.status not in (TaskStatus.COMPLETED,
                                                                                            TaskStatus.CANCELLED))
    assert len(d.state.tasks) < 150 < len(d.state.finished)
    assert len(d.encode_state()) < len(replayed(store, forget=False).encode_state()) / 2


