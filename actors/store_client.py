"""Talking to the store actor from anywhere: idempotent appends that survive its restarts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from actors import names
from actors.combiner import Combiner
from actors.store_wire import calls_to_wire, results_from_wire
from events import ANY, AppendResult, CouncilError, ExpectedVersion, NewEvent, RecordedEvent
from events.errors import StoreUnavailable
from events.registry import Event


class StoreClient:
    """Appends and reads through the named store actor.

    Every event is given its id before the first attempt, so a call that failed because the actor
    died (or timed out) is retried with the same ids: the store recognises a retry and never
    stores an event twice (rule 6). Retries back off up to ``patience`` seconds in all.
    """

    def __init__(self, handle: ray.actor.ActorHandle[Any] | None = None, *, patience: float = 60.0) -> None:
        self._handle = handle or ray.get_actor(names.STORE, namespace=names.NAMESPACE)
        self.patience = patience
        self._combiner = Combiner(lambda calls: results_from_wire(self._call("append_many", calls_to_wire(calls))))

    @property
    def handle(self) -> ray.actor.ActorHandle[Any]:
        """The store actor."""
        return self._handle

    def append(self, stream: str, events: Sequence[Event | NewEvent],
               expected_version: ExpectedVersion = ANY) -> AppendResult:
        """Append ``events`` to ``stream`` as :meth:`events.EventStore.append` does; raise its errors."""
        result = self.append_many([(stream, events, expected_version)])[0]
        if isinstance(result, CouncilError):
            raise result
        return result

    def append_many(self, calls: Sequence[tuple[str, Sequence[Event | NewEvent], ExpectedVersion]]
                    ) -> list[AppendResult | CouncilError]:
        """Several appends committed together; each result (or refusal) in its place."""
        fixed = [(stream, [e if isinstance(e, NewEvent) else NewEvent(payload=e) for e in events], expected)
                 for stream, events, expected in calls]
        return self._combiner.submit(fixed)

    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]:
        """Events from ``from_position`` in global order."""
        events: list[RecordedEvent] = self._call("read_all", from_position, limit, types)
        return events

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        """Events of one stream from ``from_version``."""
        events: list[RecordedEvent] = self._call("read_stream", stream, from_version, limit)
        return events

    def head(self) -> int:
        """The log's last position."""
        head: int = self._call("head")
        return head

    def wait_for(self, position: int, timeout: float = 1.0) -> int:
        """Block until the log reaches ``position`` (or ``timeout`` passes); return the head."""
        head: int = self._call("wait_for", position, timeout, call_timeout=timeout + 30)
        return head

    def _call(self, method: str, *args: object, call_timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + self.patience
        delay = 0.05
        while True:
            try:
                return ray.get(getattr(self._handle, method).remote(*args), timeout=call_timeout)
            except (RayActorError, ActorUnavailableError, GetTimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(
                        f"the store actor did not answer {method} within {self.patience:.0f} s ({type(exc).__name__}); "
                        "check `council status` and the Ray dashboard"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
