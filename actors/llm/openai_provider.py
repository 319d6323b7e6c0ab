"""OpenAI chat completions through the official ``openai`` client — OpenAI itself and every server that speaks it.

vLLM, Ray Serve LLM, LM Studio and Ollama's ``/v1`` speak the same protocol: point ``base_url`` at them.

How a :class:`~actors.llm.types.ModelRequest` goes on this wire:

* a schema is OpenAI's strict structured output, ``response_format={"type": "json_schema", "json_schema":
  {"name", "schema", "strict": true}}``, and the answer is the message text (parsed into ``structured``);
* tools are ``{"type": "function", "function": {...}}``; a tool call's arguments come back as JSON text;
* ``max_tokens`` is sent as ``max_completion_tokens`` to OpenAI itself (its reasoning models refuse the older
  name) and as ``max_tokens`` to any other server (which may not know the newer one), unless told otherwise;
* a stream asks for usage (``stream_options.include_usage``): it arrives in a last chunk with no choices;
* a refusal (``message.refusal``) or a content filter ends the reply as ``refused``, with the refusal as text.

The client is made once, with ``max_retries=0``: the SDK would otherwise retry 408/409/429/5xx twice on its
own, unseen, and every attempt must be the caller's, and recorded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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

SERVICE = SERVICES["openai"]
DEFAULT_BASE_URL = "https://api.openai.com/v1"

LimitParameter = Literal["max_tokens", "max_completion_tokens"]

_FINISH: dict[str, Finish] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                              "function_call": "tool_calls", "content_filter": "refused"}


class OpenAIProvider:
    """Calls an OpenAI-compatible chat completions API: one client, reused, never retrying on its own.

    ``api_key`` is required (a server that checks none still needs some string); ``timeout`` bounds a whole
    call and ``stall_after`` the silence between two pieces of a stream, both in seconds (see
    :mod:`actors.llm.clock`). ``limit_parameter`` names the field ``max_tokens`` is sent as; by default
    ``max_completion_tokens`` for api.openai.com and ``max_tokens`` elsewhere.
    """

    name = "openai"

    def __init__(self, *, api_key: str | None, base_url: str = DEFAULT_BASE_URL, timeout: float = 600.0,
                 stall_after: float = 60.0, limit_parameter: LimitParameter | None = None) -> None:
        if not api_key:
            raise missing_key(SERVICE)
        check_limits(timeout, stall_after)
        self.base_url = base_url
        self.timeout = timeout
        self.stall_after = stall_after
        self.limit_parameter: LimitParameter = limit_parameter or (
            "max_completion_tokens" if urlsplit(base_url).hostname == "api.openai.com" else "max_tokens")
        self._key = api_key
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0,
                                     timeout=httpx2.Timeout(**transport_timeouts(timeout, stall_after, False)))

    @classmethod
    def from_env(cls, *, timeout: float = 600.0, stall_after: float = 60.0) -> OpenAIProvider:
        """A provider configured as the SDK would be: ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (default OpenAI)."""
        return cls(api_key=os.environ.get("OPENAI_API_KEY"),
                   base_url=os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, timeout=timeout,
                   stall_after=stall_after)

    def complete(self, request: ModelRequest, *, progress: Progress | None = None) -> ModelReply:
        """Send ``request`` once; the reply, or a :class:`~actors.llm.errors.ModelCallError` (see the module)."""
        clock = CallClock(self.timeout, progress, lambda: timed_out(SERVICE, request.model, self.timeout))
        try:
            parts = self._exchange(request, clock)
        except openai.APIError as error:
            failure = self._failure(error, request)
        else:
            return parts.reply(request, clock.elapsed())
        raise failure  # outside the handler: the SDK's error, whose request holds the key, is not its context

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()

    def _exchange(self, request: ModelRequest, clock: CallClock) -> _Parts:
        params = self._params(request)
        limits = httpx2.Timeout(**transport_timeouts(self.timeout, self.stall_after, request.stream))
        if not request.stream:
            return _Parts.whole(self._client.chat.completions.create(**params, stream=False, timeout=limits),
                                request.model)
        parts = _Parts(model=request.model)
        with self._client.chat.completions.create(**params, stream=True, timeout=limits) as stream:
            for chunk in stream:
                clock.tick()
                parts.add(chunk)
        return parts

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": request.model, "messages": [_message(m) for m in request.messages],
                                  self.limit_parameter: request.max_tokens}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = [{"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
                for tool in request.tools]
        if request.schema is not None:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": request.schema, "strict": True}}
        if request.stream:
            params["stream_options"] = {"include_usage": True}
        return params

    def _failure(self, error: openai.APIError, request: ModelRequest) -> ModelCallError:
        secrets = (self._key,)
        if isinstance(error, openai.APITimeoutError) and is_read_timeout(error):
            if request.stream and self.stall_after < self.timeout:
                return stalled(SERVICE, request.model, self.stall_after)
            return timed_out(SERVICE, request.model, self.timeout)
        if isinstance(error, openai.APIConnectionError):  # timeouts opening a connection included
            cause = error.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else error.message
            return unreachable(SERVICE, self.base_url, detail, secrets)
        body = error.body if isinstance(error.body, dict) else {}
        said = body.get("message")
        detail = said if isinstance(said, str) else error.message
        status = error.status_code if isinstance(error, openai.APIStatusError) else None
        headers = error.response.headers if isinstance(error, openai.APIStatusError) else None
        return status_error(SERVICE, status, detail=detail, code=error.code or error.type, model=request.model,
                            retry_after=retry_after_seconds(headers), secrets=secrets, base_url=self.base_url)


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content or None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": _arguments(call)}}
            for call in message.tool_calls]}
    return {"role": message.role, "content": message.content}


def _arguments(call: ToolCall) -> str:
    return call.raw_arguments if call.raw_arguments is not None else json.dumps(call.arguments)


@dataclass
class _Call:
    """A tool call being assembled from stream deltas (the arguments come in pieces)."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Parts:
    """What the first choice of a reply said so far; a whole reply is the same parts, all at once."""

    model: str
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def whole(cls, completion: ChatCompletion, asked: str) -> _Parts:
        parts = cls(model=completion.model or asked)
        if completion.usage is not None:
            parts.input_tokens = completion.usage.prompt_tokens
            parts.output_tokens = completion.usage.completion_tokens
        choice = next((c for c in completion.choices if c.index == 0), None)
        if choice is None:
            return parts
        message = choice.message
        parts.text.append(message.content or "")
        parts.refusal.append(message.refusal or "")
        for index, call in enumerate(message.tool_calls or []):
            if call.type == "function":
                parts.calls[index] = _Call(call.id, call.function.name, [call.function.arguments])
        parts.finish_reason = choice.finish_reason
        return parts

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one stream chunk in: content and refusal pieces, tool-call pieces, the finish, the usage."""
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.input_tokens = chunk.usage.prompt_tokens
            self.output_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.index != 0:  # only one choice is ever asked for
                continue
            delta = choice.delta
            self.text.append(delta.content or "")
            self.refusal.append(delta.refusal or "")
            for piece in delta.tool_calls or []:
                call = self.calls.setdefault(piece.index, _Call())
                call.id = piece.id or call.id
                if piece.function is not None:
                    call.name += piece.function.name or ""
                    call.arguments.append(piece.function.arguments or "")
            self.finish_reason = choice.finish_reason or self.finish_reason

    def reply(self, request: ModelRequest, latency_s: float) -> ModelReply:
        text, refusal = "".join(self.text), "".join(self.refusal)
        calls = [assembly.tool_call(call.id or assembly.derived_call_id(index, call.name, {}), call.name,
                                    "".join(call.arguments)) for index, call in sorted(self.calls.items())]
        finish: Finish = "refused" if refusal else _FINISH.get(self.finish_reason or "", "other")
        structured = assembly.parse_json(text) if request.schema is not None and text else None
        input_tokens, output_tokens, estimated = assembly.counted(request, self.input_tokens, self.output_tokens,
                                                                  text or refusal, calls)
        return ModelReply(text=text or refusal, structured=structured, tool_calls=calls, finish=finish,
                          input_tokens=input_tokens, output_tokens=output_tokens, model=self.model,
                          latency_s=latency_s, estimated=estimated, stop_reason=self.finish_reason)
