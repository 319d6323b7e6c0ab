"""The snapshots a recovery must not believe, run the same way against every snapshotting actor.

THE invariant of :mod:`actors.snapshots`: a snapshot only ever saves time. A snapshot whose blob
was altered or lost, whose bytes are not the actor's state, that was written by a newer release or
for another schema, that covers positions past the log's head, or whose state is at another
position than its record says, must be passed over — for an older good one when there is one,
else for a full replay — and the actor must end up in exactly the state a full replay gives.

A module describes its actor once (:class:`SnapshottingActor`) and parametrises one test over
:data:`FALLBACKS`::

    @pytest.mark.parametrize("case", FALLBACKS)
    def test_a_snapshot_that_cannot_be_believed_falls_back_to_the_replay(case: str, tmp_path: Path) -> None:
        falls_back(SnapshottingActor("dispatcher", "dispatcher", random_log(4), fresh), case, tmp_path)

Each case asserts that the bad snapshot was not used and that the fallback names why (so an actor
that trusted it, or refused it for another reason, fails), that the whole log was followed and
that the state is the replay's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from random_logs import Upto

from actors.snapshots import Snapshots, SnapshotSettings, Snapshotting
from events import ANY, EventStore
from events.blobs import BlobStore
from events.catalogue import SnapshotTaken
from events.streams import snapshot as snapshot_stream

P = TypeVar("P", bound=Snapshotting)


def _encoded(process: Snapshotting) -> object:
    return process.encode_state()


@dataclass(frozen=True)
class SnapshottingActor(Generic[P]):
    """One snapshotting actor over one log: what its snapshots are recorded as and how to build it."""

    name: str
    """The actor's name: its snapshots are in the stream ``snapshot-<name>``."""
    what: str
    """What its decoder calls it ("not a dispatcher snapshot")."""
    log: EventStore
    """A log of its own for the test (the cases append to it)."""
    fresh: Callable[[], P]
    """The actor with nothing folded yet."""
    state: Callable[[P], object] = field(default=_encoded)
    """What must be equal after recovery and after a full replay (the encoded state unless told)."""

    def replayed(self) -> P:
        process = self.fresh()
        process.advance(self.log)  # type: ignore[attr-defined]  # every Snapshotting here is a Process
        return process


# Each case: how to spoil the good snapshot (or record a bad one beside it), and what the fallback must name.
# A case that records a bad snapshot leaves the good one older than it, so a recovery that may try both
# must pass the bad one over for the good one.
_RECORDED: dict[str, Callable[[SnapshotTaken, int, BlobStore, bytes], dict[str, Any]]] = {
    "newer version": lambda good, head, blobs, earlier: {"version": good.version + 1},
    "another schema": lambda good, head, blobs, earlier: {"schema": f"{good.schema}-other"},
    "past the head": lambda good, head, blobs, earlier: {"position": head + 50},
    "not its state": lambda good, head, blobs, earlier: {"digest": blobs.put(b"\x92\x01\x02"), "size": 3},
    # the state folded to an earlier position, recorded as the state at the good one's
    "another position": lambda good, head, blobs, earlier: {"digest": blobs.put(earlier), "size": len(earlier)},
}
_WHY = {
    "newer version": "newer release",
    "another schema": "its schema is",
    "past the head": "past the log's head",
    "another position": "its record says",
    "altered blob": "altered",
    "missing blob": "missing",
}

FALLBACKS = ("altered blob", "missing blob", *_RECORDED, "all at once")
"""Every case :func:`falls_back` runs; parametrise a test over them."""


def _why(case: str, what: str) -> str:
    return _WHY.get(case) or f"not a{'n' if what[0] in 'aeiou' else ''} {what} snapshot"


def falls_back(actor: SnapshottingActor[Any], case: str, tmp_path: Path) -> None:
    """Take a good snapshot of ``actor`` at the log's head, spoil it or record a bad one after it as ``case`` says,
    and check recovery: it never uses the bad snapshot, says why, and gives the full replay's state."""
    store, blobs = actor.log, BlobStore(tmp_path / "blobs")
    good = Snapshots(actor.name, blobs).take(actor.replayed(), store)
    assert good is not None
    earlier = actor.fresh()
    earlier.advance(Upto(store, good.position // 2))  # type: ignore[attr-defined]
    assert earlier.position != good.position
    spoilt = list(_RECORDED) if case == "all at once" else [case] if case in _RECORDED else []
    for kind in spoilt:
        changes = _RECORDED[kind](good, store.head(), blobs, earlier.encode_state())
        fields = {"actor": actor.name, "position": good.position, "schema": good.schema, "version": good.version,
                  "digest": good.digest, "size": good.size, **changes}
        store.append(snapshot_stream(actor.name), [SnapshotTaken(**fields)], ANY)
    if spoilt:  # an older good snapshot behind the bad one(s): recovery passes them over for it
        process = actor.fresh()
        recovery = Snapshots(actor.name, blobs, SnapshotSettings(tries=len(spoilt) + 1)).recover(process, store)
        assert recovery.snapshot_position == good.position and not recovery.fallback, recovery
        assert actor.state(process) == actor.state(actor.replayed())
    if case == "altered blob" or case == "all at once":
        data = bytearray(blobs.get(good.digest))
        data[len(data) // 2] ^= 0xFF
        blobs.path(good.digest).write_bytes(bytes(data))
        spoilt.append("altered blob")
    elif case == "missing blob":
        blobs.path(good.digest).unlink()
        spoilt.append(case)
    assert spoilt, f"no fallback case {case!r}"
    process = actor.fresh()
    recovery = Snapshots(actor.name, blobs, SnapshotSettings(tries=len(spoilt))).recover(process, store)
    assert not recovery.from_snapshot, recovery
    for kind in spoilt:
        assert _why(kind, actor.what) in recovery.fallback, (kind, recovery.fallback)
    full = actor.replayed()
    assert process.position == full.position and actor.state(process) == actor.state(full)
