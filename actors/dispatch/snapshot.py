"""The dispatcher's state as snapshot bytes, and back (the hooks of :class:`actors.snapshots.Snapshotting`).

What is encoded is everything the dispatcher folds from the log: the :class:`DispatchState` (tasks in
flight, the finished tasks' records, agents, indexes, the queues' heaps exactly as they are, the last
queue token) and the strategies it folded (a lease strategy changes its settings). What it heard
from agents (:mod:`actors.dispatch.liveness`) and the agents it saw die are not history and are not
encoded: a restarted dispatcher starts with none, as after a full replay.

The encoding is canonical (sets and dict keys sorted), so two equal states encode to the same bytes.
A restored state is equal to the folded one field for field, and where ``decide`` reads a mapping
in order (the queues, which break ties between equal ranks; the authorities awaited; the finished
tasks' records, oldest first, which are dropped from the front) that order is kept: those are
encoded as lists, heaps exactly as their lists. Raise :data:`VERSION` whenever a
field is added, removed or changes meaning.
"""

from __future__ import annotations

import msgspec

from actors.dispatch.state import AgentView, DispatchState, Finished, TaskView
from actors.snapshots import opened
from projections.strategies import Strategy, StrategyBook

SCHEMA = "dispatch"
VERSION = 3

_Entry = tuple[float, int, str]


class _Queue(msgspec.Struct, array_like=True):
    capability: str
    priority: int
    heap: list[_Entry]


class DispatchSnapshot(msgspec.Struct, array_like=True):
    """One dispatcher state, encoded (msgpack)."""

    position: int
    forget: bool
    remember: int
    tasks: list[TaskView]
    finished: list[tuple[str, Finished]]
    agents: list[AgentView]
    waiting: list[str]
    leased: list[str]
    undecided: list[str]
    awaiting: list[tuple[str, str]]
    decided: list[tuple[str, str]]
    resumable: list[str]
    blocked: list[str]
    ready: list[_Queue]
    delayed: list[_Entry]
    seq: int
    pushed: int
    compact_after: int
    strategies: list[Strategy]
    strategies_version: int
    strategies_position: int


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(DispatchSnapshot)


def encode(state: DispatchState, book: StrategyBook) -> bytes:
    """``state`` and ``book`` as bytes :func:`decode` gives back equal."""
    return _encoder.encode(DispatchSnapshot(
        state.position, state.forget, state.remember, list(state.tasks.values()), list(state.finished.items()),
        list(state.agents.values()),
        sorted(state.waiting), sorted(state.leased), sorted(state.undecided),
        list(state.awaiting.items()), list(state.decided.items()),
        sorted(state.resumable), sorted(state.blocked),
        [_Queue(c, p, heap) for (c, p), heap in state.ready_queues().items()], state._delayed, state.seq,
        state.pushed, state.compact_after,
        list(book.strategies.values()), book.version, book.position))


def decode(data: bytes, position: int, version: int) -> tuple[DispatchState, StrategyBook]:
    """The state and strategies ``data`` encodes, recorded as the state at ``position`` by encoding ``version``;
    :class:`actors.snapshots.SnapshotInvalid` if it is not a dispatcher snapshot this release reads."""
    snap = opened(data, _decoder, what="dispatcher", version=version, writes=VERSION, position=position)
    state = DispatchState(forget=snap.forget, remember=snap.remember)
    state.position, state.seq, state.finished = snap.position, snap.seq, dict(snap.finished)
    state.tasks = {t.task_id: t for t in snap.tasks}
    state.agents = {a.agent_id: a for a in snap.agents}
    state.waiting, state.leased, state.undecided = set(snap.waiting), set(snap.leased), set(snap.undecided)
    state.awaiting, state.decided = dict(snap.awaiting), dict(snap.decided)
    state.resumable, state.blocked = set(snap.resumable), set(snap.blocked)
    state._ready = {(q.capability, q.priority): q.heap for q in snap.ready}
    state._delayed, state.pushed, state.compact_after = snap.delayed, snap.pushed, snap.compact_after
    book = StrategyBook()
    book.strategies = {s.changed.strategy_id: s for s in snap.strategies}
    book.version, book.position = snap.strategies_version, snap.strategies_position
    return state, book
