"""The council's snapshots over random governance logs: recovery from a snapshot plus the tail is the full replay's
fold, byte for byte, and decides the same — the same approvals, votes, reviews and extensions, the same warrants
issued or refused, the same Merkle root and signed checkpoint — without hashing the log again; a snapshot that cannot
be believed falls back to the replay."""

from __future__ import annotations

import contextlib
import hashlib
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from governance_support import Council, make_council
from random_logs import Upto
from snapshot_fallbacks import FALLBACKS, SnapshottingActor, falls_back

from actors import council_snapshot
from actors.council_actor import CouncilProcess
from actors.snapshots import Snapshots, SnapshotSettings
from events import ANY, EventStore, streams
from events.blobs import BlobStore
from events.catalogue import AlertRaised, ReviewAnswered, SnapshotTaken, TaskCompleted, TaskSubmitted
from events.errors import ConcurrencyError
from events.merkle import CompactRange
from events.streams import snapshot as snapshot_stream
from governance import approvals, gate, reviews, votes, warrant
from governance.errors import GovernanceError
from governance.review_rules import ReviewsTable

ROLES = ("coder", "deployer", "builder", "tester")
APPROVERS = ("alice", "bob", "carol")


def _append(store: EventStore, stream: str, events: list[Any], expected: Any = ANY) -> None:
    """Append, unless the stream moved since the decision (then another decision stands)."""
    with contextlib.suppress(ConcurrencyError):
        store.append(stream, events, expected)


