"""What a model call is made of, whatever the provider: the request, the reply, and the provider's one method.

These records are the only shapes that cross the provider layer. Everything above it (the gate, the budget, the
recorder, replay) sees a :class:`ModelRequest` go in and a :class:`ModelReply` or a
:class:`~actors.llm.errors.ModelCallError` come out, and never an SDK's own object. They are frozen msgspec
Structs, so a reply encodes into an event as it is and decodes back equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec

from actors.llm.errors import BadRequest

Role = Literal["system", "user", "assistant", "tool"]

Finish = Literal["stop", "length", "tool_calls", "refused", "other"]
"""Why a reply ended, in one vocabulary for every provider.

- ``stop``: the model finished its answer (a structured answer given through Anthropic's forced tool included);
- ``length``: it ran out of ``max_tokens`` (or of context window) mid-answer: the answer is cut off, and a later
  layer treats it as a failure;
- ``tool_calls``: it asks for the tools in :attr:`ModelReply.tool_calls` to be run;
- ``refused``: the provider declined to answer (a refusal or a content filter);
- ``other``: a reason this layer does not know; :attr:`ModelReply.stop_reason` has the provider's own word.
"""

Progress = Callable[[], None]
"""Called once for every piece of a streamed reply, so that whoever watches the call sees it is alive."""


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """The model asks for the tool ``name`` to be run with ``arguments``; ``id`` pairs the call with its result.

    ``raw_arguments`` is set only when the model's arguments were not a JSON object (a cut-off or malformed
    call): then ``arguments`` is empty and the text the model wrote is kept there, unchanged.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str | None = None


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One turn of a conversation.

    An ``assistant`` turn may carry the ``tool_calls`` it made; a ``tool`` turn is the result of one of them and
    names it by ``tool_call_id``.
    """

    role: Role
    content: str
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] = []


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    """A tool the model may ask for: its name, what it does, and its arguments as a JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class ModelRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One model call, as every provider takes it.

    ``schema`` (a JSON schema) asks for a structured answer through the provider's own strict mode; the answer
    comes back parsed in :attr:`ModelReply.structured`. ``schema_name`` names it where the provider wants a name.
    ``stream`` asks for the reply in pieces (each reported to ``progress``); the assembled reply is the same.
    """

    model: str
    messages: list[Message]
    max_tokens: int
    temperature: float | None = None
    schema: dict[str, Any] | None = None
    schema_name: str = "answer"
    tools: list[Tool] = []
    stream: bool = True

    def __post_init__(self) -> None:
        if not self.model:
            raise BadRequest("a model request names no model; give one, e.g. model='gpt-4o-mini'")
        if not self.messages:
            raise BadRequest(f"a request to {self.model!r} has no messages; give at least one user message")
        if self.max_tokens < 1:
            raise BadRequest(f"max_tokens must be at least 1, got {self.max_tokens}")
        for number, message in enumerate(self.messages, 1):
            if message.role == "tool" and not message.tool_call_id:
                raise BadRequest(f"message {number} is a tool result without a tool_call_id; give the id of the "
                                 "tool call it answers")
        if self.tools and self.schema_name in {tool.name for tool in self.tools}:
            raise BadRequest(f"schema_name {self.schema_name!r} is also a tool's name; rename one of them")


class ModelReply(msgspec.Struct, frozen=True, kw_only=True):
    """What the model answered, and what it cost in tokens and time.

    ``text`` is the answer as text (for a structured answer, its JSON). ``structured`` is that JSON parsed when
    the request had a schema and the answer parsed, else None: it is *not* validated against the schema here.
    ``input_tokens`` and ``output_tokens`` are the provider's own counts; when the provider sent none they are
    the conservative estimate of :mod:`actors.llm.tokens` and ``estimated`` is True. ``model`` is the model the
    provider says answered (it may name a dated version of the one asked for). ``latency_s`` runs from sending
    the request to the last byte of the reply. ``stop_reason`` is the provider's own word for why it stopped.
    """

    text: str
    structured: Any | None
    tool_calls: list[ToolCall]
    finish: Finish
    input_tokens: int
    output_tokens: int
    model: str
    latency_s: float
    estimated: bool = False
    stop_reason: str | None = None


class Provider(Protocol):
    """One model service behind its SDK's client; plain (no Ray), made once and reused.

    A provider keeps no state between calls (the SDK clients are thread-safe), so several threads may call it.

    ``complete`` sends the request once (never retries: retries belong to the caller, so that each is recorded)
    and returns the reply, or raises a :class:`~actors.llm.errors.ModelCallError` saying what went wrong,
    whether it is worth retrying, and never quoting a key. With ``request.stream`` it calls ``progress`` for
    every piece received and cuts a stream that stays silent longer than the provider's ``stall_after``.
    """

    @property
    def name(self) -> str:
        """The provider's name in configuration and events: ``openai``, ``anthropic`` or ``ollama``."""
        ...

    def complete(self, request: ModelRequest, *, progress: Progress | None = None) -> ModelReply:
        """Send ``request`` once and return the model's reply."""
        ...

    def close(self) -> None:
        """Release the client's connections; the provider is not used afterwards."""
        ...
