"""Loopback stand-ins for the model services agent-council's providers speak to: no key, no internet.

Each stand-in is a real HTTP server on 127.0.0.1 that the official SDK talks to unchanged, answering from a
script of replies and recording what it was sent::

    from model_standins import Failure, OpenAIStandin, Text

    with OpenAIStandin(Failure(429, retry_after=0.1), Text("hello", output_tokens=2)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.calls == 2

- :class:`OpenAIStandin`: ``POST /v1/chat/completions``, ``GET /v1/models`` (``base_url`` ends in ``/v1``);
- :class:`AnthropicStandin`: ``POST /v1/messages``;
- :class:`OllamaStandin`: ``POST /api/chat``, ``GET /api/tags`` (``base_url`` is the Ollama host).

The replies (:mod:`.replies`) are the same for all three; each protocol module only renders them. The shared
server, script and recording are in :mod:`.core`, the bytes of one exchange in :mod:`.wire`. Tests import this
as ``model_standins`` (``tests/support`` is on pytest's path); benchmarks put ``tests/support`` on ``sys.path``.
"""

from .anthropic_messages import AnthropicStandin
from .core import Standin
from .ollama_chat import OllamaStandin
from .openai_chat import OpenAIStandin
from .replies import (
    MAX_STALL_SECONDS,
    Answer,
    Failure,
    Reply,
    Respond,
    Stall,
    Structured,
    Text,
    ToolCall,
    Truncated,
    tokens_in,
)
from .wire import Received

__all__ = [
    "MAX_STALL_SECONDS",
    "Answer",
    "AnthropicStandin",
    "Failure",
    "OllamaStandin",
    "OpenAIStandin",
    "Received",
    "Reply",
    "Respond",
    "Stall",
    "Standin",
    "Structured",
    "Text",
    "ToolCall",
    "Truncated",
    "tokens_in",
]
