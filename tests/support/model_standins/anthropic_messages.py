"""Anthropic's messages API on the wire: ``POST /v1/messages``.

What the official ``anthropic`` SDK reads, and so what this sends:

- a whole reply is a ``message`` object: ``content`` blocks (``text``, ``tool_use``), ``stop_reason``
  (``end_turn``, ``max_tokens``, ``tool_use``) and ``usage.input_tokens`` / ``usage.output_tokens``;
- ``stream: true`` gets Server-Sent Events, each with an ``event:`` name and the same ``type`` in its data:
  ``message_start`` (input tokens), ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``, or
  ``input_json_delta`` pieces of a tool's input), ``content_block_stop``, ``message_delta`` (stop reason, output
  tokens), ``message_stop``;
- a request that forces a tool (``tool_choice`` ``{"type": "tool", "name": ...}``) gets a :class:`Structured`
  answer as that tool's input: the usual way to ask Claude for JSON that fits a schema;
- an error is ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the status, a
  ``request-id`` header, and ``retry-after`` when scripted. The key is read from ``x-api-key`` or from
  ``Authorization: Bearer`` (the service takes either, and SDK versions differ in which they send).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .core import Route, Standin, prompt_tokens
from .replies import Answer, Failure, Rendered, render
from .wire import Exchange, Frame, pieces, retry_headers

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}

_ERRORS: dict[int, tuple[str, str]] = {  # status: (type, message)
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization. Please try again "
                              "later."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicStandin(Standin):
    """Anthropic's messages API on loopback; give ``base_url`` to ``anthropic.Anthropic``."""

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", "/v1/messages"): self.generate}

    def given_key(self, headers: dict[str, str]) -> str | None:
        if "x-api-key" in headers:
            return headers["x-api-key"]
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return key if scheme.lower() == "bearer" and key else None

    def refuse_key(self, exchange: Exchange, given: str | None) -> None:
        message = "x-api-key header is required" if given is None else "invalid x-api-key"
        _send_error(exchange, 401, "authentication_error", message)

    def send_failure(self, exchange: Exchange, failure: Failure) -> None:
        fallback = "api_error" if failure.status >= 500 else "invalid_request_error"
        kind, message = _ERRORS.get(failure.status, (fallback, "Request failed."))
        _send_error(exchange, failure.status, failure.code or kind, failure.message or message,
                    retry_headers(failure))

    def wants_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def render(self, answer: Answer, body: dict[str, Any]) -> Rendered:
        return render(answer, prompt_tokens(body), structured_as_tool=_forced_tool(body))

    def complete(self, exchange: Exchange, rendered: Rendered) -> None:
        content: list[dict[str, Any]] = []
        if rendered.text or rendered.tool is None:
            content.append({"type": "text", "text": rendered.text})
        if rendered.tool is not None:
            content.append({**_tool_block(exchange, rendered), "input": rendered.tool.arguments})
        message = {**_message(exchange), "content": content, "stop_reason": _STOP[rendered.ending],
                   "usage": _usage(rendered.input_tokens, rendered.output_tokens)}
        exchange.send_json(200, message, {"request-id": _request_id(exchange)})

    def frames(self, exchange: Exchange, rendered: Rendered) -> Iterator[Frame]:
        start = {**_message(exchange), "content": [], "stop_reason": None,
                 "usage": _usage(rendered.input_tokens, 1)}
        yield _event("message_start", {"message": start})
        if rendered.tool is None:
            yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            yield _event("ping", {})
            for piece in pieces(rendered.text):
                yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                             content=True)
        else:
            block = {**_tool_block(exchange, rendered), "input": {}}
            yield _event("content_block_start", {"index": 0, "content_block": block})
            yield _event("ping", {})
            for piece in ["", *pieces(json.dumps(rendered.tool.arguments))]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _event("content_block_delta", {"index": 0, "delta": delta}, content=bool(piece))
        yield _event("content_block_stop", {"index": 0})
        ending = {"stop_reason": _STOP[rendered.ending], "stop_sequence": None}
        yield _event("message_delta", {"delta": ending, "usage": {"output_tokens": rendered.output_tokens}})
        yield _event("message_stop", {})


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The tool a request forces the model to call, if it forces one."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return str(choice["name"])
    tools = body.get("tools")
    if choice.get("type") == "any" and isinstance(tools, list) and len(tools) == 1:
        name = tools[0].get("name") if isinstance(tools[0], dict) else None
        return name if isinstance(name, str) else None
    return None


def _send_error(exchange: Exchange, status: int, kind: str, message: str,
                headers: dict[str, str] | None = None) -> None:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": _request_id(exchange)}
    exchange.send_json(status, body, {"request-id": _request_id(exchange), **(headers or {})})


def _request_id(exchange: Exchange) -> str:
    return f"req_standin{exchange.number:06d}"


def _message(exchange: Exchange) -> dict[str, Any]:
    return {"id": f"msg_standin{exchange.number:06d}", "type": "message", "role": "assistant",
            "model": exchange.request.body.get("model", ""), "stop_sequence": None}


def _tool_block(exchange: Exchange, rendered: Rendered) -> dict[str, Any]:
    tool = rendered.tool
    assert tool is not None
    return {"type": "tool_use", "id": tool.call_id or f"toolu_standin{exchange.number:06d}", "name": tool.name}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "service_tier": "standard"}


def _event(name: str, data: dict[str, Any], content: bool = False) -> Frame:
    payload = json.dumps({"type": name, **data})
    return Frame(f"event: {name}\ndata: {payload}\n\n".encode(), content)
