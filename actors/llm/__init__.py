"""Model providers: one typed way to call OpenAI (and every server that speaks its protocol), Anthropic and Ollama.

This package's provider layer is plain classes over the official SDKs, with no Ray and no governance: the
gate, the budget, the recording and replay of calls are built on top of it and see only these names.

- :mod:`.types`: :class:`ModelRequest` in, :class:`ModelReply` out, and the :class:`Provider` protocol;
- :mod:`.errors`: :class:`ModelCallError` and one subclass per kind of failure, ``transient`` or not;
- :mod:`.tokens`: the conservative token estimate the budget is checked with before a call;
- :mod:`.clock`: the call's deadline, its stall limit and its progress reports;
- one adapter per SDK: :class:`OpenAIProvider`, :class:`AnthropicProvider`, :class:`OllamaProvider`.

A provider sends a request exactly once (SDK retries are off: every attempt is the caller's, to record), reports
every streamed piece to ``progress``, cuts a stream that goes silent, and never puts a key in an error.
"""

from actors.llm.anthropic_provider import AnthropicProvider
from actors.llm.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextTooLong,
    Kind,
    ModelCallError,
    RateLimited,
    Refused,
    ServerError,
    Stalled,
    TimedOut,
    Unreachable,
)
from actors.llm.ollama_provider import OllamaProvider
from actors.llm.openai_provider import OpenAIProvider
from actors.llm.tokens import estimate_prompt_tokens, worst_case_tokens
from actors.llm.types import Finish, Message, ModelReply, ModelRequest, Progress, Provider, Tool, ToolCall

__all__ = [
    "AnthropicProvider",
    "AuthenticationFailed",
    "BadRequest",
    "ContextTooLong",
    "Finish",
    "Kind",
    "Message",
    "ModelCallError",
    "ModelReply",
    "ModelRequest",
    "OllamaProvider",
    "OpenAIProvider",
    "Progress",
    "Provider",
    "RateLimited",
    "Refused",
    "ServerError",
    "Stalled",
    "TimedOut",
    "Tool",
    "ToolCall",
    "Unreachable",
    "estimate_prompt_tokens",
    "worst_case_tokens",
]
