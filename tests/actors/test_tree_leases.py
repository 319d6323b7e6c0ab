"""The depot's leases on requests' trees: one holder at a time across nodes, lapsing when a holder falls silent."""

from __future__ import annotations

from actors.depot import TreeLeases


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_holder_at_a_time_and_the_holder_takes_it_again() -> None:
    clock = Clock()
    leases = TreeLeases(clock)
    assert leases.take("r-1", "node-a/1", ttl=30)
    assert not leases.take("r-1", "node-b/2", ttl=30)
    assert leases.take("r-2", "node-b/2", ttl=30)  # another request's tree is another lease
    clock.now += 20
    assert leases.take("r-1", "node-a/1", ttl=30)  # renewed: it lasts 30 s from now
    clock.now += 20
    assert not leases.take("r-1", "node-b/2", ttl=30)
    assert leases.holder("r-1") == "node-a/1"


def test_a_lease_its_holder_stops_renewing_lapses_and_is_taken() -> None:
    clock = Clock()
    leases = TreeLeases(clock)
    assert leases.take("r-1", "lost-node/1", ttl=30)
    clock.now += 29.9
    assert not leases.take("r-1", "node-b/2", ttl=30)
    clock.now += 0.2
    assert leases.holder("r-1") is None
    assert leases.take("r-1", "node-b/2", ttl=30)
    assert not leases.take("r-1", "lost-node/1", ttl=30)  # the silent holder does not get it back


def test_only_the_holder_gives_a_lease_back() -> None:
    leases = TreeLeases(Clock())
    assert leases.take("r-1", "node-a/1", ttl=30)
    leases.give_back("r-1", "node-b/2")
    assert leases.holder("r-1") == "node-a/1"
    leases.give_back("r-1", "node-a/1")
    leases.give_back("r-1", "node-a/1")  # twice: safe to repeat
    assert leases.holder("r-1") is None
    assert leases.take("r-1", "node-b/2", ttl=30)


def test_lapsed_leases_are_forgotten() -> None:
    clock = Clock()
    leases = TreeLeases(clock)
    for i in range(100):
        leases.take(f"r-{i}", "node-a/1", ttl=1)
    clock.now += 2
    leases.take("r-new", "node-a/1", ttl=1)
    assert len(leases._held) == 1
