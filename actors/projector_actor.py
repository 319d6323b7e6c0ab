"""The projector actor: keeps the DuckDB read models up with the log and answers SQL over them.

It reads the log file directly (it runs on the store's node) and wakes as soon as the store
actor reports new events. Its checkpoint lives in the DuckDB file, written in the same
transaction as the rows, so a restarted projector continues exactly where the last one stopped.
"""

from __future__ import annotations

import os
import threading

import ray

from actors.store_client import StoreClient
from events import CouncilError, open_store
from projections import Projector, QueryResult, export_parquet


class ProjectionLoop:
    """Catch up, then wait for the log to move; until stopped. Runs in its own thread."""

    def __init__(self, projector: Projector, client: StoreClient) -> None:
        self.projector, self.client = projector, client
        self._stop = threading.Event()

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                if self.projector.catch_up(max_events=50_000):
                    continue
                self.client.wait_for(self.projector.position + 1, timeout=1.0)
            except CouncilError:
                self._stop.wait(0.5)

    def stop(self) -> None:
        """End :meth:`run` after its current batch."""
        self._stop.set()


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)
class ProjectorActor:
    """Runs a :class:`ProjectionLoop` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, path: str) -> None:
        self.projector = Projector(open_store(store_url, create=False), path)
        self.loop = ProjectionLoop(self.projector, StoreClient())
        self._thread = threading.Thread(target=self.loop.run, daemon=True, name="project")
        self._thread.start()

    def query(self, sql: str) -> QueryResult:
        """Run one read-only query over the read models (anything else is refused)."""
        return self.projector.query(sql)

    def position(self) -> int:
        """The last log position folded into the read models."""
        return self.projector.position

    def catch_up(self) -> int:
        """Fold everything up to the log's head now; return the position reached."""
        self.projector.catch_up()
        return self.projector.position

    def export(self, directory: str) -> list[str]:
        """Write every read model as Parquet under ``directory`` (on this actor's node)."""
        return [str(p) for p in export_parquet(self.projector, directory)]

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
