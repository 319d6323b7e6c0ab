"""Calling another actor and waiting for its answer, typed as what the caller expects (Ray's own stub cannot say)."""

from __future__ import annotations

from typing import Any

import ray


def ask(method: Any, *args: Any, timeout: float | None = None) -> Any:
    """Call the actor method ``method`` (``handle.name``) with ``args`` and wait for its answer (or its error)."""
    return ray.get(method.remote(*args), timeout=timeout)