def governance_log(council: Council, seed: int, steps: int, finish: float = 0.0) -> set[str]:
    """Append ``steps`` random governance moves to ``council``'s log: warrants issued and revoked, actions authorised,
    completed and denied, deploys asking approvals and votes and their signatures, budget votes, reviews and their
    answers, the council's decisions and checkpoints, and the log's other traffic; with ``finish``, that share of
    steps also completes a task with warrants (after which, as in the system, nothing acts under them and no warrant
    is asked for it: another task takes its place). Return the tasks completed."""
    rng = random.Random(seed)
    store, clock = council.store, council.clock
    process = CouncilProcess(council.key, 10.0, remember=None)
    issued: list[tuple[str, str, str]] = []  # (warrant id, agent, role)
    task_of: dict[str, str] = {}  # warrant id → its task
    names: dict[int, str] = {}  # a task slot → the task in it now (t<slot> until one finishes)
    done: set[str] = set()
    for step in range(steps):
        a = council.fold()
        process.advance(store)
        if finish and issued and rng.random() < finish:
            task = task_of[rng.choice(issued)[0]]
            store.append(streams.task(task), [TaskCompleted(task_id=task, agent_id="a0", attempt=1)])
            issued = [i for i in issued if task_of[i[0]] != task]
            done.add(task)
            slot = int(task[1:].split("-")[0])
            names[slot] = f"t{slot}-{step}"
            continue
        move = rng.random()
        clock.now += rng.choice((0.0, 1.0, 30.0, 600.0, 4000.0))
        if move < 0.2 or not issued:
            slot, agent = rng.randrange(60), f"a{rng.randrange(5)}"
            task = names.get(slot, f"t{slot}")
            role = rng.choice((*ROLES, "deployer", "deployer"))
            request = rng.choice((None, "r-1", "r-2"))
            try:
                standing, wid = a.standing_warrant(task, agent, clock())
                if standing is None:
                    grant = a.warrant_for(task_id=task, agent_id=agent, role=role, request_id=request,
                                          issuer=council.key.public.fingerprint, now=clock(), warrant_id=wid)
                    store.append(streams.warrant(wid), [warrant.issue(council.key, grant)])
                    issued.append((wid, agent, role))
                    task_of[wid] = task
            except GovernanceError:
                pass
        elif move < 0.4:
            wid, agent, role = rng.choice(issued)
            keeper = council.gatekeeper(agent)
            if role == "deployer":
                env = rng.choice(("staging", "production", "production", "canary"))
                request = gate.ActionRequest(agent_id=agent, action="deploy", target=env, resource="dist/app.tar",
                                             environment=env, key=f"k{step}",
                                             artifacts={"dist/app.tar": hashlib.sha256(b"v1").hexdigest()})
            else:
                path = rng.choice(("src/a.py", "tests/t.py", "secrets/x", "docs/y.md"))
                request = gate.ActionRequest(agent_id=agent, action="file.write", target=path, resource=path,
                                             key=f"k{step % 7}", arguments={"n": step})
            verdict = keeper.authorize(request, wid)
            if verdict.outcome == "authorized" and rng.random() < 0.8:
                keeper.completed(wid, request.key, ok=rng.random() < 0.9)
        elif move < 0.55:
            pending = [(aid, ledger) for aid, ledger in a.approvals.items() if ledger.open]
            open_votes = [(vid, v) for vid, v in a.votes.items() if v.decided is None and v.proposed is not None]
            if pending and (rng.random() < 0.5 or not open_votes):
                aid, ledger = rng.choice(pending)
                assert ledger.requested is not None
                unsigned = [n for n in APPROVERS if council.keyring.public(n).fingerprint not in
                            (*ledger.approvals, *ledger.rejections)] or list(APPROVERS)
                signer = council.keyring.signer(rng.choice(unsigned))
                event = (approvals.sign_approval(signer, ledger.requested) if rng.random() < 0.6 else
                         approvals.sign_rejection(signer, ledger.requested, "not now"))
                _append(store, streams.approval(aid), [event])
            elif open_votes:
                vid, vote = rng.choice(open_votes)
                assert vote.proposed is not None
                ballot = votes.cast(council.keyring.signer(rng.choice(APPROVERS)), vote.proposed,
                                    rng.choice(vote.proposed.options))
                _append(store, streams.vote(vid), [ballot])
        elif move < 0.62:
            vid = f"bv-{step}"
            proposal = votes.propose(vote_id=vid, subject="budget", kind="budget.allocate", options=["r-1", "r-2"],
                                     quorum=2, deadline=clock() + 3600, voters=a.policy.approvers, proposer="x",
                                     payload={"r-1": "r-1:actions=3", "r-2": f"r-2:actions={step % 9 + 1}"})
            store.append(streams.vote(vid), [proposal])
        elif move < 0.7:
            rid = f"rv-{step}"
            table = ReviewsTable(reviewers=("role:reviewer", "person:alice"), needed=rng.choice((1, 2)),
                                 deadline=rng.choice((60.0, 7200.0)), escalate_to=rng.choice((None, "person:bob")))
            asked = reviews.request(review_id=rid, task_id=f"t{step}", request_id="r-1", requester="a1",
                                    artefact=reviews.artefact(["src/a.py"], f"diff {step}"), table=table,
                                    pinned=a.policy.approvers, now=clock())
            store.append(streams.review(rid), [asked])
        elif move < 0.76:
            open_reviews = [(rid, r) for rid, r in a.reviews.reviews.items() if r.open and r.requested is not None]
            if open_reviews:
                rid, ledger = rng.choice(open_reviews)
                assert ledger.requested is not None
                verdict_ = rng.choice(("approve", "changes", "comment"))
                if rng.random() < 0.5:
                    answer = ReviewAnswered(review_id=rid, reviewer="role:reviewer", by="a3", verdict=verdict_,
                                            answers=["fine"])
                else:
                    who = rng.choice(("alice", "bob"))
                    answer = reviews.sign_answer(council.keyring.signer(who), ledger.requested, f"person:{who}",
                                                 verdict_, ["looks right"], by=who)
                store.append(streams.review(rid), [answer])
        elif move < 0.8 and issued:
            wid = rng.choice(issued)[0]
            for intent in a.revocations(wid, "random revocation", "test"):
                store.append(intent.stream, list(intent.events), intent.expected)
        elif move < 0.9:
            for intent in process.decide(clock()):  # the council's own decisions, checkpoints included
                _append(store, intent.stream, list(intent.events), intent.expected)
        else:
            noise = rng.choice((
                (streams.task(f"n{step}"), TaskSubmitted(task_id=f"n{step}", capability="sleep")),
                (streams.ALERTS, AlertRaised(key=f"x{step}", source="test", summary="noise")),
                (snapshot_stream("dispatcher"), SnapshotTaken(actor="dispatcher", position=store.head(),
                                                              schema="dispatch", version=3, digest="0" * 64,
                                                              size=1))))
            store.append(noise[0], [noise[1]])
    return done


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> list[Council]:
    out = []
    for seed in range(4):
        council = make_council(tmp_path_factory.mktemp(f"council-{seed}"))
        governance_log(council, seed, 220)
        out.append(council)
    return out


