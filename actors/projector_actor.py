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

from actors.follow import Follower, Process, Source
from actors.store_client import StoreClient
from events import open_store
from projections import ProjectionSchemaMismatch, Projector, QueryResult, export_parquet

FLUSH_INTERVAL = 1.0
"""Seconds a folded event may wait before its rows are stored in the DuckDB file."""

FLUSH_EVENTS = 50_000
"""Folded-but-unstored events that make the projector store them at once."""


class Projection(Process):
    """The read models as a :class:`actors.follow.Process`: it folds and stores, and decides nothing.

    It folds from its own reader of the log (the projector decodes only the fields the read
    models use, straight from the stored rows), so :meth:`advance` ignores the follower's source.
    """

    def __init__(self, projector: Projector, *, flush_interval: float = FLUSH_INTERVAL,
                 flush_events: int = FLUSH_EVENTS) -> None:
        self.projector = projector
        self.flush_interval, self.flush_events = flush_interval, flush_events
        self._moved = threading.Condition()

    @property
    def position(self) -> int:
        """The last log position folded into the read models."""
        return self.projector.position

    @position.setter
    def position(self, value: int) -> None:
        raise AttributeError("the read models' position moves only by folding (Projection.advance)")

    def advance(self, source: Source) -> int:
        """Fold what is new (at most :attr:`flush_events` at a time); wake queries waiting for it."""
        moved = self.projector.advance(max_events=self.flush_events)
        if moved:
            with self._moved:
                self._moved.notify_all()
        return moved

    def sense(self, now: float) -> None:
        """Store the folded rows in the DuckDB file when enough have waited long enough."""
        projector = self.projector
        if projector.unstored_events >= self.flush_events or (
                projector.unstored_events and projector.unstored_age >= self.flush_interval):
            projector.flush()

    def due(self, now: float) -> float:
        """When unstored rows must be stored; a second from now if none wait."""
        if not self.projector.unstored_events:
            return now + 1.0
        return now + max(0.01, self.flush_interval - self.projector.unstored_age)

    def wait_past(self, position: int, timeout: float) -> bool:
        """Block until the read models have folded past ``position`` or ``timeout`` seconds pass; whether they have."""
        with self._moved:
            return self._moved.wait_for(lambda: self.projector.position > position, timeout)


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class ProjectorActor:
    """Runs the read models' :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, path: str) -> None:
        store = open_store(store_url, create=False)
        try:
            self.projector = Projector(store, path)
        except ProjectionSchemaMismatch:
            # Written by an earlier version with another layout: read models are folds of the log,
            # so the file is rebuilt from it rather than refused (a file of another log still is).
            self.projector = Projector(store, path, rebuild=True)
        self.projection = Projection(self.projector)
        self.follower = Follower(self.projection, StoreClient())
        self.follower.start("project")

    def query(self, sql: str, newer_than: int | None = None, timeout: float = 1.0) -> QueryResult:
        """Run one read-only query over the read models (anything else is refused).

        With ``newer_than`` (a result's ``position``), it is a long poll for watchers: the query
        runs as soon as the read models have folded past that position, or after ``timeout``
        seconds (capped at 30) if the log has not moved.
        """
        if newer_than is not None:
            self.projection.wait_past(newer_than, min(max(0.0, timeout), 30.0))
        return self.projector.query(sql)

    def changes(self, table: str, after: int, timeout: float = 1.0) -> QueryResult:
        """A long poll on ``table``'s change feed (:meth:`projections.Projector.changes`).

        Answers as soon as the read models have folded past ``after`` (or after ``timeout``
        seconds, capped at 30): the rows of ``table`` changed since, each once, oldest change
        first. Pass the result's ``position`` as ``after`` next time.
        """
        self.projection.wait_past(after, min(max(0.0, timeout), 30.0))
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
