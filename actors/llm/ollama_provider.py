"""Ollama's native ``/api/chat`` through the official ``ollama`` client.

How a :class:`~actors.llm.types.ModelRequest` goes on this wire:

* a schema is ``format=<the schema>`` (Ollama constrains the output to it); the answer is the message text,
  parsed into ``structured``;
* ``max_tokens`` is ``options.num_predict``, ``temperature`` is ``options.temperature``;
* tools are ``{"type": "function", "function": {...}}``; tool calls come back with their arguments as an
  object and *without ids*, so each is given one derived from its position, name and arguments (the same on
  every run); a tool result is sent with the ``tool_name`` of the call it answers;
* ``done_reason`` ``length`` ends the reply as length; ``stop`` as tool_calls when there are calls, else stop.

The ``ollama`` client has no timeout of its own (it would wait for ever), so both limits are always set. Its
timeout is fixed per client, so there are two clients, made once: one for whole replies (reads wait
``timeout``) and one for streams (reads wait ``stall_after``). Its errors carry the status but not the
headers, so an Ollama 429 has no ``retry_after``. With no ``api_key`` the client itself sends
``OLLAMA_API_KEY`` when that is set (it is then scrubbed from messages like a configured key).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import ollama

from actors.llm import assembly
from actors.llm.clock import CallClock, check_limits, is_read_timeout, transport_timeouts
from actors.llm.errors import SERVICES, ModelCallError, stalled, status_error, timed_out, unreachable
from actors.llm.types import Finish, Message, ModelReply, ModelRequest, Progress, ToolCall

SERVICE = SERVICES["ollama"]
DEFAULT_BASE_URL = "http://127.0.0.1:11434"


class OllamaProvider:
    """Calls an Ollama server's native chat API: two clients (whole and streamed), reused.

    ``base_url`` is the Ollama host; ``api_key``, when given, is sent as ``Authorization: Bearer`` (a local
    Ollama checks none; a hosted one may). ``timeout`` bounds a whole call and ``stall_after`` the silence
    between two pieces of a stream, both in seconds (see :mod:`actors.llm.clock`).
    """

    name = "ollama"

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None, timeout: float = 600.0,
                 stall_after: float = 60.0) -> None:
        check_limits(timeout, stall_after)
        self.base_url = base_url
        self.timeout = timeout
        self.stall_after = stall_after
        self._secrets = tuple(key for key in (api_key, os.environ.get("OLLAMA_API_KEY")) if key)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._whole = ollama.Client(host=base_url, headers=headers,
                                    timeout=httpx.Timeout(**transport_timeouts(timeout, stall_after, False)))
        self._streaming = ollama.Client(host=base_url, headers=headers,
                                        timeout=httpx.Timeout(**transport_timeouts(timeout, stall_after, True)))

    @classmethod
    def from_env(cls, *, timeout: float = 600.0, stall_after: float = 60.0) -> OllamaProvider:
        """A provider configured as the SDK would be: ``OLLAMA_HOST`` (default local) and ``OLLAMA_API_KEY``."""
        return cls(base_url=os.environ.get("OLLAMA_HOST") or DEFAULT_BASE_URL,
                   api_key=os.environ.get("OLLAMA_API_KEY") or None, timeout=timeout, stall_after=stall_after)

    def complete(self, request: ModelRequest, *, progress: Progress | None = None) -> ModelReply:
        """Send ``request`` once; the reply, or a :class:`~actors.llm.errors.ModelCallError` (see the module)."""
        clock = CallClock(self.timeout, progress, lambda: timed_out(SERVICE, request.model, self.timeout))
        failure: ModelCallError
        try:
            parts = self._exchange(request, clock)
        except ollama.ResponseError as error:
            status = error.status_code if error.status_code >= 400 else None  # -1: an error line inside a stream
            failure = status_error(SERVICE, status, detail=str(error.error), code=None, model=request.model,
                                   secrets=self._secrets, base_url=self.base_url)
        except ConnectionError as error:  # the client's own, for a refused connection
            failure = unreachable(SERVICE, self.base_url, str(error), self._secrets)
        except httpx.TransportError as error:
            failure = self._transport_failure(error, request)
        else:
            return parts.reply(request, clock.elapsed())
        raise failure  # outside the handler: the client's error, whose request holds the key, is not its context

    def _exchange(self, request: ModelRequest, clock: CallClock) -> _Parts:
        params = _params(request)
        parts = _Parts(model=request.model)
        if not request.stream:
            parts.add(self._whole.chat(**params, stream=False))
            return parts
        # The client returns a generator; closing it closes its HTTP response, even when a tick raises.
        pieces = cast(Generator[ollama.ChatResponse, None, None], self._streaming.chat(**params, stream=True))
        with contextlib.closing(pieces):
            for piece in pieces:
                clock.tick()
                parts.add(piece)
        return parts

    def close(self) -> None:
        """Close both clients' connection pools."""
        self._whole.close()  # type: ignore[no-untyped-call]  # the ollama client's close is not annotated
        self._streaming.close()  # type: ignore[no-untyped-call]

    def _transport_failure(self, error: httpx.TransportError, request: ModelRequest) -> ModelCallError:
        if is_read_timeout(error):
            if request.stream and self.stall_after < self.timeout:
                return stalled(SERVICE, request.model, self.stall_after)
            return timed_out(SERVICE, request.model, self.timeout)
        return unreachable(SERVICE, self.base_url, f"{type(error).__name__}: {error}", self._secrets)


