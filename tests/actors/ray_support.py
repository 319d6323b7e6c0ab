"""Helpers for tests that drive actors on Ray: killing them, waiting, calling through restarts.

A module of its own, not conftest: every test folder has a conftest, and importing "conftest"
by name gets whichever was imported first.
"""

from __future__ import annotations

import os
import signal
import time

import ray


def sigkill(pid: int) -> None:
    """Kill a worker process the hard way, as a crash would."""
    os.kill(pid, signal.SIGKILL)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true and return what it returned; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)
    return value


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
