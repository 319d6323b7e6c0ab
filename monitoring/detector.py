"""The error detector actor: the Ray shell around :class:`monitoring.errors.ErrorDetector`.

A :class:`actors.follow.Follower` folds the log from position 1 when the actor starts (so it knows
what it already did), then follows it, appending the requeues, fix tasks and alerts the detector
decides. A requeue is appended at the task stream's version it was decided from, so it never
races a person's requeue.
"""

from __future__ import annotations

import os
from typing import Any

import ray

from actors.follow import Follower, reader_for
from actors.store_client import StoreClient
from monitoring.errors import DetectorSettings, ErrorDetector


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=2)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class DetectorActor:
    """Runs the error detector's :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, settings: dict[str, Any] | None = None) -> None:
        self.detector = ErrorDetector(DetectorSettings(**(settings or {})))
        self.follower = Follower(self.detector, StoreClient(), reader=reader_for(store_url))
        self.follower.catch_up()
        self.follower.start("detector")

    def step(self) -> int:
        """Decide now (the follower does this on its own); how many appends were made."""
        return self.follower.step()[0]

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
