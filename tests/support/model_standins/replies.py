"""What a stand-in answers: the scripted replies, the same for every protocol.

A test queues replies on a stand-in; each model call takes the next one. A reply says *what* the model
answers (a text, a JSON value, a tool call, a failure, a stall, a cut-off text); each protocol module only
decides how that looks on its wire. Token counts are part of the script, so cost figures are deterministic:
left out, the output count is derived from the answer's length and the input count from the request's text,
both with :func:`tokens_in` (one token per four characters, at least one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_STALL_SECONDS = 30.0
"""No stall may last longer: a stand-in must never be the reason a test hangs."""


def tokens_in(text: str) -> int:
    """The stand-in's token count for ``text``: one token per four characters, never less than one."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True)
class Text:
    """The model answers ``text`` and stops of its own accord (finish "stop", "end_turn", done "stop")."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Structured:
    """The model answers ``value``, the JSON a request with a schema asked for.

    OpenAI and Ollama send it as the message text (JSON-encoded); Anthropic sends it as the input of the tool
    the request forced with ``tool_choice``, or as text when no tool was forced.
    """

    value: Any
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class ToolCall:
    """The model asks to call the tool ``name`` with ``arguments`` (finish "tool_calls", stop "tool_use").

    ``call_id`` defaults to one made from the call's number, so ids are the same on every run.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Truncated:
    """The model ran out of output tokens after ``text`` (finish "length", stop "max_tokens", done "length")."""

    text: str = "The answer was cut off after"
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Failure:
    """The service refuses the call with HTTP ``status``, the error body in the service's own shape.

    ``message`` defaults to what the service says for that status. ``retry_after`` (seconds, fractions
    allowed) is sent as the ``retry-after`` header, the one the SDKs honour before retrying a 429 or 5xx.
    ``code`` replaces the error code or type the protocol would pick for the status.
    """

    status: int
    message: str | None = None
    retry_after: float | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a Failure needs an HTTP error status (400-599), got {self.status}")


@dataclass(frozen=True)
class Stall:
    """The model goes silent: a stream sends ``after_chunks`` content chunks, then nothing for ``seconds``.

    A reply that is not streamed sends nothing at all for ``seconds``. After the silence the stand-in sends
    the rest of ``then`` (a slow model), or with ``hang_up`` closes the connection mid-reply (a dropped one).
    ``seconds`` is capped at :data:`MAX_STALL_SECONDS`, and a stopping stand-in cuts every stall short.
    """

    after_chunks: int = 1
    seconds: float = 1.0
    then: Text | Structured | ToolCall | Truncated = Text("a reply that arrives only after a long silence")
    hang_up: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.seconds <= MAX_STALL_SECONDS:
            raise ValueError(f"a Stall lasts 0 to {MAX_STALL_SECONDS} seconds, got {self.seconds}")
        if self.after_chunks < 0:
            raise ValueError(f"after_chunks counts chunks sent before the stall, got {self.after_chunks}")


Answer = Text | Structured | ToolCall | Truncated
"""A reply the model gives (as opposed to a failure or a stall)."""

Reply = Answer | Failure | Stall
"""Anything a stand-in can be scripted to do for one call."""


@dataclass(frozen=True)
class Respond:
    """A reply decided by the request: ``decide`` is given the request's JSON body and returns the reply to send.

    For a model whose answer depends on what it is asked, as a real one's does; it may stand in the script or be a
    stand-in's default (then it answers every call the script does not)."""

    decide: Callable[[dict[str, Any]], Reply]

Ending = Literal["stop", "length", "tool"]
"""Why an answer ended, before a protocol names it."""


@dataclass(frozen=True)
class Rendered:
    """An answer reduced to what every protocol renders: text or one tool call, why it ended, token counts."""

    text: str
    tool: ToolCall | None
    ending: Ending
    input_tokens: int
    output_tokens: int


def render(answer: Answer, prompt_tokens: int, *, structured_as_tool: str | None = None) -> Rendered:
    """Reduce ``answer`` to text or a tool call; ``prompt_tokens`` is the request's count when none is scripted.

    With ``structured_as_tool``, a :class:`Structured` answer becomes a call of that tool (Anthropic's way of
    answering with a schema).
    """
    if isinstance(answer, Structured) and structured_as_tool is not None:
        answer = ToolCall(structured_as_tool, answer.value, None, answer.input_tokens, answer.output_tokens)
    if isinstance(answer, ToolCall):
        arguments = json.dumps(answer.arguments)
        return Rendered("", answer, "tool", _given(answer.input_tokens, prompt_tokens),
                        _given(answer.output_tokens, tokens_in(answer.name + arguments)))
    text = json.dumps(answer.value) if isinstance(answer, Structured) else answer.text
    ending: Ending = "length" if isinstance(answer, Truncated) else "stop"
    return Rendered(text, None, ending, _given(answer.input_tokens, prompt_tokens),
                    _given(answer.output_tokens, tokens_in(text)))


def _given(scripted: int | None, derived: int) -> int:
    return derived if scripted is None else scripted
