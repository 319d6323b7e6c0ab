"""The error detector actor: the Ray shell around :class:`monitoring.errors.ErrorDetector`.

It folds the log from position 1 when it starts (so it knows what it already did), then follows
the log, appending the requeues, fix tasks and alerts the detector decides. A requeue is appended
at the task stream's version it was decided from, so it never races a human's requeue.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray

from actors.follow import fold_from
from actors.store_client import StoreClient
from events import CouncilError, EventStore, open_store
from events.errors import ConcurrencyError
from monitoring.errors import DetectorSettings, ErrorDetector


class DetectorLoop:
    """Fold, decide, append — until stopped."""

    def __init__(self, detector: ErrorDetector, client: StoreClient, reader: EventStore | None) -> None:
        self.detector, self.client, self.reader = detector, client, reader
        self._stop = threading.Event()

    def catch_up(self) -> None:
        """Fold every event after the detector's position."""
        fold_from(self.reader if self.reader is not None else self.client, self.detector.position, self.detector.evolve)

    def step(self) -> int:
        """One round; how many appends were made."""
        self.catch_up()
        made = 0
        for stream, events, expected in self.detector.decide(time.time()):
            try:
                self.client.append(stream, events, expected)
                made += 1
            except ConcurrencyError:
                continue  # the task moved on (someone requeued it): nothing to do
        return made

    def run(self) -> None:
        """Loop until :meth:`stop`: a round whenever the log moves, and every few seconds for the rates."""
        while not self._stop.is_set():
            try:
                if not self.step():
                    self.client.wait_for(self.detector.position + 1, timeout=2.0)
            except CouncilError:
                self._stop.wait(0.5)

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=2)
class DetectorActor:
    """Runs a :class:`DetectorLoop` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, settings: dict[str, Any] | None = None) -> None:
        reader = open_store(store_url, create=False) if store_url.startswith("sqlite:") else None
        self.loop = DetectorLoop(ErrorDetector(DetectorSettings(**(settings or {}))), StoreClient(), reader)
        self.loop.catch_up()
        self._thread = threading.Thread(target=self.loop.run, daemon=True, name="detector")
        self._thread.start()

    def step(self) -> int:
        """Decide now (the loop does this on its own)."""
        return self.loop.step()

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
