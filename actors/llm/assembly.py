"""Turning what a provider sent back into the parts of a :class:`~actors.llm.types.ModelReply`.

What every adapter needs once the pieces are in: JSON read as leniently as models write it, a tool call's
arguments kept even when they are not valid JSON, and token counts that fall back to the conservative estimate
(flagged as such) when the provider counted nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from actors.llm import tokens
from actors.llm.types import ModelRequest, ToolCall


def parse_json(text: str) -> Any | None:
    """``text`` parsed as JSON, or None when it is not JSON (a cut-off or malformed answer).

    Raw control characters are accepted inside strings: grammar-constrained local models write raw newlines
    there, and the value is still the one the model meant.
    """
    try:
        return json.loads(text, strict=False)
    except ValueError:
        return None


def tool_call(call_id: str, name: str, arguments: str | dict[str, Any] | None) -> ToolCall:
    """A tool call from its arguments as sent: a JSON text (OpenAI, Anthropic streams) or an object (the others).

    Empty arguments are an empty object. Arguments that are not a JSON object are kept verbatim in
    ``raw_arguments`` (with empty ``arguments``) so that nothing the model wrote, and paid for, is lost.
    """
    if isinstance(arguments, dict):
        return ToolCall(id=call_id, name=name, arguments=arguments)
    if arguments is None or not arguments.strip():
        return ToolCall(id=call_id, name=name, arguments={})
    parsed = parse_json(arguments)
    if isinstance(parsed, dict):
        return ToolCall(id=call_id, name=name, arguments=parsed)
    return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=arguments)


def derived_call_id(index: int, name: str, arguments: dict[str, Any]) -> str:
    """An id for a tool call whose provider gives none (Ollama): the same for the same call on every run."""
    digest = hashlib.sha256(json.dumps([index, name, arguments], sort_keys=True).encode()).hexdigest()
    return f"call_{digest[:16]}"


def counted(request: ModelRequest, input_tokens: int | None, output_tokens: int | None, text: str,
            calls: list[ToolCall]) -> tuple[int, int, bool]:
    """``(input, output, estimated)``: the provider's counts, or the estimate for any count it did not send."""
    estimated = input_tokens is None or output_tokens is None
    if input_tokens is None:
        input_tokens = tokens.estimate_prompt_tokens(request.messages, request.tools, request.schema)
    if output_tokens is None:
        output_tokens = tokens.estimate_output_tokens(text, calls)
    return input_tokens, output_tokens, estimated
