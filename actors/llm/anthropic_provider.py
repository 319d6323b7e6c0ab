"""Anthropic messages through the official ``anthropic`` client.

How a :class:`~actors.llm.types.ModelRequest` goes on this wire:

* system messages become the top-level ``system`` prompt (joined, in order, wherever they stood); tool results
  become ``tool_result`` blocks of a user turn (consecutive results share one turn, as the API requires); an
  assistant's tool calls become its ``tool_use`` blocks;
* a schema is a tool named ``schema_name`` whose input schema is the schema, and the model is made to call it:
  ``tool_choice={"type": "tool", "name": schema_name}``, or ``{"type": "any"}`` when the request offers tools
  of its own too (then the model either calls one of them or gives the answer). The answer is that call's
  input: it comes back in ``structured`` (and, as JSON, in ``text``), not as a tool call, and ends as ``stop``;
* ``stop_reason`` maps ``end_turn``/``stop_sequence`` to stop, ``max_tokens`` and
  ``model_context_window_exceeded`` to length, ``tool_use`` to tool_calls, ``refusal`` to refused;
* ``temperature`` is not sent: the Messages API version this SDK speaks (``anthropic-version: 2026-10-21``) has
  no such parameter, and ``messages.create`` refuses it;
* input tokens include cache writes and reads (``cache_creation_input_tokens``, ``cache_read_input_tokens``):
  every token the model read.

The client is made once, with ``max_retries=0`` and the key passed explicitly (so the SDK reads no other
credential from the environment or from its profile files).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent

from actors.llm import assembly
from actors.llm.clock import CallClock, check_limits, is_read_timeout, transport_timeouts
from actors.llm.errors import (
    SERVICES,
    ModelCallError,
    missing_key,
    retry_after_seconds,
    stalled,
    status_error,
    timed_out,
    unreachable,
)
from actors.llm.types import Finish, Message, ModelReply, ModelRequest, Progress, ToolCall

SERVICE = SERVICES["anthropic"]
DEFAULT_BASE_URL = "https://api.anthropic.com"

ANSWER_DESCRIPTION = "Give your final answer by calling this tool; its input is the answer, in the form required."

_FINISH: dict[str, Finish] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                              "model_context_window_exceeded": "length", "tool_use": "tool_calls",
                              "refusal": "refused"}

_TOO_LONG = ("prompt is too long", "input length and `max_tokens` exceed context limit")
"""How Anthropic begins a 400 for a prompt that does not fit. It sends no code for this (only the generic
``invalid_request_error``), so here, and only here, a message's words are matched."""


class AnthropicProvider:
    """Calls Anthropic's messages API: one client, reused, never retrying on its own.

    ``api_key`` is required; ``timeout`` bounds a whole call and ``stall_after`` the silence between two pieces
    of a stream, both in seconds (see :mod:`actors.llm.clock`).
    """

    name = "anthropic"

    def __init__(self, *, api_key: str | None, base_url: str = DEFAULT_BASE_URL, timeout: float = 600.0,
                 stall_after: float = 60.0) -> None:
        if not api_key:
            raise missing_key(SERVICE)
        check_limits(timeout, stall_after)
        self.base_url = base_url
        self.timeout = timeout
        self.stall_after = stall_after
        self._key = api_key
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                           timeout=httpx2.Timeout(**transport_timeouts(timeout, stall_after, False)))

    @classmethod
    def from_env(cls, *, timeout: float = 600.0, stall_after: float = 60.0) -> AnthropicProvider:
        """A provider configured as the SDK would be: ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL`` (or Anthropic)."""
        return cls(api_key=os.environ.get("ANTHROPIC_API_KEY"),
                   base_url=os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL, timeout=timeout,
                   stall_after=stall_after)

    def complete(self, request: ModelRequest, *, progress: Progress | None = None) -> ModelReply:
        """Send ``request`` once; the reply, or a :class:`~actors.llm.errors.ModelCallError` (see the module)."""
        clock = CallClock(self.timeout, progress, lambda: timed_out(SERVICE, request.model, self.timeout))
        try:
            parts = self._exchange(request, clock)
        except anthropic.APIError as error:
            failure = self._failure(error, request)
        except httpx2.TransportError as error:  # the SDK lets these through unwrapped once a stream has begun
            failure = self._transport_failure(error, request)
        else:
            return parts.reply(request, clock.elapsed())
        raise failure  # outside the handler: the SDK's error, whose request holds the key, is not its context

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()

    def _exchange(self, request: ModelRequest, clock: CallClock) -> _Parts:
        params = _params(request)
        limits = httpx2.Timeout(**transport_timeouts(self.timeout, self.stall_after, request.stream))
        if not request.stream:
            return _Parts.whole(self._client.messages.create(**params, stream=False, timeout=limits))
        parts = _Parts(model=request.model)
        with self._client.messages.create(**params, stream=True, timeout=limits) as stream:
            for event in stream:
                clock.tick()
                parts.add(event)
        return parts

    def _failure(self, error: anthropic.APIError, request: ModelRequest) -> ModelCallError:
        if isinstance(error, anthropic.APIConnectionError):  # timeouts included
            cause = error.__cause__
            return self._transport_failure(cause if isinstance(cause, Exception) else error, request)
        if not isinstance(error, anthropic.APIStatusError):
            return status_error(SERVICE, None, detail=error.message, code=None, model=request.model,
                                secrets=(self._key,))
        code = error.error_code or error.type
        if error.type == "invalid_request_error" and (error.api_message or "").startswith(_TOO_LONG):
            code = "context_length_exceeded"
        status = None if error.status_code < 400 else error.status_code  # an error event inside a good stream
        return status_error(SERVICE, status, detail=error.api_message or error.message, code=code,
                            model=request.model, retry_after=retry_after_seconds(error.response.headers),
                            secrets=(self._key,), base_url=self.base_url)

    def _transport_failure(self, error: Exception, request: ModelRequest) -> ModelCallError:
        if is_read_timeout(error):
            if request.stream and self.stall_after < self.timeout:
                return stalled(SERVICE, request.model, self.stall_after)
            return timed_out(SERVICE, request.model, self.timeout)
        return unreachable(SERVICE, self.base_url, f"{type(error).__name__}: {error}", (self._key,))