def replayed(council: Council) -> CouncilProcess:
    process = CouncilProcess(council.key, 10.0)
    process.advance(council.store)
    return process


def _plain(intents: list[Any]) -> list[tuple[str, object, object]]:
    return [(i.stream, msgspec.to_builtins(list(i.events)), i.expected) for i in intents]


def judged(process: CouncilProcess, council: Council) -> list[object]:
    """Everything the council would decide from ``process``'s fold, at a few times: its decisions, a checkpoint, the
    warrant each of many (task, agent, role) would get or why none, and each issued warrant's standing."""
    out: list[object] = []
    a = process.authority
    for later in (0.0, 3600.0, 9 * 24 * 3600.0):
        now = council.clock() + later
        out.append(_plain(list(process.decide(now))))
        for task in range(0, 60, 7):
            for agent in range(5):
                for role in ROLES:
                    tid, aid = f"t{task}", f"a{agent}"
                    try:
                        standing, wid = a.standing_warrant(tid, aid, now)
                        grant = a.warrant_for(task_id=tid, agent_id=aid, role=role, request_id="r-2", issuer="me",
                                              now=now, warrant_id=wid)
                        out.append((bool(standing), msgspec.to_builtins(grant)))
                    except GovernanceError as exc:
                        out.append(str(exc))
    out.append(process.ledger.root())
    return out


