"""OpenAI's chat completions on the wire: ``POST /v1/chat/completions`` and ``GET /v1/models``.

What the official ``openai`` SDK reads, and so what this sends:

- a whole reply is a ``chat.completion`` object with one choice and ``usage`` (prompt, completion, total);
- ``stream: true`` gets Server-Sent Events, ``data: {chat.completion.chunk}`` each, ending ``data: [DONE]``: a
  first chunk with the role, content or tool-call argument deltas, a chunk with ``finish_reason``, and with
  ``stream_options.include_usage`` a last chunk with no choices and the usage (every earlier chunk then carries
  ``"usage": null``);
- an error is ``{"error": {"message", "type", "param", "code"}}`` with the status, plus ``retry-after`` when
  scripted; the SDK picks its exception from the status (401 AuthenticationError, 429 RateLimitError, ...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from .core import Route, Standin
from .replies import Failure, Rendered, Reply
from .wire import Exchange, Frame, pieces, retry_headers

MODELS = ("gpt-4o-mini", "gpt-4o")
"""The models ``GET /v1/models`` lists unless the stand-in is given others."""

_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}

_ERRORS: dict[int, tuple[str, str | None, str]] = {  # status: (type, code, message)
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not "
          "supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    413: ("invalid_request_error", None, "Request entity too large."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again shortly."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class OpenAIStandin(Standin):
    """OpenAI's chat completions API on loopback; give ``base_url`` (which ends in ``/v1``) to ``openai.OpenAI``."""

    def __init__(self, *replies: Reply, models: tuple[str, ...] = MODELS, default: Reply | None = None,
                 expect_key: str | None = None, io_timeout: float = 10.0) -> None:
        super().__init__(*replies, default=default, expect_key=expect_key, io_timeout=io_timeout)
        self.models = models

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", "/v1/chat/completions"): self.generate, ("GET", "/v1/models"): self._list_models}

    def given_key(self, headers: dict[str, str]) -> str | None:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return key if scheme.lower() == "bearer" and key else None

    def refuse_key(self, exchange: Exchange, given: str | None) -> None:
        if given is None:
            _send_error(exchange, 401, "invalid_request_error", None, "You didn't provide an API key. You need to "
                        "provide your API key in an Authorization header using Bearer auth (i.e. Authorization: "
                        "Bearer YOUR_KEY).")
            return
        shown = f"{given[:3]}*****{given[-4:]}" if len(given) > 8 else "*****"
        _send_error(exchange, 401, "invalid_request_error", "invalid_api_key", f"Incorrect API key provided: "
                    f"{shown}. You can find your API key at https://platform.openai.com/account/api-keys.")

    def send_failure(self, exchange: Exchange, failure: Failure) -> None:
        fallback = "server_error" if failure.status >= 500 else "invalid_request_error"
        kind, code, message = _ERRORS.get(failure.status, (fallback, None, "Request failed."))
        _send_error(exchange, failure.status, kind, failure.code or code, failure.message or message,
                    retry_headers(failure))

    def unknown_route(self, exchange: Exchange) -> None:
        request = exchange.request
        _send_error(exchange, 404, "invalid_request_error", None, f"Invalid URL ({request.method} {request.path})")

    def wants_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def complete(self, exchange: Exchange, rendered: Rendered) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": rendered.text or None, "refusal": None,
                                   "annotations": []}
        if rendered.tool is not None:
            message["tool_calls"] = [{"id": _call_id(exchange, rendered), "type": "function", "function": {
                "name": rendered.tool.name, "arguments": json.dumps(rendered.tool.arguments)}}]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH[rendered.ending]}
        reply = {**_envelope(exchange, "chat.completion"), "choices": [choice], "usage": _usage(rendered)}
        exchange.send_json(200, reply, {"x-request-id": _request_id(exchange)})

    def frames(self, exchange: Exchange, rendered: Rendered) -> Iterator[Frame]:
        body = exchange.request.body
        options = body.get("stream_options") or {}
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        envelope = {**_envelope(exchange, "chat.completion.chunk"), **({"usage": None} if with_usage else {})}

        def chunk(delta: dict[str, Any], finish: str | None = None, content: bool = False) -> Frame:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _event({**envelope, "choices": [choice]}, content)

        tool = rendered.tool
        if tool is None:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in pieces(rendered.text):
                yield chunk({"content": piece}, content=True)
        else:
            call = {"index": 0, "id": _call_id(exchange, rendered), "type": "function",
                    "function": {"name": tool.name, "arguments": ""}}
            yield chunk({"role": "assistant", "content": None, "tool_calls": [call]})
            for piece in pieces(json.dumps(tool.arguments)):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, content=True)
        yield chunk({}, _FINISH[rendered.ending])
        if with_usage:
            yield _event({**envelope, "choices": [], "usage": _usage(rendered)})
        yield Frame(b"data: [DONE]\n\n")

    def _list_models(self, exchange: Exchange) -> None:
        data = [{"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
                for name in self.models]
        exchange.send_json(200, {"object": "list", "data": data})


def _send_error(exchange: Exchange, status: int, kind: str, code: str | None, message: str,
                headers: dict[str, str] | None = None) -> None:
    error = {"message": message, "type": kind, "param": None, "code": code}
    exchange.send_json(status, {"error": error}, {"x-request-id": _request_id(exchange), **(headers or {})})


def _request_id(exchange: Exchange) -> str:
    return f"req_standin{exchange.number:06d}"


def _envelope(exchange: Exchange, kind: str) -> dict[str, Any]:
    body = exchange.request.body
    return {"id": f"chatcmpl-standin{exchange.number:06d}", "object": kind, "created": int(time.time()),
            "model": body.get("model", ""), "service_tier": "default", "system_fingerprint": "fp_standin"}


def _call_id(exchange: Exchange, rendered: Rendered) -> str:
    tool = rendered.tool
    return tool.call_id if tool is not None and tool.call_id else f"call_standin{exchange.number:06d}"


def _usage(rendered: Rendered) -> dict[str, Any]:
    return {"prompt_tokens": rendered.input_tokens, "completion_tokens": rendered.output_tokens,
            "total_tokens": rendered.input_tokens + rendered.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _event(value: dict[str, Any], content: bool = False) -> Frame:
    return Frame(b"data: " + json.dumps(value).encode() + b"\n\n", content)