def _params(request: ModelRequest) -> dict[str, Any]:
    system, turns = _conversation(request.messages)
    params: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens, "messages": turns}
    if system:
        params["system"] = system
    tools = [{"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
             for tool in request.tools]
    if request.schema is not None:
        tools.append({"name": request.schema_name, "description": ANSWER_DESCRIPTION, "input_schema": request.schema})
        params["tool_choice"] = {"type": "any"} if request.tools else {"type": "tool", "name": request.schema_name}
    if tools:
        params["tools"] = tools
    return params


def _conversation(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt, and the turns in Anthropic's shape."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the open turn of tool results, while results follow each other
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
            if results is None:
                results = []
                turns.append({"role": "user", "content": results})
            results.append(block)
            continue
        results = None
        if message.role == "assistant" and message.tool_calls:
            text = [{"type": "text", "text": message.content}] if message.content else []
            uses = [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                    for call in message.tool_calls]
            turns.append({"role": "assistant", "content": text + uses})
        else:
            turns.append({"role": message.role, "content": message.content})
    return system, turns


@dataclass
class _Block:
    """One content block: text, or a tool use whose input arrives whole or as pieces of JSON."""

    kind: str
    id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)
    input: dict[str, Any] | None = None


@dataclass
class _Parts:
    """What a reply said so far, block by block; a whole reply is the same parts, all at once."""

    model: str
    blocks: dict[int, _Block] = field(default_factory=dict)
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def whole(cls, message: AnthropicMessage) -> _Parts:
        parts = cls(model=message.model, stop_reason=message.stop_reason)
        usage = message.usage
        parts.input_tokens = (usage.input_tokens + (usage.cache_creation_input_tokens or 0)
                              + (usage.cache_read_input_tokens or 0))
        parts.output_tokens = usage.output_tokens
        for index, block in enumerate(message.content):
            if block.type == "text":
                parts.blocks[index] = _Block("text", pieces=[block.text])
            elif block.type == "tool_use":
                parts.blocks[index] = _Block("tool_use", block.id, block.name, input=dict(block.input))
        return parts

    def add(self, event: RawMessageStreamEvent) -> None:
        """Fold one stream event in."""
        if event.type == "message_start":
            usage = event.message.usage
            self.model = event.message.model or self.model
            self.input_tokens = (usage.input_tokens + (usage.cache_creation_input_tokens or 0)
                                 + (usage.cache_read_input_tokens or 0))
            self.output_tokens = usage.output_tokens
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "text":
                self.blocks[event.index] = _Block("text", pieces=[block.text])
            elif block.type == "tool_use":
                self.blocks[event.index] = _Block("tool_use", block.id, block.name)
        elif event.type == "content_block_delta":
            known = self.blocks.get(event.index)
            if known is None:  # a block of a kind this layer does not use (thinking, server tools)
                return
            if event.delta.type == "text_delta":
                known.pieces.append(event.delta.text)
            elif event.delta.type == "input_json_delta":
                known.pieces.append(event.delta.partial_json)
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.output_tokens = event.usage.output_tokens  # cumulative: the last one is the total
            if event.usage.input_tokens is not None:
                self.input_tokens = (event.usage.input_tokens + (event.usage.cache_creation_input_tokens or 0)
                                     + (event.usage.cache_read_input_tokens or 0))

    def reply(self, request: ModelRequest, latency_s: float) -> ModelReply:
        texts: list[str] = []
        calls: list[ToolCall] = []
        answer: ToolCall | None = None
        for _, block in sorted(self.blocks.items()):
            if block.kind == "text":
                texts.append("".join(block.pieces))
                continue
            call = assembly.tool_call(block.id, block.name,
                                      block.input if block.input is not None else "".join(block.pieces))
            if request.schema is not None and block.name == request.schema_name and answer is None:
                answer = call
            else:
                calls.append(call)
        finish: Finish = _FINISH.get(self.stop_reason or "", "other")
        structured: Any | None = None
        text = "".join(texts)
        if answer is not None:
            text = answer.raw_arguments if answer.raw_arguments is not None else json.dumps(answer.arguments)
            structured = answer.arguments if answer.raw_arguments is None else None
            if finish == "tool_calls" and not calls:
                finish = "stop"  # the answer tool was the only call: the model answered
        input_tokens, output_tokens, estimated = assembly.counted(request, self.input_tokens, self.output_tokens,
                                                                  text, calls)
        return ModelReply(text=text, structured=structured, tool_calls=calls, finish=finish,
                          input_tokens=input_tokens, output_tokens=output_tokens, model=self.model,
                          latency_s=latency_s, estimated=estimated, stop_reason=self.stop_reason)
