"""The health monitor's judgement, no Ray: crashes, hangs, what is recorded before anything is restarted, backoff,
the restart budget charged from the log, and retirement."""

from __future__ import annotations

import time

from actors.follow import Follower
from events import EventStore, open_store
from monitoring.health import HealthBook, HealthMonitor, HealthSettings

SETTINGS = HealthSettings(ping_every=1, ping_timeout=5, hang_after=10, restart_budget=3, budget_window=100,
                          backoff_base=2, backoff_max=8)


def monitor(*names: str) -> tuple[HealthMonitor, Follower, EventStore]:
    log = open_store("memory://")
    process = HealthMonitor(names, SETTINGS)
    return process, Follower(process, log), log


def test_a_busy_actor_without_progress_past_the_deadline_is_hung() -> None:
    book = HealthBook(SETTINGS)
    assert book.answered("agent:a", 100, busy=True, progress_at=0.0, now=0.0) == []
    assert book.answered("agent:a", 100, busy=True, progress_at=0.0, now=5.0) == []
    [hung] = book.answered("agent:a", 100, busy=True, progress_at=0.0, now=10.0)
    assert hung.kind == "hung" and book.pending == [hung]


def test_progress_or_idleness_is_not_a_hang() -> None:
    book = HealthBook(SETTINGS)
    for t in range(0, 60, 5):
        assert book.answered("agent:a", 100, busy=True, progress_at=float(t), now=float(t)) == []
        assert book.answered("agent:b", 101, busy=False, progress_at=0.0, now=float(t)) == []
    assert book.pending == [] and book.decide("agent:a", 60.0) == book.decide("agent:b", 60.0) == "wait"


def test_a_failure_is_recorded_before_the_actor_is_restarted() -> None:
    process, follower, log = monitor("dispatcher")
    book = process.book
    book.answered("dispatcher", 200, busy=False, progress_at=None, now=0.0)
    [silent] = book.failed("dispatcher", "timeout", "no answer in 5 s", now=6.0)
    assert silent.kind == "hung" and book.decide("dispatcher", 6.0) == "wait"  # not in the log yet
    assert follower.step(6.0) == (1, 0)
    [recorded] = [e.payload for e in log.read_stream("actor-dispatcher")]
    assert (recorded.problem, recorded.pid) == ("hung", 200)
    follower.catch_up()
    assert book.pending == [] and len(book.patients["dispatcher"].failures) == 1
    assert book.decide("dispatcher", 6.0) == "restart"
    book.restarting("dispatcher", 6.0)
    assert book.failed("dispatcher", "dead", "killed", now=6.5) == []  # the restart under way
    [restarted] = book.answered("dispatcher", 201, busy=False, progress_at=None, now=8.0)
    assert (restarted.kind, restarted.pid, restarted.previous_pid, restarted.by) == ("restarted", 201, 200, "monitor")
    assert follower.step(8.0) == (1, 0)
    follower.catch_up()
    assert len(book.patients["dispatcher"].failures) == 1  # a restart it made is not a new failure


def test_ray_restarts_are_seen_by_the_new_pid_and_charged_to_the_budget_once_recorded() -> None:
    process, follower, log = monitor("store")
    book = process.book
    book.answered("store", 1, busy=False, progress_at=None, now=0.0)
    assert book.failed("store", "unavailable", "restarting", now=1.0)[0].kind == "unavailable"
    assert book.pending == []  # Ray is at it: nothing to record
    [restarted] = book.answered("store", 2, busy=False, progress_at=None, now=3.0)
    assert restarted.by == "ray" and book.patients["store"].failures == []
    follower.step(3.0)
    follower.catch_up()
    assert len(book.patients["store"].failures) == 1
    assert [e.payload.by for e in log.read_stream("actor-store")] == ["ray"]
    book.failed("store", "dead", "killed", now=4.0)  # found dead: restarted by the monitor, then by Ray again
    follower.step(4.0)
    follower.catch_up()
    book.restarting("store", 4.0)
    book.answered("store", 3, busy=False, progress_at=None, now=5.0)
    book.answered("store", 4, busy=False, progress_at=None, now=6.0)
    follower.step(6.0)
    restarted = [e.payload for e in log.read_stream("actor-store") if e.type == "actor.restarted"]
    assert [(r.by, r.restarts) for r in restarted] == [("ray", 1), ("monitor", 2), ("ray", 3)]  # restarts, counted


def test_restarts_back_off_and_past_the_budget_the_actor_is_retired_with_an_alert() -> None:
    process, follower, log = monitor("projector")
    book = process.book
    start = time.time()  # the log stamps the failures with the real clock; the monitor's clock runs from here
    now, restarts = start, []
    while now < start + 60 and not book.patients["projector"].retired:
        if book.patients["projector"].suspect is None:
            book.failed("projector", "dead", "constructor raised", now)
        follower.step(now)
        follower.catch_up()
        if book.decide("projector", now) == "restart":
            restarts.append(now)
            book.restarting("projector", now)
            book.patients["projector"].expected_restart = False  # it died again before answering
        now += 0.5
    assert [t - start for t in restarts] == [0.0, 2.0, 6.0]  # the first at once, then backoff 2 s, then 4 s
    assert book.patients["projector"].retired
    retired = [e.payload for e in log.read_stream("actor-projector") if e.type == "actor.retired"]
    assert len(retired) == 1 and "4 failures in 100 s, over the restart budget of 3" in retired[0].reason
    [alert] = [e.payload for e in log.read_stream("alerts")]
    assert alert.severity == "critical" and "projector" in alert.summary


def test_a_restarted_monitor_charges_the_same_budget_from_the_log() -> None:
    process, follower, log = monitor("agent:a")
    start = time.time()
    for t in (start, start + 10, start + 30, start + 40):
        process.book.failed("agent:a", "dead", "again", t)
        follower.step(t)
        follower.catch_up()
        process.book.restarting("agent:a", t)
        process.book.patients["agent:a"].expected_restart = False
    fresh = HealthMonitor(["agent:a"], SETTINGS)
    Follower(fresh, log).catch_up()
    failures = fresh.book.patients["agent:a"].failures
    assert len(failures) == 4 and failures == process.book.patients["agent:a"].failures
    fresh.book.patients["agent:a"].suspect = "dead"
    assert fresh.book.decide("agent:a", start + 40) == "retire"
    assert fresh.book.decide("agent:a", failures[-1] + 100) == "restart"  # a window after the last, none counts


def test_failures_past_the_budget_window_are_dropped_and_the_window_is_counted_once_a_round() -> None:
    book = HealthBook(SETTINGS)
    for n in range(30):  # a failure every 50 s
        book.charge("agent:a", 50.0 * n)
    assert len(book.recent("agent:a", 50.0 * 29)) == 2  # the budget window is 100 s: two count
    assert len(book.patients["agent:a"].failures) == 2  # and the rest will never count again: dropped
    book.patients["agent:a"].suspect = "dead"
    assert book.decide("agent:a", 50.0 * 29) == "restart"
    round_ = 50.0 * 29 + 1
    assert book.recent("agent:a", round_) is book.recent("agent:a", round_)  # sense and decide share one count
    book.charge("agent:a", round_)
    assert len(book.recent("agent:a", round_)) == 3  # a failure folded meanwhile is counted
