"""The council forgets a finished task's warrants: over random governance logs it decides exactly as a council that
keeps everything — the same approvals, votes, reviews, extensions and checkpoints, the same warrants issued (budgets
to the last bit) or refused, the same revocations — except that a warrant asked again for a finished, forgotten task
is refused; and its state stays the same size however long the log."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from governance_support import Council, make_council
from random_logs import Upto
from test_council_snapshots import ROLES, governance_log

from actors import council_snapshot
from actors.council_actor import CouncilProcess
from actors.snapshots import Snapshots
from events import NO_STREAM, EventStore, Intent, streams
from events.blobs import BlobStore
from events.catalogue import ActionAuthorized, ActionCompleted, Budget, TaskCompleted, WarrantRevoked
from governance import warrant
from governance.authority import Authority
from governance.errors import GovernanceError

REMEMBER = 25


def _plain(intents: list[Any]) -> list[tuple[str, object, object]]:
    return [(i.stream, msgspec.to_builtins(list(i.events)), i.expected) for i in intents]


def asked(process: CouncilProcess, store: EventStore, cut: int, task: str, agent: str, role: str,
          now: float) -> object:
    """What the council actor answers an agent asking for ``task``'s warrant, at position ``cut``: the warrant it
    holds, a new one (with its budget), or the refusal — a new warrant whose stream is already in the log is refused,
    as the actor's append at NO_STREAM is."""
    a = process.authority
    try:
        standing, wid = a.standing_warrant(task, agent, now)
        if standing is not None:
            return ("standing", msgspec.to_builtins(standing))
        grant = a.warrant_for(task_id=task, agent_id=agent, role=role, request_id="r-2", issuer="me", now=now,
                              warrant_id=wid)
    except GovernanceError as exc:
        return str(exc)
    if any(e.position <= cut for e in store.read_stream(streams.warrant(wid))):
        return "refused"
    return ("new", msgspec.to_builtins(grant))


@pytest.fixture(scope="module")
def finishing(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Council, set[str]]]:
    out = []
    for seed in range(3):
        council = make_council(tmp_path_factory.mktemp(f"forgetting-{seed}"))
        out.append((council, governance_log(council, 100 + seed, 360, finish=0.12)))
    return out


def test_a_council_that_forgets_finished_tasks_warrants_decides_as_one_that_keeps_them(
        finishing: list[tuple[Council, set[str]]]) -> None:
    compared = forgotten = refused = issued_budgets = 0
    for council, done in finishing:
        store = council.store
        keeps, forgets = CouncilProcess(council.key, 10.0, remember=None), CouncilProcess(council.key, 10.0, REMEMBER)
        rng = random.Random(7)
        tasks = sorted({t for e in store.read_all(1, None) if (t := getattr(e.payload, "task_id", None))})
        for cut in range(1, store.head() + 1, 9):
            view = Upto(store, cut)
            keeps.advance(view)
            forgets.advance(view)
            k, f = keeps.authority, forgets.authority
            forgotten = max(forgotten, len(k.warrants) - len(f.warrants))
            for later in (0.0, 3600.0, 9 * 24 * 3600.0):
                now = council.clock() + later
                assert _plain(list(forgets.decide(now))) == _plain(list(keeps.decide(now)))
                for task in rng.sample(tasks, min(6, len(tasks))):
                    for agent in ("a0", "a3"):
                        role = rng.choice(ROLES)
                        mine = asked(forgets, store, cut, task, agent, role, now)
                        theirs = asked(keeps, store, cut, task, agent, role, now)
                        compared += 1
                        if mine != theirs:  # only a finished task's forgotten warrant, and then refused
                            assert isinstance(mine, str) and task in done, (task, mine, theirs)
                            refused += 1
                        elif isinstance(mine, tuple) and mine[0] == "new":
                            issued_budgets += 1
            for wid, ledger in f.warrants.items():
                if ledger.issued is not None:
                    assert _plain(f.revocations(wid, "why", "me")) == _plain(k.revocations(wid, "why", "me"))
            assert f.retired or not set(k.warrants) - set(f.warrants)
        assert forgets.ledger.root() == keeps.ledger.root()
    assert compared > 1000 and issued_budgets > 100 and forgotten > 5 and refused > 0, (
        compared, issued_budgets, forgotten, refused)


