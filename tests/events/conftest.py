"""The backends the store conformance suite runs against.

Every backend the store supports is listed in ``BACKENDS``; each must pass the whole suite
unchanged. A backend that is durable can be reopened (a restart); one shared across processes
is driven by writer processes in the concurrency tests. PostgreSQL runs on a real server this
session starts (``postgres_server.py``), with a fresh database for every test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from postgres_server import PostgresServer

from events import EventStore, open_store


@dataclass
class Backend:
    """A way to open (and reopen) one log for a test."""

    name: str
    url: str
    durable: bool
    opened: list[EventStore] = field(default_factory=list)
    _shared: EventStore | None = None

    def open(self, **options: object) -> EventStore:
        """Open the test's log; for a non-durable backend, the same store object every time."""
        if not self.durable:
            if self._shared is None or options:
                self._shared = open_store(self.url, **options)  # type: ignore[arg-type]
                self.opened.append(self._shared)
            return self._shared
        store = open_store(self.url, **options)  # type: ignore[arg-type]
        self.opened.append(store)
        return store


_servers: list[PostgresServer] = []


def postgres_server() -> PostgresServer:
    """The session's PostgreSQL server, started on first use (stopped by ``_stop_postgres``)."""
    if not _servers:
        _servers.append(PostgresServer.start())
    return _servers[0]


@pytest.fixture
def pg_server() -> PostgresServer:
    """The session's PostgreSQL server; each test takes a fresh database of it (``new_database``)."""
    return postgres_server()


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres() -> Iterator[None]:
    yield
    while _servers:
        _servers.pop().stop()


BACKENDS: dict[str, tuple[bool, Callable[[Path], str]]] = {
    "memory": (False, lambda tmp: "memory://"),
    "sqlite": (True, lambda tmp: f"sqlite:///{tmp / 'events.db'}"),
    "postgres": (True, lambda tmp: postgres_server().new_database()),
}
"""Each backend: whether it is durable, and the URL of a fresh log for a test given its temporary folder."""

DURABLE = sorted(name for name, (durable, _) in BACKENDS.items() if durable)
"""The backends whose log outlives the process: the ones a restart or a crash is tested on."""


def _backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    durable, url = BACKENDS[name]
    b = Backend(name, url(tmp_path), durable=durable)
    yield b
    for store in b.opened:
        store.close()


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(request.param, tmp_path)


@pytest.fixture(params=DURABLE)
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every durable backend in turn (the memory store has no log left after a crash to check)."""
    yield from _backend(request.param, tmp_path)


@pytest.fixture
def store(backend: Backend) -> EventStore:
    return backend.open()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"
