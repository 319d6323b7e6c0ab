"""The Prometheus exporter actor: ``/metrics`` over HTTP, derived from the log and the read models.

It folds the log into a :class:`monitoring.metrics.LogMetrics` from position 1 when it starts (so
every counter is right after any restart, of it or of anything else), follows the log as the
store reports new events, and on each scrape asks the projector for the read models' state. It
listens on ``host:port`` (loopback by default) with prometheus-client's own HTTP server.
"""

from __future__ import annotations

import os
import threading

import ray
from prometheus_client import CollectorRegistry, start_http_server

from actors import names
from actors.follow import fold_from
from actors.store_client import StoreClient
from events import CouncilError, EventStore, open_store
from monitoring.metrics import CouncilCollector, LogMetrics


class MetricsLoop:
    """Fold what is new into the metrics, then wait for the log to move; until stopped."""

    def __init__(self, metrics: LogMetrics, client: StoreClient, reader: EventStore | None) -> None:
        self.metrics, self.client, self.reader = metrics, client, reader
        self._stop = threading.Event()

    def catch_up(self) -> int:
        """Fold every event after the metrics' position; return how many."""
        return fold_from(self.reader if self.reader is not None else self.client, self.metrics.position,
                         self.metrics.evolve)

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                if not self.catch_up():
                    self.client.wait_for(self.metrics.position + 1, timeout=1.0)
            except CouncilError:
                self._stop.wait(0.5)

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()


def _projector_query(sql: str):  # type: ignore[no-untyped-def]
    projector = ray.get_actor(names.PROJECTOR, namespace=names.NAMESPACE)
    return ray.get(projector.query.remote(sql), timeout=5)


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)
class ExporterActor:
    """Serves ``/metrics`` on ``host:port`` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, port: int, host: str = "127.0.0.1") -> None:
        reader = open_store(store_url, create=False) if store_url.startswith("sqlite:") else None
        client = StoreClient()
        self.metrics = LogMetrics()
        self.loop = MetricsLoop(self.metrics, client, reader)
        self.loop.catch_up()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CouncilCollector(self.metrics, client.head, _projector_query))
        self.server, self._server_thread = start_http_server(port, addr=host, registry=registry)
        self.host, self.port = host, self.server.server_port
        self._thread = threading.Thread(target=self.loop.run, daemon=True, name="metrics")
        self._thread.start()

    def address(self) -> str:
        """Where ``/metrics`` is served: ``host:port``."""
        return f"{self.host}:{self.port}"

    def position(self) -> int:
        """The last log position folded into the counters."""
        return self.metrics.position

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
