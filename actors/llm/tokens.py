"""A conservative count of a request's tokens, made before the request is sent and without any tokenizer.

The budget must be checked before money is spent, so a call's worst case is needed before the provider has
counted anything. The real tokenizers are not available offline (``tiktoken`` downloads its tables on first
use, and a call may not reach the internet for anything but the provider), so this is an estimate, and it is
meant to err high:

* text counts as **one token per 3 bytes of UTF-8, rounded up**. English prose and source code run at about 4
  characters (4 bytes) per token in the OpenAI and Anthropic tokenizers, so this over-counts them by about a
  third. Text outside ASCII is counted by bytes, not characters: accented Latin (2 bytes a letter) stays
  over-counted, and CJK (3 bytes a character, about one token each) comes out about right. It can under-count
  only text that tokenizes worse than 3 bytes a token: long runs of digits, random base64 or hex, unusual
  symbols — rare in prompts, and bounded by the per-message overheads below;
* every message adds :data:`MESSAGE_OVERHEAD` tokens (role markers and separators: OpenAI documents 3 or 4);
* a request adds :data:`REQUEST_OVERHEAD` (the priming of the reply), and :data:`TOOLS_OVERHEAD` more when it
  offers tools or asks for a schema: Anthropic adds a hidden tool-use system prompt of about 350 tokens, and
  OpenAI a smaller one for function definitions and structured output.

A provider's own usage figures replace this estimate after the call; the estimate stands only where a
provider sent none (and the reply then says ``estimated=True``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from actors.llm.types import Message, ModelRequest, Tool, ToolCall

BYTES_PER_TOKEN = 3
"""Fewer bytes per token than real text has (about 4), so that the estimate is high, not low."""

MESSAGE_OVERHEAD = 8
"""Tokens counted for each message besides its text: at least twice what providers document (3 or 4)."""

REQUEST_OVERHEAD = 16
"""Tokens counted once per request (the reply's priming)."""

TOOLS_OVERHEAD = 400
"""Tokens counted once when a request offers tools or asks for a schema (Anthropic's hidden prompt is ~350)."""


def text_tokens(text: str) -> int:
    """The estimate for one text: its UTF-8 bytes divided by :data:`BYTES_PER_TOKEN`, rounded up."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def json_tokens(value: Any) -> int:
    """The estimate for a JSON value, encoded with spaces after separators (a little more than compact JSON)."""
    return text_tokens(json.dumps(value, ensure_ascii=False))


def estimate_prompt_tokens(messages: Sequence[Message], tools: Sequence[Tool] = (),
                           schema: dict[str, Any] | None = None) -> int:
    """An upper estimate of the input tokens of a request with these messages, tools and schema (see the module)."""
    total = REQUEST_OVERHEAD + (TOOLS_OVERHEAD if tools or schema is not None else 0)
    for message in messages:
        total += MESSAGE_OVERHEAD + text_tokens(message.content) + _calls_tokens(message.tool_calls)
        if message.tool_call_id is not None:
            total += text_tokens(message.tool_call_id)
    for tool in tools:
        total += text_tokens(tool.name) + text_tokens(tool.description) + json_tokens(tool.parameters)
    if schema is not None:
        total += json_tokens(schema)
    return total


def estimate_output_tokens(text: str, tool_calls: Iterable[ToolCall] = ()) -> int:
    """An upper estimate of the output tokens of a reply, for a provider that did not count them."""
    return text_tokens(text) + _calls_tokens(tool_calls)


def worst_case_tokens(request: ModelRequest) -> int:
    """The most tokens ``request`` can cost: its estimated prompt plus every output token it allows."""
    return estimate_prompt_tokens(request.messages, request.tools, request.schema) + request.max_tokens


def _calls_tokens(calls: Iterable[ToolCall]) -> int:
    return sum(text_tokens(call.id) + text_tokens(call.name) + json_tokens(call.arguments) for call in calls)
