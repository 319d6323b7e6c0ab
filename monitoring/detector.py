"""The error detector actor: the Ray shell around :class:`monitoring.errors.ErrorDetector`.

A :class:`actors.follow.Follower` folds the log when the actor starts — from its newest valid
snapshot, or from position 1 (:mod:`actors.snapshots`) — so it knows what it already did, then
follows it, appending the requeues, fix tasks and alerts the detector decides. A requeue is
appended at the task stream's version it was decided from, so it never races a person's requeue.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray

from actors import names
from actors.follow import Follower, reader_for
from actors.snapshots import Snapshots, SnapshotSettings
from actors.store_client import StoreClient
from events.blobs import BlobStore
from monitoring.errors import DetectorSettings, ErrorDetector


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=2)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class DetectorActor:
    """Runs the error detector's :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, settings: dict[str, Any] | None = None, blobs: str | None = None,
                 snapshots: dict[str, Any] | None = None) -> None:
        """``blobs``: the council's blob directory, where snapshots of the fold go (none: no snapshots);
        ``snapshots``: when (:class:`actors.snapshots.SnapshotSettings`)."""
        self.detector = ErrorDetector(DetectorSettings(**(settings or {})))
        client = StoreClient()
        reader = reader_for(store_url)
        self.snapshots = Snapshots(names.DETECTOR, BlobStore(Path(blobs)) if blobs else None,
                                   SnapshotSettings(**(snapshots or {})))
        self.snapshots.recover(self.detector, reader or client)  # its newest valid snapshot and the rest, or all
        self.follower = Follower(self.detector, client, reader=reader,
                                 after_round=lambda: self.snapshots.maybe_take(self.detector, client))
        self.follower.start("detector")

    def stats(self) -> dict[str, int | float | str]:
        """The position folded and the snapshots: taken, and the one this incarnation recovered from."""
        return {"position": self.detector.position, **self.snapshots.stats()}

    def step(self) -> int:
        """Decide now (the follower does this on its own); how many appends were made."""
        return self.follower.step()[0]

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
