"""Checks of the type index (events/commits.py) shared by the SQLite and PostgreSQL store tests."""

from __future__ import annotations

from collections.abc import Callable

from events import EventStore, open_store
from events.catalogue import AgentRegistered, TaskQueued
from events.commits import CommitTable

RARE = AgentRegistered.type_name


def fill(store: EventStore, commits: int = 300, ends: list[int] | None = None) -> list[int]:
    """Commits of three ``TaskQueued`` each, and every 50th also an ``AgentRegistered`` (mixed in one commit
    or alone); returns the rare events' positions, and adds to ``ends`` the last positions of their commits."""
    rare: list[int] = []
    ends = [] if ends is None else ends
    for i in range(commits):
        batch: list[object] = [TaskQueued(task_id=f"t{i}.{j}", priority=1) for j in range(3)]
        if i % 50 == 7:
            batch.insert(1, AgentRegistered(agent_id=f"a{i}", role="coder", capabilities=["code.generate"]))
            rare.append(store.head() + 2)
        last = store.append(f"s{i}", batch).positions[-1]  # type: ignore[arg-type]
        if i % 50 == 7:
            ends.append(last)
        if i % 50 == 31:
            rare.append(store.append(f"r{i}", [AgentRegistered(agent_id=f"b{i}", role="x", capabilities=[])])
                        .positions[0])
            ends.append(rare[-1])
    return rare


def rare_reads_touch_only_their_commits(url: str) -> None:
    """A read of a rare type fetches only the commits holding it, from any position, and finds all of them."""
    with open_store(url) as store:
        ends: list[int] = []
        rare = fill(store, ends=ends)
        recorder = store._recorder
        assert isinstance(recorder, CommitTable)
        fetched: list[int] = []
        query: Callable[..., list[tuple[object, ...]]] = recorder._query

        def counting(sql: str, params: object) -> list[tuple[object, ...]]:
            rows = query(sql, params)
            fetched.append(len(rows))
            return rows

        recorder._query = counting  # type: ignore[method-assign]
        proved = 0
        for start in [1, *rare, *(p + 1 for p in rare)]:
            fetched.clear()
            want = [p for p in rare if p >= start]
            assert [e.position for e in store.read_all(start, None, [RARE])] == want
            holding = [e for e in ends if e >= start]  # a commit holding a rare event before ``start`` is read too
            assert sum(fetched) == len(holding), f"from {start}: fetched {sum(fetched)} commits, not {len(holding)}"
            proved += 1
        fetched.clear()
        assert [e.position for e in store.read_all(1, 2, [RARE, TaskQueued.type_name])] == [1, 2]
        assert sum(fetched) <= 8  # one small first page, not the log
        assert proved == 2 * len(rare) + 1 and len(rare) == 12


def schema_1_log_upgrades_on_open(url: str, downgrade: Callable[[], None]) -> None:
    """A log laid out by schema 1 (no type index) opens, gains the index, and verifies hash for hash as before.

    ``downgrade`` turns the log at ``url`` back into schema 1: drops the index, sets the schema to 1.
    """
    with open_store(url) as store:
        rare = fill(store, 120)
        before = store.verify()
        rows = list(store.scan_rows())
    downgrade()
    for _ in range(2):  # the first open upgrades; the second finds it done
        with open_store(url) as store:
            assert store.verify() == before and before.ok
            assert list(store.scan_rows()) == rows
            assert [e.position for e in store.read_all(types=[RARE])] == rare
    with open_store(url) as store:
        added = store.append("late", [AgentRegistered(agent_id="late", role="x", capabilities=[])]).positions[0]
        assert [e.position for e in store.read_all(types=[RARE])] == [*rare, added]
        assert store.verify().ok
