"""The projector actor: keeps the DuckDB read models up with the log and answers SQL over them.

It reads the log file directly (it runs on the store's node) and wakes as soon as the store
actor reports new events. Each new event is folded at once and queries see it at once; the rows
go to the DuckDB file, with the checkpoint in the same transaction, once a second or every
:data:`FLUSH_EVENTS` events, so a steady trickle of small appends does not cost a DuckDB
transaction each. A restarted projector continues from the stored checkpoint and folds again,
once, whatever had not been stored.
"""

from __future__ import annotations

import os
import threading

import ray

from actors.store_client import StoreClient
from events import CouncilError, open_store
from projections import Projector, QueryResult, export_parquet

FLUSH_INTERVAL = 1.0
"""Seconds a folded event may wait before its rows are stored in the DuckDB file."""

FLUSH_EVENTS = 50_000
"""Folded-but-unstored events that make the loop store them at once."""


class ProjectionLoop:
    """Fold what is new, store it when due, then wait for the log to move; until stopped. Runs in its own thread."""

    def __init__(self, projector: Projector, client: StoreClient, *, flush_interval: float = FLUSH_INTERVAL,
                 flush_events: int = FLUSH_EVENTS) -> None:
        self.projector, self.client = projector, client
        self.flush_interval, self.flush_events = flush_interval, flush_events
        self._stop = threading.Event()
        self._moved = threading.Condition()

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        projector = self.projector
        while not self._stop.is_set():
            try:
                moved = projector.advance(max_events=self.flush_events)
                if projector.unstored_events >= self.flush_events or projector.unstored_age >= self.flush_interval:
                    projector.flush()
                if moved:
                    with self._moved:
                        self._moved.notify_all()
                    continue
                due = self.flush_interval - projector.unstored_age if projector.unstored_events else 1.0
                self.client.wait_for(projector.position + 1, timeout=min(1.0, max(0.01, due)))
            except CouncilError:
                self._stop.wait(0.5)

    def wait_past(self, position: int, timeout: float) -> bool:
        """Block until the read models have folded past ``position`` or ``timeout`` seconds pass; whether they have."""
        with self._moved:
            return self._moved.wait_for(lambda: self.projector.position > position, timeout)

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

    def query(self, sql: str, newer_than: int | None = None, timeout: float = 1.0) -> QueryResult:
        """Run one read-only query over the read models (anything else is refused).

        With ``newer_than`` (a result's ``position``), it is a long poll for watchers: the query
        runs as soon as the read models have folded past that position, or after ``timeout``
        seconds (capped at 30) if the log has not moved.
        """
        if newer_than is not None:
            self.loop.wait_past(newer_than, min(max(0.0, timeout), 30.0))
        return self.projector.query(sql)

    def changes(self, table: str, after: int, timeout: float = 1.0) -> QueryResult:
        """A long poll on ``table``'s change feed (:meth:`projections.Projector.changes`).

        Answers as soon as the read models have folded past ``after`` (or after ``timeout``
        seconds, capped at 30): the rows of ``table`` changed since, each once, oldest change
        first. Pass the result's ``position`` as ``after`` next time.
        """
        self.loop.wait_past(after, min(max(0.0, timeout), 30.0))
        return self.projector.changes(table, after)

    def position(self) -> int:
        """The last log position folded into the read models."""
        return self.projector.position

    def catch_up(self) -> int:
        """Fold everything up to the log's head now (queries see it at once); return the position reached."""
        self.projector.advance()
        return self.projector.position

    def flush(self) -> int:
        """Store everything folded in the DuckDB file now; return the checkpoint."""
        self.projector.flush()
        return self.projector.checkpoint

    def export(self, directory: str) -> list[str]:
        """Write every read model as Parquet under ``directory`` (on this actor's node)."""
        return [str(p) for p in export_parquet(self.projector, directory)]

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
