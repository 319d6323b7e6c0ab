"""Talking to the store actor from anywhere: idempotent appends that survive its restarts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError

from actors import names
from actors.combiner import Combiner
from actors.remote import ask
from actors.store_door import Address, Knock
from actors.store_wire import calls_to_wire, results_from_wire
from events import ANY, AppendResult, CouncilError, ExpectedVersion, NewEvent, RecordedEvent
from events.errors import StoreUnavailable
from events.registry import Event

CALL_TIMEOUT = 30.0
"""Seconds an append (through Ray or the door) may take before it is tried again."""
DOOR_AGAIN = 5.0
"""Seconds after a knock failed (or the door was elsewhere) before the client looks for the door again."""


class StoreClient:
    """Appends and reads through the named store actor.

    Every event is given its id before the first attempt, so a call that failed because the actor
    died (or timed out) is retried with the same ids: the store recognises a retry and never
    stores an event twice (rule 6). Retries back off up to ``patience`` seconds in all.

    On the store actor's node, appends go through its door (:mod:`actors.store_door`) rather than
    a Ray call each; an append whose knock fails is made through Ray, and the door is looked for
    again :data:`DOOR_AGAIN` seconds later (a restarted actor has a new one). ``door=False``
    makes every call through Ray, as from another node.
    """

    def __init__(self, handle: ray.actor.ActorHandle[Any] | None = None, *, patience: float = 60.0,
                 door: bool = True) -> None:
        self._handle = handle or ray.get_actor(names.STORE, namespace=names.NAMESPACE)
        self.patience = patience
        self._knock: Knock | None = None
        self._looked_for_door = -DOOR_AGAIN if door else float("inf")
        self._combiner = Combiner(self._append)

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

    def _append(self, calls: list[tuple[str, Sequence[NewEvent], ExpectedVersion]]
                ) -> list[AppendResult | CouncilError]:
        # Called by the Combiner's leader only, one call at a time: the one connection is never shared.
        wire = calls_to_wire(calls)
        knock = self._knock or self._open_door()
        if knock is not None:
            try:
                return results_from_wire(knock.call(wire))
            except (OSError, EOFError):  # the answer may be lost: the same ids go through Ray, stored once
                knock.close()
                self._knock = None
        return results_from_wire(self._call("append_many", wire))

    def _open_door(self) -> Knock | None:
        """A connection to the store actor's door if it is on this node (None: use Ray, and look again later)."""
        if time.monotonic() - self._looked_for_door < DOOR_AGAIN:
            return None
        self._looked_for_door = time.monotonic()
        try:
            address: Address | None = ask(self._handle.door, timeout=DOOR_AGAIN)
            if address is None or address.node_id != ray.get_runtime_context().get_node_id():
                return None
            self._knock = Knock(address, timeout=CALL_TIMEOUT)
        except (RayError, OSError):  # the actor restarting, or its door gone with it: Ray carries this append
            return None
        return self._knock

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

    def _call(self, method: str, *args: object, call_timeout: float = CALL_TIMEOUT) -> Any:
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