def _params(request: ModelRequest) -> dict[str, Any]:
    options: dict[str, Any] = {"num_predict": request.max_tokens}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    params: dict[str, Any] = {"model": request.model, "messages": _messages(request.messages), "options": options}
    if request.tools:
        params["tools"] = [{"type": "function", "function": {
            "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
            for tool in request.tools]
    if request.schema is not None:
        params["format"] = request.schema
    return params


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool call id -> tool name, from the assistant turns so far
    sent: list[dict[str, Any]] = []
    for message in messages:
        turn: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            turn["tool_calls"] = [{"function": {"name": call.name, "arguments": call.arguments}}
                                  for call in message.tool_calls]
            names.update((call.id, call.name) for call in message.tool_calls)
        if message.role == "tool" and message.tool_call_id in names:
            turn["tool_name"] = names[message.tool_call_id]
        sent.append(turn)
    return sent


@dataclass
class _Parts:
    """What a reply said so far; a whole reply is one part, a stream many (the last one has the counts)."""

    model: str
    text: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    done_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def add(self, part: ollama.ChatResponse) -> None:
        """Fold one response part in."""
        self.model = part.model or self.model
        self.text.append(part.message.content or "")
        for call in part.message.tool_calls or []:
            arguments = dict(call.function.arguments)
            call_id = assembly.derived_call_id(len(self.calls), call.function.name, arguments)
            self.calls.append(assembly.tool_call(call_id, call.function.name, arguments))
        if part.done:
            self.done_reason = part.done_reason
            self.input_tokens = part.prompt_eval_count
            self.output_tokens = part.eval_count

    def reply(self, request: ModelRequest, latency_s: float) -> ModelReply:
        text = "".join(self.text)
        if self.done_reason == "length":
            finish: Finish = "length"
        elif self.done_reason == "stop":
            finish = "tool_calls" if self.calls else "stop"
        else:
            finish = "other"
        structured = assembly.parse_json(text) if request.schema is not None and text else None
        input_tokens, output_tokens, estimated = assembly.counted(request, self.input_tokens, self.output_tokens,
                                                                  text, self.calls)
        return ModelReply(text=text, structured=structured, tool_calls=list(self.calls), finish=finish,
                          input_tokens=input_tokens, output_tokens=output_tokens, model=self.model,
                          latency_s=latency_s, estimated=estimated, stop_reason=self.done_reason)
