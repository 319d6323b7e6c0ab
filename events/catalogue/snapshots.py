"""What a log-following actor records when it snapshots its state (stream ``snapshot-<actor name>``).

The state itself is a blob beside the log (``events.blobs``); the event carries its digest, so the
ledger's hash covers exactly which bytes a recovery may believe. See ``actors.snapshots``.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from events.catalogue.fields import Count, Id, Positive
from events.registry import Event, event_type

Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 in lowercase hex: a blob's name."""


@event_type("snapshot.taken")
class SnapshotTaken(Event, frozen=True, kw_only=True):
    """Actor ``actor``'s state after folding the log up to and including ``position``, stored as blob ``digest``.

    ``schema`` names the state's encoding and ``version`` its revision: a recovery uses a snapshot only
    of a schema and version it knows, and otherwise replays the log.
    """

    actor: Id
    position: Count
    schema: Id
    version: Positive
    digest: Sha256
    size: Count
