"""Snapshots: recovery that does not grow with the log.

A process that follows the log (:class:`actors.follow.Process`) rebuilds its state by folding every
event from position 1. A snapshot lets it start from a recent state instead: the state encoded at a
known position, then only the events after it.

Where a snapshot lives. The encoded state is a blob beside the log (:mod:`events.blobs`, named by
its SHA-256) and a ``snapshot.taken`` event in the stream ``snapshot-<actor name>`` says which
blob holds the state after which position, in which schema and version. An event rather than a
side table because then the log stays the only truth (rule 1): the snapshot is a fact of the log,
covered by the ledger's hash, copied by ``council migrate``, readable through the same store
client on any node and any backend, and a snapshot can never describe a position the log does
not have. The blob keeps the state out of the event (it can be larger than an event may be), and
the event's digest pins exactly which bytes may be believed.

THE invariant: a snapshot only ever saves time, it never changes a state. Recovering from the
newest valid snapshot and then folding the events after it gives exactly the state a full replay
gives. So a snapshot is used only when all of these hold, and otherwise the next older one is
tried (at most :attr:`SnapshotSettings.tries`), then a full replay from position 1, saying why in
a warning and in :attr:`Recovery.fallback`:

* its blob is present and its bytes hash to the event's digest (:class:`events.blobs.BlobError`);
* its schema is the process's and its version one the process knows (a snapshot written by a
  newer release is passed over, never guessed at);
* the position it covers is at most the log's head (a snapshot of another, longer log is refused);
* the process decodes it (:meth:`Snapshotting.restore_state` raises :class:`SnapshotInvalid`, and
  must leave the process unchanged when it does: it decodes everything before it assigns).

Taking one is never in the way of the work: it happens between rounds of the follower (under its
lock, so the state is not folded meanwhile), and a snapshot that cannot be written is logged and
tried again at the next interval.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from actors.follow import Process, Source
from events import AppendResult, CouncilError, Intent, RecordedEvent
from events.blobs import BlobError, BlobStore
from events.catalogue import SnapshotTaken
from events.envelope import ANY
from events.streams import snapshot as snapshot_stream

log = logging.getLogger(__name__)


class SnapshotInvalid(CouncilError):
    """A snapshot cannot be used (its blob is missing or altered, its version unknown, its bytes undecodable).

    Recovery falls back to replaying the log, so nothing is lost; if it keeps happening, check that
    the council's ``blobs`` directory belongs to this log and that every node runs the same release.
    """


class Positioned(Protocol):
    """An encoded state: it says the position it was taken at."""

    @property
    def position(self) -> int: ...


S = TypeVar("S", bound=Positioned)


def shape_of(state_type: type) -> str:
    """A digest of how ``state_type`` is encoded: it changes with any field of it or of the types it holds, so a
    state written by another release with the same version is told apart (see :func:`opened`)."""
    return hashlib.sha256(repr(msgspec.inspect.type_info(state_type)).encode()).hexdigest()[:16]


def opened(data: bytes, decoder: msgspec.msgpack.Decoder[S], *, what: str, version: int, writes: int,
           position: int, shape: str | None = None) -> S:
    """The state ``data`` encodes, if this release may believe it: the snapshot's ``version`` is the one it
    ``writes``, the bytes decode as the decoder's fixed types (never as code: msgpack, no pickle), the state's
    ``shape`` is this release's (when the state records one) and the state says the ``position`` its record says.
    :class:`SnapshotInvalid` naming ``what`` (the actor) otherwise."""
    if version != writes:
        raise SnapshotInvalid(f"{what} snapshots of version {version} are not read by this release "
                              f"(it writes version {writes})")
    try:
        state = decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotInvalid(f"not a{'n' if what[0] in 'aeiou' else ''} {what} snapshot of version {writes}: "
                              f"{exc}") from None
    recorded = getattr(state, "shape", None)
    if shape is not None and recorded != shape:
        raise SnapshotInvalid(f"the snapshot's state has the shape {recorded}, this release's is {shape}: it was "
                              "written by another release with the same version")
    if state.position != position:
        raise SnapshotInvalid(f"the snapshot's state is at position {state.position}, its record says {position}")
    return state


@runtime_checkable
class Snapshotting(Protocol):
    """The hooks a :class:`actors.follow.Process` gives to be snapshotted."""

    position: int

    @property
    def changed(self) -> int:
        """The position of the last event that changed the state (other actors' snapshots do not): what calls for a
        snapshot. A process that cannot tell may keep it equal to :attr:`position`."""
        ...

    snapshot_schema: str
    """The name of the state's encoding (one per kind of process: ``dispatch``, ``council``…)."""
    snapshot_version: int
    """The revision of that encoding; raise it whenever the encoded state changes shape or meaning."""

    def encode_state(self) -> bytes:
        """The whole state folded so far (up to :attr:`position`), as bytes :meth:`restore_state` reads back."""
        ...

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        """Become the state ``data`` encodes, folded up to ``position``, written by encoding ``version``.

        Raises :class:`SnapshotInvalid` for a version it cannot read or bytes it cannot decode, and then
        leaves the process exactly as it was.
        """
        ...


class SnapshotSettings(BaseModel):
    """When an actor snapshots its state: after ``every_events`` new events or ``every_seconds``, whichever first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    every_events: int = Field(10_000, ge=1, description="events folded since the last snapshot that call for one")
    every_seconds: float = Field(60.0, gt=0, description="seconds after which any new event calls for a snapshot")
    quiet_seconds: float = Field(2.0, gt=0, description="seconds without a change after which changes since the "
                                                        "last snapshot call for one: the state is snapshotted once "
                                                        "a burst of work ends, and an idle council writes nothing")
    tries: int = Field(3, ge=1, description="how many of the newest snapshots a recovery tries before replaying")


@dataclass(frozen=True)
class Recovery:
    """How a process was recovered: from which snapshot (its position; 0 for none), how many events were folded
    after it, how long it took, and — when a full replay was needed although snapshots exist — why."""

    snapshot_position: int
    folded: int
    seconds: float
    fallback: str = ""

    @property
    def from_snapshot(self) -> bool:
        """Whether a snapshot was used."""
        return self.snapshot_position > 0


class SnapshotLog(Source, Protocol):
    """What snapshots need of the log: to read a stream, and to append (an ``EventStore`` or a ``StoreClient``)."""

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]: ...

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]: ...


class Snapshots:
    """Takes and finds the snapshots of one actor (``name``) in the log and ``blobs``.

    ``versions`` are the encodings the process can read (its own :attr:`Snapshotting.snapshot_version`
    if not given). Without a blob store there are no snapshots: recovery is a full replay.
    """

    def __init__(self, name: str, blobs: BlobStore | None, settings: SnapshotSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name, self.blobs, self.clock = name, blobs, clock
        self.settings = settings or SnapshotSettings()
        self.stream = snapshot_stream(name)
        self.taken = 0
        self.failed = 0
        self.last_position = 0  # the position the newest snapshot covers (or recovery started from)
        self.last_event = 0  # where the newest snapshot's own event landed: folding it is not new work
        self.last_at = clock()
        self.recovery: Recovery | None = None
        self._seen = 0  # the last change this tracker saw, and when it first saw it
        self._seen_at = self.last_at

    @property
    def active(self) -> bool:
        """Whether snapshots are taken and used at all."""
        return self.blobs is not None and self.settings.enabled

    # -- recovering ----------------------------------------------------------------------------

    def recover(self, process: Snapshotting, source: SnapshotLog) -> Recovery:
        """Restore ``process`` (fresh: nothing folded yet) from the newest valid snapshot, then fold the rest of the
        log from ``source``; a full replay when there is no usable snapshot (see the module's invariant)."""
        assert isinstance(process, Process), "only a Process can be recovered"
        started = time.perf_counter()
        used, fallback = 0, ""
        if self.active:
            used, fallback = self._restore(process, source)
        folded = process.advance(source)
        self.last_position, self.last_at = process.position, self.clock()
        self.recovery = Recovery(used, folded, time.perf_counter() - started, fallback)
        if fallback:
            log.warning("%s: recovered by replaying the log from position 1: %s", self.name, fallback)
        return self.recovery

    def _restore(self, process: Snapshotting, source: SnapshotLog) -> tuple[int, str]:
        """Restore the newest usable snapshot into ``process``; (its position, "") or (0, why none was usable)."""
        newest = self._newest(source, self.settings.tries)
        if not newest:
            return 0, ""  # never snapshotted: a replay is the plan, not a fallback
        head = source.head()
        reasons = []
        for event in newest:
            taken = event.payload
            assert isinstance(taken, SnapshotTaken)  # _newest returns no other kind
            why = self._try(process, event, head)
            if why is None:
                self.last_event = event.position
                return taken.position, ""
            reasons.append(f"the snapshot of position {taken.position} (event {event.position}): {why}")
        return 0, "; ".join(reasons)

    def _try(self, process: Snapshotting, event: RecordedEvent, head: int) -> str | None:
        """Restore one snapshot; None when it was used, else why not (``process`` is then unchanged)."""
        taken = event.payload
        assert isinstance(taken, SnapshotTaken) and self.blobs is not None
        if taken.schema != process.snapshot_schema:
            return f"its schema is {taken.schema!r}, not {process.snapshot_schema!r}"
        if taken.version > process.snapshot_version:
            return f"it was written by a newer release (version {taken.version} > {process.snapshot_version})"
        if taken.position > head:
            return f"it covers position {taken.position}, past the log's head {head}"
        try:
            data = self.blobs.get(taken.digest)
            process.restore_state(data, taken.position, taken.version)
        except (BlobError, SnapshotInvalid) as exc:
            return str(exc)
        if process.position != taken.position:  # a hook that forgot to set it would skip or repeat events
            raise SnapshotInvalid(f"{type(process).__name__}.restore_state left position {process.position}, "
                                  f"not the snapshot's {taken.position}: fix the hook")
        return None

    def _newest(self, source: SnapshotLog, count: int) -> list[RecordedEvent]:
        """The newest ``count`` snapshot events, newest first, in a number of reads that grows with the log's
        logarithm (the stream's end is found by doubling, then halving)."""
        if not source.read_stream(self.stream, 1, 1):
            return []
        low, high = 1, 2  # low exists; find a high that does not
        while source.read_stream(self.stream, high, 1):
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if source.read_stream(self.stream, middle, 1):
                low = middle
            else:
                high = middle
        events = source.read_stream(self.stream, max(1, low - count + 1), count)
        return [e for e in reversed(events) if isinstance(e.payload, SnapshotTaken)]

    # -- taking --------------------------------------------------------------------------------

    def due(self, process: Snapshotting, now: float) -> bool:
        """Whether ``process`` calls for a snapshot now: enough changes, or changes and enough time, or changes and
        then quiet.

        Invariant: only changes count — not this actor's own snapshot event, nor (for a process that tracks
        :attr:`Snapshotting.changed`) another actor's — or two snapshotting actors would call for snapshots of each
        other's snapshots forever, and an idle council would never stop writing.
        """
        if not self.active:
            return False
        changed = process.changed
        if changed != self._seen:
            self._seen, self._seen_at = changed, now
        new = changed - max(self.last_position, self.last_event)
        if new <= 0:
            return False
        return (new >= self.settings.every_events or now - self.last_at >= self.settings.every_seconds
                or now - self._seen_at >= self.settings.quiet_seconds)

    def take(self, process: Snapshotting, target: SnapshotLog) -> SnapshotTaken | None:
        """Store ``process``'s state now and record it; None (logged, counted) when the log or the disk refused.

        Call it with the process not folding (the follower's lock held): the bytes must be the state at
        :attr:`Snapshotting.position` exactly.
        """
        assert self.blobs is not None, "snapshots need a blob store"
        position = process.position
        try:
            data = process.encode_state()
            taken = SnapshotTaken(actor=self.name, position=position, schema=process.snapshot_schema,
                                  version=process.snapshot_version, digest=self.blobs.put(data), size=len(data))
            [result] = target.append_many([Intent(self.stream, [taken], ANY)])
            if not isinstance(result, AppendResult):
                raise result
        except (CouncilError, OSError) as exc:
            self.failed += 1
            self.last_at = self.clock()  # try again at the next interval, not at every round
            log.warning("%s: could not snapshot its state at position %d: %s", self.name, position, exc)
            return None
        self.taken += 1
        self.last_position, self.last_event, self.last_at = position, result.positions[-1], self.clock()
        return taken

    def maybe_take(self, process: Snapshotting, target: SnapshotLog) -> SnapshotTaken | None:
        """:meth:`take` if one is :meth:`due`; the follower calls this after each round."""
        if not self.due(process, self.clock()):
            return None
        return self.take(process, target)

    def stats(self) -> dict[str, int | float | str]:
        """Snapshots taken and failed, the position of the newest, and how this incarnation recovered."""
        r = self.recovery
        return {"snapshots_taken": self.taken, "snapshots_failed": self.failed, "snapshot_position": self.last_position,
                "recovered_from": r.snapshot_position if r else 0, "recovery_folded": r.folded if r else 0,
                "recovery_seconds": round(r.seconds, 4) if r else 0.0, "recovery_fallback": r.fallback if r else ""}
