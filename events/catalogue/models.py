"""Model calls: what was asked of a model, what it answered, what it cost, what went wrong — and, for the coding
team's calls, whether the edits an answer held applied.

All in the task's own stream of calls, ``llm-<task id>`` (:func:`events.streams.model_calls`), so
that whichever agent or warrant runs the task next finds what was already paid for. The gate's
own record of the ``llm.call`` action (``action.authorized`` with the worst case it was allowed to
cost, ``action.completed`` with what it cost) is in the warrant's stream, as for every action.

The call's body — model, messages, tools, schema, parameters — is a blob beside the log
(:mod:`events.blobs`), named by its SHA-256: ``digest`` below. A call is answered from the log
only by an ``llm.completed`` with the same ``key`` *and* ``digest``. The answer stays in the event
when it fits, else it is a blob too (``reply_blob``). No key or authorisation header is ever part
of a call's body or of an error's text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from events.catalogue.fields import Count, Id, Positive, Seconds, Text
from events.catalogue.governance import Budget
from events.registry import Event, event_type

Digest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Key = Annotated[str, Meta(min_length=1, max_length=512)]
Provider = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Path = Annotated[str, Meta(min_length=1, max_length=4096)]
Model = Annotated[str, Meta(min_length=1, max_length=200)]
Usd = Annotated[float, Meta(ge=0)]
FailureKind = Literal["rate_limited", "server_error", "timeout", "refused", "context_too_long", "authentication",
                      "bad_request", "stalled", "connection", "invalid_answer", "truncated"]
"""How a model call failed: the provider layer's kinds, and two of the answer's (it did not validate against the
schema asked for; it was cut off at ``max_tokens``)."""


@event_type("llm.requested")
class ModelCallRequested(Event, frozen=True, kw_only=True):
    """A model call is about to be sent (``attempt`` counts the tries of one call: transient failures retry)."""

    task_id: Id
    warrant_id: Id
    agent_id: Id
    request_id: Id | None = None
    key: Key
    digest: Digest
    provider: Provider
    model: Model
    max_tokens: Positive
    estimate: Budget
    """The worst case the gate allowed: prompt tokens (estimated) plus ``max_tokens``, and its price."""
    attempt: Positive = 1
    knowledge: list[Annotated[str, Meta(max_length=260)]] = []
    """The knowledge entries its prompt holds, as ``<entry id>@<revision>`` (``knowledge.consulted``)."""


@event_type("llm.completed")
class ModelCallCompleted(Event, frozen=True, kw_only=True):
    """The model answered: the reply (inline, or ``reply_blob``), its tokens, its price and how long it took."""

    task_id: Id
    key: Key
    digest: Digest
    provider: Provider
    model: Model
    """The model that answered, as the provider names it (it may be a dated version of the one asked for)."""
    reply: dict[str, Any] | None = None
    reply_blob: Digest | None = None
    input_tokens: Count
    output_tokens: Count
    cost: Usd
    """What the call cost in all: this answer's tokens at the model's price, plus what its failed tries before it
    were charged (their ``llm.failed`` ``cost``, which this includes: add up completions, not both)."""
    latency_s: Seconds
    finish: Text
    estimated: bool = False
    """Whether the token counts are the estimate (the provider sent none)."""
    attempt: Positive = 1


@event_type("llm.failed")
class ModelCallFailed(Event, frozen=True, kw_only=True):
    """A try of a model call failed; ``transient`` ones are tried again (each try its own event)."""

    task_id: Id
    key: Key
    digest: Digest
    provider: Provider
    model: Model
    kind: FailureKind
    transient: bool
    error: Text
    """One line, scrubbed of secrets."""
    status: int | None = None
    retry_after: Seconds | None = None
    cost: Usd = 0.0
    """What the try is charged: a failed stream is charged its worst case (the provider reports no usage for it)."""
    attempt: Positive = 1


@event_type("llm.repaired")
class ModelAnswerRepaired(Event, frozen=True, kw_only=True):
    """An answer did not validate against the schema asked for; the model is asked again with the error (``repair``
    counts the re-asks of one question)."""

    task_id: Id
    key: Key
    """The call whose answer did not validate."""
    error: Text
    repair: Positive
    model: Model
    provider: Provider


EditRefusal = Literal["unreadable", "does-not-apply", "does-not-compile", "refused", "cut-off"]
"""Why the edits of an answer were refused: its SEARCH/REPLACE blocks could not be read; a block did not match its
file; a changed Python file would not compile; the gate refused to write a file; the answer was cut off at its
``max_tokens`` before its edits ended."""


@event_type("edit.applied")
class EditApplied(Event, frozen=True, kw_only=True):
    """Every edit of an answer applied (and each Python file it changed compiles): the round of the agent's edit loop
    it came in (1: the first answer), and the files it changed."""

    task_id: Id
    agent_id: Id
    key: Key
    """The call whose answer held the edits."""
    model: Model
    round: Positive
    blocks: Count
    files: list[Path] = []


@event_type("edit.malformed")
class EditMalformed(Event, frozen=True, kw_only=True):
    """The edits of an answer were refused (all of them, or ``applied`` of them went through): why, in the words sent
    back to the model. The rate of answers whose edits applied, per model, is a query over these and
    ``edit.applied``."""

    task_id: Id
    agent_id: Id
    key: Key
    model: Model
    round: Positive
    refusal: EditRefusal
    error: Text
    files: list[Path] = []
    applied: Count = 0
