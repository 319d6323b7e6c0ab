"""Ollama's native API on the wire: ``POST /api/chat`` and ``GET /api/tags``.

What the official ``ollama`` SDK reads, and so what this sends:

- a chat streams unless the request says ``"stream": false``: newline-delimited JSON (``application/x-ndjson``),
  one ``{"message": {...}, "done": false}`` object per piece, then a last ``"done": true`` object with
  ``done_reason`` (``stop``, ``length``) and the counts ``prompt_eval_count`` / ``eval_count``;
- ``"stream": false`` gets that last object alone, with the whole message;
- ``format`` (``"json"`` or a JSON schema) changes nothing on the wire: a :class:`Structured` answer is the
  message text; tool calls are ``message.tool_calls`` with the arguments as an object, not a string;
- an error is ``{"error": "..."}`` with the status; the SDK raises ``ollama.ResponseError`` carrying both.
  A route Ollama does not have gets Go's plain-text ``404 page not found``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .core import Route, Standin
from .replies import Failure, Rendered, Reply
from .wire import Exchange, Frame, pieces, retry_headers

MODELS = ("llama3.2:latest", "qwen2.5-coder:7b")
"""The models ``GET /api/tags`` lists unless the stand-in is given others."""

_DONE = {"stop": "stop", "length": "length", "tool": "stop"}

_ERRORS = {400: "invalid request", 401: "unauthorized", 403: "forbidden", 404: "model not found, try pulling it first",
           429: "too many requests", 500: "llama runner process has terminated", 503: "server busy, please try again"}


class OllamaStandin(Standin):
    """Ollama's native API on loopback; give ``base_url`` to ``ollama.Client(host=...)``."""

    stream_content_type = "application/x-ndjson"

    def __init__(self, *replies: Reply, models: tuple[str, ...] = MODELS, default: Reply | None = None,
                 expect_key: str | None = None, io_timeout: float = 10.0) -> None:
        super().__init__(*replies, default=default, expect_key=expect_key, io_timeout=io_timeout)
        self.models = models

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", "/api/chat"): self.generate, ("GET", "/api/tags"): self._list_models}

    def given_key(self, headers: dict[str, str]) -> str | None:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return key if scheme.lower() == "bearer" and key else None

    def refuse_key(self, exchange: Exchange, given: str | None) -> None:
        exchange.send_json(401, {"error": "unauthorized"})

    def send_failure(self, exchange: Exchange, failure: Failure) -> None:
        message = failure.message or _ERRORS.get(failure.status, "request failed")
        exchange.send_json(failure.status, {"error": message}, retry_headers(failure))

    def unknown_route(self, exchange: Exchange) -> None:
        exchange.send(404, b"404 page not found", "text/plain; charset=utf-8")

    def wants_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is not False

    def complete(self, exchange: Exchange, rendered: Rendered) -> None:
        message = {"role": "assistant", "content": rendered.text, **_tool_calls(rendered)}
        exchange.send_json(200, _done(exchange, rendered, message))

    def frames(self, exchange: Exchange, rendered: Rendered) -> Iterator[Frame]:
        if rendered.tool is not None:
            message = {"role": "assistant", "content": "", **_tool_calls(rendered)}
            yield _line({**_head(exchange), "message": message, "done": False}, content=True)
        for piece in pieces(rendered.text):
            message = {"role": "assistant", "content": piece}
            yield _line({**_head(exchange), "message": message, "done": False}, content=True)
        yield _line(_done(exchange, rendered, {"role": "assistant", "content": ""}))

    def _list_models(self, exchange: Exchange) -> None:
        exchange.send_json(200, {"models": [_model(name) for name in self.models]})


def _head(exchange: Exchange) -> dict[str, Any]:
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"model": exchange.request.body.get("model", ""), "created_at": created}


def _done(exchange: Exchange, rendered: Rendered, message: dict[str, Any]) -> dict[str, Any]:
    """The closing object of a chat: the reason it ended and the counts (durations in nanoseconds)."""
    return {**_head(exchange), "message": message, "done": True, "done_reason": _DONE[rendered.ending],
            "total_duration": 10_000_000 * (rendered.input_tokens + rendered.output_tokens) + 1_000_000,
            "load_duration": 1_000_000, "prompt_eval_count": rendered.input_tokens,
            "prompt_eval_duration": 1_000_000 * rendered.input_tokens, "eval_count": rendered.output_tokens,
            "eval_duration": 10_000_000 * rendered.output_tokens}


def _tool_calls(rendered: Rendered) -> dict[str, Any]:
    tool = rendered.tool
    if tool is None:
        return {}
    return {"tool_calls": [{"function": {"name": tool.name, "arguments": tool.arguments}}]}


def _model(name: str) -> dict[str, Any]:
    family = name.split(":")[0].rstrip("0123456789.") or name
    return {"name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 2_019_393_189,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                        "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}


def _line(value: dict[str, Any], content: bool = False) -> Frame:
    return Frame(json.dumps(value).encode() + b"\n", content)
