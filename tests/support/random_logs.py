"""Random logs for tests of log-following processes: the projection tests' ``write_random_log`` (task lifecycles,
agents, requests, dead letters and requeues), less its event type from the future, and a view of a log as it
stood at a position."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from events import EventStore, RecordedEvent


def _projection_support() -> object:
    """``tests/projections/projection_support.py`` (it lives beside the projection tests, which import it by name)."""
    path = Path(__file__).parents[1] / "projections" / "projection_support.py"
    module = sys.modules.get("projection_support")
    if module is None:
        spec = importlib.util.spec_from_file_location("projection_support", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["projection_support"] = module
        spec.loader.exec_module(module)
    return module


def write_random_log(store: EventStore, **options: object) -> None:
    """``projection_support.write_random_log`` without its ``order.shipped`` events: no process reads a log it
    cannot decode (the projector reads rows, and passes them over)."""
    support = _projection_support()
    append_raw: Callable[..., None] = support.append_raw  # type: ignore[attr-defined]

    def known_only(store: EventStore, stream: str, type_name: str, version: int, payload: dict[str, object]) -> None:
        if type_name != "order.shipped":
            append_raw(store, stream, type_name, version, payload)

    support.append_raw = known_only  # type: ignore[attr-defined]
    try:
        support.write_random_log(store, **options)  # type: ignore[attr-defined]
    finally:
        support.append_raw = append_raw  # type: ignore[attr-defined]


class Upto:
    """The log as it stood at position ``end``: what a process that snapshotted then had read."""

    def __init__(self, store: EventStore, end: int) -> None:
        self.store, self.end = store, end

    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]:
        return [e for e in self.store.read_all(from_position, limit, types) if e.position <= self.end]

    def head(self) -> int:
        return min(self.end, self.store.head())
