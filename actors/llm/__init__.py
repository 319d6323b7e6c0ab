"""Model providers: one typed way to call OpenAI (and every server that speaks its protocol), Anthropic and Ollama.

This package's provider layer is plain classes over the official SDKs, with no Ray and no governance: the
gate, the budget, the recording and replay of calls are built on top of it and see only these names.

- :mod:`.types`: :class:`ModelRequest` in, :class:`ModelReply` out, and the :class:`Provider` protocol;
- :mod:`.errors`: :class:`ModelCallError` and one subclass per kind of failure, ``transient`` or not;
- :mod:`.tokens`: the conservative token estimate the budget is checked with before a call;
- :mod:`.clock`: the call's deadline, its stall limit and its progress reports;
- one adapter per SDK: :class:`OpenAIProvider`, :class:`AnthropicProvider`, :class:`OllamaProvider`;
- :mod:`.config`: which model each role uses, prices, fallbacks (the team file's ``[models]``);
- :mod:`.providers`: the providers an agent makes once, from that configuration and the SDKs' variables;
- :mod:`.calls`: :class:`~actors.llm.calls.ModelCalls`, the governed call every agent makes (the gate, the
  budget, the record in the log, the answer from the log when it was paid for already).

A provider sends a request exactly once (SDK retries are off: every attempt is the caller's, to record), reports
every streamed piece to ``progress``, cuts a stream that goes silent, and never puts a key in an error.
"""

import importlib
from typing import Any

_WHERE = {
    "AnthropicProvider": "anthropic_provider", "OllamaProvider": "ollama_provider", "OpenAIProvider": "openai_provider",
    **dict.fromkeys(("AuthenticationFailed", "BadRequest", "ContextTooLong", "Kind", "ModelCallError", "RateLimited",
                     "Refused", "ServerError", "Stalled", "TimedOut", "Unreachable"), "errors"),
    **dict.fromkeys(("estimate_prompt_tokens", "worst_case_tokens"), "tokens"),
    **dict.fromkeys(("Finish", "Message", "ModelReply", "ModelRequest", "Progress", "Provider", "Tool", "ToolCall"),
                    "types"),
}
"""Where each name this package offers lives. They are imported when first used: an SDK takes a second or two to
import, and a command that never calls a model (``council status``) must not pay for it."""

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'actors.llm' has no attribute {name!r}")
    return getattr(importlib.import_module(f"actors.llm.{module}"), name)