def test_recovery_from_a_snapshot_and_the_tail_is_the_full_replay_over_random_governance_logs(
        logs: list[Council], tmp_path: Path) -> None:
    proved = decided = 0
    kinds: set[str] = set()
    for n, council in enumerate(logs):
        store = council.store
        head = store.head()
        full = replayed(council)
        assert full.ledger.root() == store.root(head)  # the fold's frontier is the log's own Merkle tree
        kinds |= {e.type for e in store.read_all(1, None)}
        for cut in (1, head // 4, head // 2, head - 3, head):
            blobs = BlobStore(tmp_path / f"blobs-{n}-{cut}")
            at = CouncilProcess(council.key, 10.0)
            at.advance(Upto(store, cut))
            assert Snapshots("council", blobs).take(at, store) is not None
            recovered = CouncilProcess(council.key, 10.0)
            recovery = Snapshots("council", blobs).recover(recovered, store)
            assert recovery.snapshot_position == cut and not recovery.fallback
            assert recovery.folded == store.head() - cut  # the tail only, its own snapshot event included
            again = replayed(council)  # the log as it is now, its snapshot event included
            assert recovered.encode_state() == again.encode_state() and recovered.authority == again.authority
            mine = judged(recovered, council)
            assert mine == judged(again, council)
            decided += sum(len(d) for d in mine if isinstance(d, list))
            proved += 1
    assert proved == 20 and decided > 20, (proved, decided)
    assert {"approval.granted", "approval.refused", "vote.decided", "review.decided", "review.escalated",
            "warrant.revoked", "action.completed", "checkpoint.signed", "budget.allocated"} <= kinds, kinds


def test_the_snapshot_holds_the_merkle_frontier_not_the_log(logs: list[Council]) -> None:
    council = logs[0]
    full = replayed(council)
    state = council_snapshot.decode(full.encode_state(), full.position, council_snapshot.VERSION)
    assert state.ledger.size == council.store.head() and len(state.ledger.peaks) == bin(state.ledger.size).count("1")
    assert state.ledger.root() == council.store.root(council.store.head())
    for bad in ((5, [b"\0" * 32]), (3, [b"\0" * 32, b"\0" * 31]), (-1, [b"\0" * 32])):
        with pytest.raises(ValueError, match="peak"):
            CompactRange.resume(*bad)


def test_a_recovered_council_signs_the_checkpoint_a_replay_signs(logs: list[Council], tmp_path: Path) -> None:
    council = logs[1]
    blobs = BlobStore(tmp_path / "blobs")
    Snapshots("council", blobs).take(replayed(council), council.store)
    council.store.append(streams.ALERTS, [AlertRaised(key="after", source="test", summary="a change")])
    recovered = CouncilProcess(council.key, 10.0)
    Snapshots("council", blobs).recover(recovered, council.store)
    now = council.clock() + 100
    signed, again = recovered.checkpoint(now), replayed(council).checkpoint(now)
    assert signed is not None and signed == again and signed.root == council.store.root(council.store.head())


@pytest.mark.parametrize("case", FALLBACKS)
def test_a_snapshot_that_cannot_be_believed_falls_back_to_the_replay(case: str, tmp_path: Path) -> None:
    council = make_council(tmp_path / "council")
    governance_log(council, 2, 220)
    falls_back(SnapshottingActor("council", "council", council.store, lambda: CouncilProcess(council.key, 10.0)),
               case, tmp_path)


def test_a_snapshot_of_another_shape_or_position_is_refused(logs: list[Council]) -> None:
    full = replayed(logs[3])
    data = full.encode_state()
    with pytest.raises(council_snapshot.SnapshotInvalid, match="position"):
        council_snapshot.decode(data, full.position - 1, council_snapshot.VERSION)
    snap = msgspec.msgpack.decode(data, type=council_snapshot.CouncilSnapshot)
    other = msgspec.msgpack.encode(msgspec.structs.replace(snap, shape="0123456789abcdef"))
    with pytest.raises(council_snapshot.SnapshotInvalid, match="shape"):
        council_snapshot.decode(other, full.position, council_snapshot.VERSION)
    broken = msgspec.msgpack.encode(msgspec.structs.replace(snap, peaks=snap.peaks[1:]))
    with pytest.raises(council_snapshot.SnapshotInvalid, match="frontier"):
        council_snapshot.decode(broken, full.position, council_snapshot.VERSION)
    restored = CouncilProcess(logs[3].key, 10.0)
    with pytest.raises(council_snapshot.SnapshotInvalid):
        restored.restore_state(b"\xc1", full.position, council_snapshot.VERSION)
    assert restored.position == 0 and restored.ledger.size == 0  # unchanged


def test_only_changes_call_for_a_council_snapshot_or_checkpoint_not_checkpoints_or_snapshots(tmp_path: Path) -> None:
    council = make_council(tmp_path)
    store, blobs = council.store, BlobStore(tmp_path / "blobs")
    clock = [1000.0]
    snaps = Snapshots("council", blobs, SnapshotSettings(quiet_seconds=1, every_seconds=5), clock=lambda: clock[0])
    process = CouncilProcess(council.key, 10.0)
    snaps.recover(process, store)  # everything folded: nothing new since
    clock[0] += 100
    assert snaps.maybe_take(process, store) is None
    signed = 0
    for _ in range(5):  # a checkpoint and other actors' snapshots, again and again: never a change
        for intent in process.decide(clock[0] + 100):
            store.append(intent.stream, list(intent.events), intent.expected)
            signed += 1
        store.append(snapshot_stream("dispatcher"), [SnapshotTaken(actor="dispatcher", position=store.head(),
                                                                   schema="dispatch", version=3, digest="0" * 64,
                                                                   size=1)])
        process.advance(store)
        clock[0] += 100
        assert snaps.maybe_take(process, store) is None
    assert signed == 1  # the adoption's; another actor's snapshot calls for no checkpoint either
    store.append(streams.ALERTS, [AlertRaised(key="real", source="test", summary="a change")])
    process.advance(store)
    taken = snaps.maybe_take(process, store)  # a change, and every_seconds since the last snapshot: one is due
    assert taken is not None and taken.position == store.head() - 1
