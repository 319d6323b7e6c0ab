"""Following the log: the one loop every log-following actor runs.

A :class:`Process` is what an actor knows and decides: a fold of the log (:meth:`Process.evolve`)
and the events it would append now (:meth:`Process.decide`, pure: it returns
:class:`events.Intent` values and changes nothing). The :class:`Follower` runs it: it catches the
fold up page by page, decides, appends every intent of a round in one group commit, lets the
process act on what was stored (:meth:`Process.react`), and waits — until the log moves, or until
something the process is waiting for falls due (:meth:`Process.due`), or until it is stopped.

The invariants the actors rely on, kept here once:

* A process's state changes only by folding events. A decision whose append failed (the store was
  away, or the stream moved since the decision) leaves no trace, so the next round decides again
  from the log; the Follower catches up before every decision, so a decision that was stored is
  folded before the next one is made, and is never made twice.
* An intent is appended at the version of the stream it was decided from: when two incarnations
  race, or a person acts on the same stream meanwhile, one append is refused
  (:class:`events.errors.ConcurrencyError`) and that round is decided again at once.
* While the store is away the Follower backs off (50 ms, doubling, at most 2 s). A stopped
  Follower ends its loop after the current round: a back-off or a wait on the clock ends at once,
  a wait on the log when the log moves or after ``longest_wait`` (1 s unless given).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from events import AppendResult, CouncilError, EventStore, Intent, RecordedEvent, open_store

PAGE = 5000
"""Events read per call."""

log = logging.getLogger(__name__)


class Source(Protocol):
    """Anything that reads the log in order: an ``EventStore`` (the file, on this node) or a ``StoreClient``."""

    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]: ...

    def head(self) -> int: ...


class Log(Source, Protocol):
    """The log a follower appends to and waits on: a ``StoreClient`` on Ray, an ``EventStore`` in plain tests."""

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]: ...

    def wait_for(self, position: int, timeout: float) -> int: ...


def fold_from(source: Source, after: int, apply: Callable[[RecordedEvent], None],
              types: Sequence[str] | None = None) -> int:
    """Apply every event after position ``after`` (of ``types``, if given) in log order; return how many.

    Reads until a page comes back short, so it returns with everything appended before the call.
    """
    folded, position = 0, after + 1
    while True:
        events = source.read_all(position, PAGE, types)
        for event in events:
            apply(event)
        folded += len(events)
        if len(events) < PAGE:
            return folded
        position = events[-1].position + 1


def reader_for(url: str) -> EventStore | None:
    """The log at ``url`` opened directly, if this process can share it with the store actor; else None.

    Reading the file skips a hop through the store actor. A store that lives in one process only
    (``memory://``), or a file this node cannot open, is read through the store actor instead.
    """
    try:
        store = open_store(url, create=False)
    except CouncilError:
        return None
    if not store.shared_across_processes:
        store.close()
        return None
    return store


class Process:
    """A fold of the log and the decisions made from it: what a :class:`Follower` runs.

    Subclasses fold in :meth:`evolve` and decide in :meth:`decide`; the other methods are hooks
    with defaults that do nothing.
    """

    position: int = 0
    """The last log position folded."""

    types: Sequence[str] | None = None
    """The only event types this process folds, if it names them: the others are not even read."""

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event (events must come in log order)."""
        raise NotImplementedError

    def advance(self, source: Source) -> int:
        """Fold everything after :attr:`position` from ``source``; return how many events were folded."""

        def apply(event: RecordedEvent) -> None:
            self.evolve(event)
            self.position = event.position

        if self.types is None:
            return fold_from(source, self.position, apply)
        # Read the head first: positions become visible in order, so once the head is h every event
        # up to h can be read, and every one of the named types up to h is folded below.
        head = source.head()
        folded = fold_from(source, self.position, apply, self.types)
        self.position = max(self.position, head)
        return folded

    def decide(self, now: float) -> Sequence[Intent]:
        """What to append now. Must not change the process: what it decides takes effect once folded."""
        return ()

    def sense(self, now: float) -> None:
        """Look at the world before deciding (a health monitor's pings, a dispatcher's deliveries)."""

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        """Act on decisions that are now in the log (effects run after their events are stored, never before)."""

    def due(self, now: float) -> float:
        """When a decision may fall due without a new event (a lease expiring, a flush); the Follower wakes then."""
        return now + 1.0


class Follower:
    """Runs a :class:`Process` against the log in a loop until stopped (see the module's invariants).

    ``log`` takes the appends and the waits; ``reader`` (default ``log``) is read from, so a
    process on the store's node reads the file directly. :attr:`lock` is held for every round:
    callers that append on the process's behalf between rounds (a council issuing a warrant)
    hold it too.
    """

    BACKOFF = (0.05, 2.0)
    """First and longest wait while the store is away (seconds)."""

    def __init__(self, process: Process, log: Log, *, reader: Source | None = None,
                 clock: Callable[[], float] = time.time, longest_wait: float = 1.0, wake_on_log: bool = True,
                 after_round: Callable[[], object] | None = None) -> None:
        """``longest_wait`` bounds every wait; with ``wake_on_log`` false the follower does not wait on the log
        at all (a process that rounds on the clock, like the health monitor's pings, and folds few events).
        ``after_round`` runs at the end of every round, under :attr:`lock` (a snapshot is taken there)."""
        self.process, self.log, self.reader, self.clock = process, log, reader or log, clock
        self.longest_wait, self.wake_on_log = longest_wait, wake_on_log
        self.after_round = after_round
        self.lock = threading.RLock()
        self.rounds = 0
        self.stored = 0
        self.refused = 0
        self.failures = 0
        self.last_error = ""
        self._stop = threading.Event()

    def catch_up(self) -> int:
        """Fold everything appended so far; return how many events were folded."""
        with self.lock:
            return self.process.advance(self.reader)

    def step(self, now: float | None = None) -> tuple[int, int]:
        """One round: catch up, sense, decide, append, react. Returns (intents stored, intents refused).

        Raises what the log raises when the store cannot be reached (a
        :class:`events.CouncilError`); nothing was decided then.
        """
        with self.lock:
            done = self._round(now)
            if self.after_round is not None:
                self.after_round()
            return done

    def _round(self, now: float | None) -> tuple[int, int]:
        with self.lock:
            self.process.advance(self.reader)
            at = self.clock() if now is None else now
            self.process.sense(at)
            intents = list(self.process.decide(at))
            self.rounds += 1
            if not intents:
                return 0, 0
            results = self.log.append_many(intents)
            stored = [(i, r) for i, r in zip(intents, results, strict=True) if isinstance(r, AppendResult)]
            refused = len(intents) - len(stored)
            self.stored += len(stored)
            self.refused += refused
            if stored:
                self.process.react(stored)
            return len(stored), refused

    def run(self) -> None:
        """Loop until :meth:`stop`: decide whenever the log moves or something falls due."""
        delay = self.BACKOFF[0]
        while not self._stop.is_set():
            try:
                stored, refused = self.step()
                delay = self.BACKOFF[0]
                if stored:
                    continue  # what was stored is folded (and may lead to more) at once
                if refused:
                    self._stop.wait(0.01)  # the stream moved: decide again from what moved it
                    continue
                now = self.clock()
                wait = min(self.longest_wait, max(0.0, self.process.due(now) - now))
                if wait > 0 and self.wake_on_log:
                    self.log.wait_for(self.process.position + 1, wait)
                elif wait > 0:
                    self._stop.wait(wait)
            except Exception as exc:  # the store away, or a bug in a process: neither may end the loop silently
                if not isinstance(exc, CouncilError):
                    log.exception("a round of %s failed", type(self.process).__name__)
                self._failed(exc, delay)
                delay = min(delay * 2, self.BACKOFF[1])

    def stop(self) -> None:
        """End :meth:`run` after its current round (or wait)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def start(self, name: str) -> threading.Thread:
        """Run the loop in a daemon thread called ``name``; return the thread."""
        thread = threading.Thread(target=self.run, daemon=True, name=name)
        thread.start()
        return thread

    def stats(self) -> dict[str, int | str]:
        """What this follower did: the position folded, rounds, intents stored and refused, failed rounds."""
        return {"position": self.process.position, "rounds": self.rounds, "stored": self.stored,
                "refused": self.refused, "failures": self.failures, "last_error": self.last_error}

    def _failed(self, exc: BaseException, delay: float) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self._stop.wait(delay)
