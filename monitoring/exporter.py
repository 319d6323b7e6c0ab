"""The Prometheus exporter actor: ``/metrics`` over HTTP, derived from the log and the read models.

A :class:`actors.follow.Follower` folds the log into a :class:`monitoring.metrics.LogMetrics` when
the actor starts — from its newest valid snapshot and the events after it, or from position 1
(:mod:`actors.snapshots`, :mod:`monitoring.metrics_snapshot`), so every counter is right after any
restart, of it or of anything else — and follows the log as the store reports new events; on each scrape the collector
asks the projector for the read models' state. It listens on ``host:port`` (loopback by default)
with prometheus-client's own HTTP server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
from prometheus_client import CollectorRegistry, start_http_server

from actors import names
from actors.follow import Follower, reader_for
from actors.snapshots import Snapshots, SnapshotSettings
from actors.store_client import StoreClient
from events.blobs import BlobStore
from monitoring.metrics import CouncilCollector, LogMetrics


def _projector_query(sql: str) -> Any:
    projector = ray.get_actor(names.PROJECTOR, namespace=names.NAMESPACE)
    return ray.get(projector.query.remote(sql), timeout=5)


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class ExporterActor:
    """Serves ``/metrics`` on ``host:port`` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, port: int, host: str = "127.0.0.1", blobs: str | None = None,
                 snapshots: dict[str, Any] | None = None) -> None:
        """``blobs``: the council's blob directory, where snapshots of the counters go (none: no snapshots);
        ``snapshots``: when (:class:`actors.snapshots.SnapshotSettings`)."""
        client = StoreClient()
        self.metrics = LogMetrics()
        reader = reader_for(store_url)
        self.snapshots = Snapshots(names.EXPORTER, BlobStore(Path(blobs)) if blobs else None,
                                   SnapshotSettings(**(snapshots or {})))
        self.snapshots.recover(self.metrics, reader or client)  # its newest valid snapshot and the rest, or all
        self.follower = Follower(self.metrics, client, reader=reader,
                                 after_round=lambda: self.snapshots.maybe_take(self.metrics, client))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CouncilCollector(self.metrics, client.head, _projector_query))
        self.server, self._server_thread = start_http_server(port, addr=host, registry=registry)
        self.host, self.port = host, self.server.server_port
        self.follower.start("metrics")

    def address(self) -> str:
        """Where ``/metrics`` is served: ``host:port``."""
        return f"{self.host}:{self.port}"

    def position(self) -> int:
        """The last log position folded into the counters."""
        return self.metrics.position

    def stats(self) -> dict[str, int | float | str]:
        """The position folded and the snapshots: taken, and the one this incarnation recovered from."""
        return {"position": self.metrics.position, **self.snapshots.stats()}

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