def test_a_council_that_forgets_recovers_from_a_snapshot_and_the_tail_as_it_replays(
        finishing: list[tuple[Council, set[str]]], tmp_path: Path) -> None:
    council, _ = finishing[0]
    store = council.store
    for cut in (store.head() // 3, store.head() // 2, store.head() - 5):
        blobs = BlobStore(tmp_path / f"blobs-{cut}")
        at = CouncilProcess(council.key, 10.0, REMEMBER)
        at.advance(Upto(store, cut))
        assert at.authority.retired, "nothing forgotten yet: the test proves nothing"
        assert Snapshots("council", blobs).take(at, store) is not None
        recovered = CouncilProcess(council.key, 10.0, REMEMBER)
        assert Snapshots("council", blobs).recover(recovered, store).snapshot_position == cut
        again = CouncilProcess(council.key, 10.0, REMEMBER)
        again.advance(store)
        assert recovered.encode_state() == again.encode_state() and recovered.authority == again.authority


def _finished_tasks(council: Council, first: int, count: int) -> None:
    """``count`` tasks, each with a warrant, an action authorised and completed, and the task completed (before or
    after its warrant in the log)."""
    for i in range(first, first + count):
        task, agent, wid = f"t{i}", f"a{i % 4}", f"w-{i}"
        issued = warrant.issue(council.key, warrant.Warrant(
            warrant_id=wid, holder=agent, role="coder", actions=("file.write",), resources=("src/**",),
            budget=Budget(), not_before=0.0, expires_at=2e9, policy_hash="p" * 64,
            issuer=council.key.public.fingerprint, request_id=f"r{i % 3}", task_id=task))
        acted = Intent(streams.warrant(wid), [issued, ActionAuthorized(
            warrant_id=wid, agent_id=agent, action="file.write", target="src/a.py", key="k", digest="d" * 64,
            policy_hash="p" * 64, rule="r", cost=Budget(actions=1, money=0.1)),
            ActionCompleted(warrant_id=wid, key="k", ok=True, cost=Budget(money=0.1 + i / 1000))], NO_STREAM)
        done = Intent(streams.task(task), [TaskCompleted(task_id=task, agent_id=agent, attempt=1)], NO_STREAM)
        # Every other task's completion lands before its warrant (two writers' appends in one group commit).
        council.store.append_many([acted, done] if i % 2 else [done, acted])


def test_the_state_stays_the_same_size_however_long_the_log(tmp_path: Path) -> None:
    council = make_council(tmp_path)
    keeps, forgets = CouncilProcess(council.key, 10.0, remember=None), CouncilProcess(council.key, 10.0, 200)
    sizes, held = [], []
    for batch in range(6):
        _finished_tasks(council, batch * 400, 400)
        keeps.advance(council.store)
        forgets.advance(council.store)
        sizes.append(len(forgets.encode_state()))
        held.append(len(forgets.authority.warrants))
    assert max(held) <= 200 and len(keeps.authority.warrants) == 2400, held
    assert max(sizes) < 1.1 * min(sizes[1:]), sizes  # flat from the first forgetting on
    assert len(keeps.encode_state()) > 10 * sizes[-1]
    assert len(forgets.authority.retired) == 12  # 4 agents x 3 requests, whatever the number of warrants
    # What the forgotten warrants spent still counts, exactly: the budgets of new warrants are a keeping council's.
    for agent, request in (("a1", "r1"), ("a2", "r0"), ("a9", "r2")):
        kwargs: dict[str, Any] = {"task_id": "t-new", "agent_id": agent, "role": "coder", "request_id": request,
                                  "issuer": "me", "now": 1e9, "warrant_id": "w-new"}
        assert forgets.authority.warrant_for(**kwargs) == keeps.authority.warrant_for(**kwargs)


def test_a_finished_tasks_forgotten_warrant_is_refused_clearly_not_replaced(tmp_path: Path) -> None:
    council = make_council(tmp_path)
    _finished_tasks(council, 0, 3)
    forgets = CouncilProcess(council.key, 10.0, 2)
    forgets.advance(council.store)
    a = forgets.authority
    assert "w-0" not in a.warrants and "t0" not in a.by_task
    with pytest.raises(GovernanceError, match="none was issued, or its task finished and it was forgotten"):
        a.revocations("w-0", "too late", "me")
    council.store.append(streams.warrant("w-0"), [WarrantRevoked(warrant_id="w-0", cause_id="w-0", reason="late",
                                                                 revoked_by="me")])
    forgets.advance(council.store)
    assert "w-0" not in a.warrants  # an event on a forgotten warrant's stream brings back no part of it
    with pytest.raises(GovernanceError, match="at least 1"):
        Authority(remember=0)


def test_a_snapshot_of_a_council_that_remembers_for_another_length_is_replayed_instead(tmp_path: Path) -> None:
    council = make_council(tmp_path)
    _finished_tasks(council, 0, 20)
    blobs = BlobStore(tmp_path / "blobs")
    taken = CouncilProcess(council.key, 10.0, 5)
    taken.advance(council.store)
    assert Snapshots("council", blobs).take(taken, council.store) is not None
    other = CouncilProcess(council.key, 10.0, 50)
    recovery = Snapshots("council", blobs).recover(other, council.store)
    assert not recovery.from_snapshot and "keeps them for 50" in recovery.fallback, recovery
    replayed = CouncilProcess(council.key, 10.0, 50)
    replayed.advance(council.store)
    assert other.encode_state() == replayed.encode_state() != taken.encode_state()
    snap = msgspec.msgpack.decode(taken.encode_state(), type=council_snapshot.CouncilSnapshot)
    zero = msgspec.msgpack.encode(msgspec.structs.replace(snap, authority=msgspec.structs.replace(snap.authority,
                                                                                                  remember=0)))
    with pytest.raises(council_snapshot.SnapshotInvalid, match="at least 1"):
        council_snapshot.decode(zero, taken.position, council_snapshot.VERSION)
