"""The one error hierarchy.

Every error a user can cause is a :class:`CouncilError` (rule 7 of the architecture). Its message
says what was wrong and what to do; the CLI prints it as one line and exits non-zero. Other
packages (``governance``, ``actors``, ``cluster``...) subclass these; nothing above ``events``
defines a second base.
"""

from __future__ import annotations


class CouncilError(Exception):
    """Base of every error a user of agent-council can cause or meet."""


# -- the vocabulary --------------------------------------------------------------------------


class EventSchemaError(CouncilError):
    """An event does not fit the vocabulary: unknown type, wrong payload, unknown version."""


class UnknownEventType(EventSchemaError):
    """The event type is not in the registry."""


class InvalidPayload(EventSchemaError):
    """A payload does not fit its event type's schema."""


class UnsupportedSchemaVersion(EventSchemaError):
    """A stored event has a schema version this code cannot read."""


# -- the store ---------------------------------------------------------------------------------


class StoreError(CouncilError):
    """A problem with the event store or a request made to it."""


class InvalidStreamName(StoreError):
    """A stream name is empty or malformed."""


class EventTooLarge(StoreError):
    """An encoded event is over the store's size limit."""


class InvalidAppend(StoreError):
    """An append request is malformed (empty batch, duplicate ids, bad expected version)."""


class ConcurrencyError(StoreError):
    """The stream's version is not the one the writer expected; nothing was written."""

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, but the append expected {expected}; "
            "nothing was written. Re-read the stream, decide again, and append with the new version."
        )

    def __reduce__(self) -> tuple[type, tuple[str, object, int]]:  # crosses process boundaries intact
        return (type(self), (self.stream, self.expected, self.actual))


class IdempotencyConflict(StoreError):
    """An event id is already stored, but the retried append does not match what was stored."""


class InvalidStoreUrl(StoreError):
    """A store URL is not one of the supported forms."""


class NotAStore(StoreError):
    """A path exists but does not hold an agent-council event store."""


class NewerStoreSchema(StoreError):
    """The store was written by a newer version of agent-council."""


class CorruptLog(StoreError):
    """Stored bytes cannot be read back as events: the log was damaged or tampered with."""

    def __init__(self, position: int, problem: str) -> None:
        self.position = position
        self.problem = problem
        super().__init__(f"the event log is damaged at position {position}: {problem}; run `council verify`")

    def __reduce__(self) -> tuple[type, tuple[int, str]]:
        return (type(self), (self.position, self.problem))


class StoreClosed(StoreError):
    """An operation was attempted on a closed store."""


class StoreUnavailable(StoreError):
    """The store could not be reached or locked in time; the operation can be retried."""


# -- the ledger --------------------------------------------------------------------------------


class LedgerError(CouncilError):
    """A ledger request is out of range or a proof could not be built."""
