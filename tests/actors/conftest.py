"""One Ray instance per test module (starting Ray costs seconds), and helpers to kill actors."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import ray

from actors import names


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray.init(address="local", namespace=names.NAMESPACE, num_cpus=8, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def sigkill(pid: int) -> None:
    """Kill a worker process the hard way, as a crash would."""
    os.kill(pid, signal.SIGKILL)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)


def ask(method, *args, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Call an actor method, waiting through its restarts."""
    from ray.exceptions import ActorUnavailableError, RayActorError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return ray.get(method.remote(*args), timeout=timeout)
        except (ActorUnavailableError, RayActorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
