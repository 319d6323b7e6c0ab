"""The health monitor's judgement, as a plain class: crashes, hangs, backoff, budget, retirement."""

from __future__ import annotations

from monitoring.health import HealthBook, HealthSettings

SETTINGS = HealthSettings(ping_every=1, ping_timeout=5, hang_after=10, restart_budget=3, budget_window=100,
                          backoff_base=2, backoff_max=8)


def test_a_busy_actor_without_progress_past_the_deadline_is_hung() -> None:
    book = HealthBook(SETTINGS)
    assert book.answered("agent:a", 100, busy=True, progress_at=0.0, now=0.0) == []
    assert book.answered("agent:a", 100, busy=True, progress_at=0.0, now=5.0) == []
    [hung] = book.answered("agent:a", 100, busy=True, progress_at=0.0, now=10.0)
    assert hung.kind == "hung" and book.decide("agent:a", 10.0) == "restart"


def test_progress_or_idleness_is_not_a_hang() -> None:
    book = HealthBook(SETTINGS)
    for t in range(0, 60, 5):
        assert book.answered("agent:a", 100, busy=True, progress_at=float(t), now=float(t)) == []
        assert book.answered("agent:b", 101, busy=False, progress_at=0.0, now=float(t)) == []
    assert book.decide("agent:a", 60.0) == book.decide("agent:b", 60.0) == "wait"


def test_a_silent_ping_and_a_dead_actor_are_restarted_and_the_new_process_is_seen() -> None:
    book = HealthBook(SETTINGS)
    book.answered("dispatcher", 200, busy=False, progress_at=None, now=0.0)
    [silent] = book.failed("dispatcher", "timeout", "no answer in 5 s", now=6.0)
    assert silent.kind == "hung" and book.decide("dispatcher", 6.0) == "restart"
    book.restarting("dispatcher", 6.0)
    assert book.failed("dispatcher", "dead", "killed", now=6.5) == []  # the restart under way
    [restarted] = book.answered("dispatcher", 201, busy=False, progress_at=None, now=8.0)
    assert (restarted.kind, restarted.pid, restarted.previous_pid) == ("restarted", 201, 200)
    assert "monitor" in restarted.detail and book.decide("dispatcher", 8.0) == "wait"


def test_ray_restarts_are_noticed_by_the_new_pid_and_count_against_the_budget() -> None:
    book = HealthBook(SETTINGS)
    book.answered("store", 1, busy=False, progress_at=None, now=0.0)
    assert book.failed("store", "unavailable", "restarting", now=1.0)[0].kind == "unavailable"
    [restarted] = book.answered("store", 2, busy=False, progress_at=None, now=3.0)
    assert "Ray" in restarted.detail and len(book.patients["store"].restarts) == 1


def test_restarts_back_off_and_past_the_budget_the_actor_is_retired() -> None:
    book = HealthBook(SETTINGS)
    now, decisions = 0.0, []
    while now < 60 and not book.patients.setdefault("projector", book.watch("projector")).retired:
        book.failed("projector", "dead", "constructor raised", now)
        verdict = book.decide("projector", now)
        decisions.append((now, verdict))
        if verdict == "restart":
            book.restarting("projector", now)
            book.patients["projector"].expected_restart = False  # it died again before answering
            book.patients["projector"].suspect = None
        elif verdict == "retire":
            finding = book.retiring("projector")
            assert finding.kind == "retired" and "over the budget of 3" in finding.detail
        now += 0.5
    restarts = [t for t, v in decisions if v == "restart"]
    assert restarts == [0.0, 2.0, 6.0]  # backoff 2 s, then 4 s
    assert decisions[-1][1] == "retire" and book.patients["projector"].retired


def test_old_restarts_leave_the_budget_window() -> None:
    book = HealthBook(SETTINGS)
    for t in (0.0, 10.0, 30.0):
        book.restarting("agent:a", t)
    book.failed("agent:a", "dead", "again", 40.0)
    book.patients["agent:a"].expected_restart = False
    book.patients["agent:a"].suspect = "dead"
    assert book.decide("agent:a", 40.0) == "retire"
    assert book.decide("agent:a", 140.0) == "restart"  # the first two fell out of the 100 s window
