"""The provider adapters, each driven through its real SDK against its loopback stand-in.

Most behaviours are the same promise for every provider, so those tests run once per provider (a :class:`Kit`
says how to reach each); what only one provider does is tested below them. Every test asserts on what the
stand-in was scripted with or on what it received, so an adapter that invents, drops or mis-sends anything fails.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from model_standins import (
    AnthropicStandin,
    Failure,
    OllamaStandin,
    OpenAIStandin,
    Stall,
    Standin,
    Structured,
    Text,
    ToolCall,
    Truncated,
)

from actors.llm import (
    AnthropicProvider,
    AuthenticationFailed,
    BadRequest,
    ContextTooLong,
    Message,
    ModelRequest,
    OllamaProvider,
    OpenAIProvider,
    Provider,
    RateLimited,
    Refused,
    ServerError,
    Stalled,
    TimedOut,
    Tool,
    Unreachable,
)
from actors.llm import ToolCall as Call

ASK = [Message(role="system", content="You review diffs."), Message(role="user", content="Merge this diff?")]
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["approve", "reject"]}, "score": {"type": "integer"}},
    "required": ["verdict", "score"],
    "additionalProperties": False,
}
VERDICT = {"verdict": "reject", "score": 3}
WEATHER = Tool(name="get_weather", description="The weather in a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string"}}, "required": ["city"]})
WEATHER_ARGS = {"city": "Lyon", "units": "metric"}
KEY = "kx-provider-test-7f3a9c21e4b8"  # no known secret shape: only the adapters' own cleaning can hide it


def request(model: str, **fields: Any) -> ModelRequest:
    return ModelRequest(**{"model": model, "messages": ASK, "max_tokens": 64, **fields})


@dataclass(frozen=True)
class Kit:
    """How to reach one provider's stand-in, and what its wire looks like."""

    name: str
    cls: type[OpenAIProvider | AnthropicProvider | OllamaProvider]
    standin: type[Standin]
    model: str
    framing: int
    """Pieces a streamed text reply has besides one per word (role, finish, usage, block events...)."""
    key_variable: str
    url_variable: str
    schema_sent: Callable[[dict[str, Any]], None]
    """Asserts that a request body asked for VERDICT_SCHEMA in the provider's strict mode."""
    tools_sent: Callable[[dict[str, Any]], None]
    """Asserts that a request body offered the WEATHER tool in the provider's shape."""

    def make(self, server: Standin, key: str | None = KEY, **options: Any) -> Provider:
        """The provider, pointed at ``server``: short limits unless ``options`` say otherwise."""
        return self.cls(api_key=key, base_url=server.base_url, **{"timeout": 10.0, "stall_after": 5.0, **options})

    def at(self, base_url: str, **options: Any) -> Provider:
        """The provider, pointed at ``base_url``."""
        return self.cls(api_key=KEY, base_url=base_url, **{"timeout": 5.0, "stall_after": 2.0, **options})


def _openai(server: Standin, **options: Any) -> OpenAIProvider:
    return OpenAIProvider(api_key=KEY, base_url=server.base_url, **{"timeout": 10.0, "stall_after": 5.0, **options})


def _anthropic(server: Standin) -> AnthropicProvider:
    return AnthropicProvider(api_key=KEY, base_url=server.base_url, timeout=10, stall_after=5)


def _ollama(server: Standin) -> OllamaProvider:
    return OllamaProvider(base_url=server.base_url, timeout=10, stall_after=5)


def _openai_schema(body: dict[str, Any]) -> None:
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}}


def _anthropic_schema(body: dict[str, Any]) -> None:
    [tool] = body["tools"]
    assert (tool["name"], tool["input_schema"]) == ("verdict", VERDICT_SCHEMA)
    assert body["tool_choice"] == {"type": "tool", "name": "verdict"}


def _ollama_schema(body: dict[str, Any]) -> None:
    assert body["format"] == VERDICT_SCHEMA


def _function_tools(body: dict[str, Any]) -> None:
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.", "parameters": WEATHER.parameters}}]


def _anthropic_tools(body: dict[str, Any]) -> None:
    assert body["tools"] == [{"name": "get_weather", "description": "The weather in a city.",
                              "input_schema": WEATHER.parameters}]
    assert "tool_choice" not in body


KITS = [
    Kit("openai", OpenAIProvider, OpenAIStandin, "gpt-4o-mini", 3, "OPENAI_API_KEY", "OPENAI_BASE_URL",
        _openai_schema, _function_tools),
    Kit("anthropic", AnthropicProvider, AnthropicStandin, "claude-standin-1", 5, "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL", _anthropic_schema, _anthropic_tools),
    Kit("ollama", OllamaProvider, OllamaStandin, "llama3.2", 1, "OLLAMA_API_KEY", "OLLAMA_HOST", _ollama_schema,
        _function_tools),
]
KEYED = [kit for kit in KITS if kit.name != "ollama"]  # the providers that cannot work without a key

every_provider = pytest.mark.parametrize("kit", KITS, ids=lambda kit: kit.name)
keyed_providers = pytest.mark.parametrize("kit", KEYED, ids=lambda kit: kit.name)
both_ways = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the same promise from every provider ---------------------------------------------------------------------


@every_provider
@both_ways
def test_text_reply_carries_the_text_the_usage_and_the_model(kit: Kit, stream: bool) -> None:
    with kit.standin(Text("Merge it, the tests cover it.", input_tokens=41, output_tokens=7), expect_key=KEY) as s:
        reply = kit.make(s).complete(request(kit.model, stream=stream))
        body = s.requests[0].body

    assert reply.text == "Merge it, the tests cover it."
    assert (reply.input_tokens, reply.output_tokens, reply.estimated) == (41, 7, False)
    assert (reply.finish, reply.model, reply.tool_calls, reply.structured) == ("stop", kit.model, [], None)
    assert 0 < reply.latency_s < 5
    assert body.get("stream", False) is stream


@every_provider
def test_a_stream_reports_progress_once_per_piece(kit: Kit) -> None:
    text = "one two three four five"
    with kit.standin(Text(text)) as server:
        pieces: list[float] = []
        reply = kit.make(server).complete(request(kit.model), progress=lambda: pieces.append(time.monotonic()))

    assert reply.text == text
    assert len(pieces) == len(text.split()) + kit.framing
    assert pieces == sorted(pieces)
    with kit.standin(Text(text)) as server:
        kit.make(server).complete(request(kit.model, stream=False), progress=lambda: pieces.append(0.0))
    assert len(pieces) == len(text.split()) + kit.framing  # a whole reply is no stream: nothing to report


@every_provider
@both_ways
def test_structured_output_uses_the_native_strict_mode_and_is_parsed(kit: Kit, stream: bool) -> None:
    with kit.standin(Structured(VERDICT)) as server:
        reply = kit.make(server).complete(request(kit.model, schema=VERDICT_SCHEMA, schema_name="verdict",
                                                  stream=stream))
        body = server.requests[0].body

    kit.schema_sent(body)
    assert reply.structured == VERDICT and json.loads(reply.text) == VERDICT
    assert (reply.finish, reply.tool_calls) == ("stop", [])


@every_provider
@both_ways
def test_tool_calls_come_back_typed_with_their_arguments(kit: Kit, stream: bool) -> None:
    with kit.standin(ToolCall("get_weather", WEATHER_ARGS, call_id="call_given_7")) as server:
        reply = kit.make(server).complete(request(kit.model, tools=[WEATHER], stream=stream))
        body = server.requests[0].body

    kit.tools_sent(body)
    [call] = reply.tool_calls
    assert (call.name, call.arguments, call.raw_arguments) == ("get_weather", WEATHER_ARGS, None)
    if kit.name == "ollama":  # Ollama gives no ids: one is derived
        assert call.id.startswith("call_") and len(call.id) > len("call_")
    else:
        assert call.id == "call_given_7"
    assert reply.finish == "tool_calls"


@every_provider
@both_ways
def test_a_cut_off_answer_is_reported_as_length(kit: Kit, stream: bool) -> None:
    with kit.standin(Truncated("The change is fine but", output_tokens=64)) as server:
        reply = kit.make(server).complete(request(kit.model, stream=stream))

    assert (reply.finish, reply.text, reply.output_tokens) == ("length", "The change is fine but", 64)


@every_provider
def test_429_is_rate_limited_with_its_wait_after_exactly_one_call(kit: Kit) -> None:
    with kit.standin(Failure(429, retry_after=7), Text("never sent")) as server:
        with pytest.raises(RateLimited) as raised:
            kit.make(server).complete(request(kit.model))
        assert server.calls == 1 and server.remaining == 1  # no hidden retry inside the SDK

    error = raised.value
    assert (error.kind, error.transient, error.status, error.provider) == ("rate_limited", True, 429, kit.name)
    assert error.retry_after == (None if kit.name == "ollama" else 7)  # ollama's error drops the headers


@every_provider
@both_ways
def test_500_is_a_transient_server_error_after_exactly_one_call(kit: Kit, stream: bool) -> None:
    with kit.standin(Failure(500, "the model runner crashed"), Text("never sent")) as server:
        with pytest.raises(ServerError) as raised:
            kit.make(server).complete(request(kit.model, stream=stream))
        assert server.calls == 1

    assert (raised.value.kind, raised.value.transient, raised.value.status) == ("server_error", True, 500)
    assert "the model runner crashed" in str(raised.value)


@every_provider
def test_a_refused_key_names_the_variable_and_quotes_no_credential(kit: Kit) -> None:
    with kit.standin(Text("never sent"), expect_key="the-right-key-0000") as server:
        with pytest.raises(AuthenticationFailed) as raised:
            kit.make(server, key=KEY).complete(request(kit.model))
        assert server.calls == 1 and server.remaining == 1

    message = str(raised.value)
    assert kit.key_variable in message and "401" in message
    assert KEY not in message and KEY[-4:] not in message and "bearer" not in message.lower()
    assert not raised.value.transient
    assert raised.value.__cause__ is None and raised.value.__context__ is None  # the SDK's error and its headers: gone


@keyed_providers
@pytest.mark.parametrize("key", [None, ""], ids=["none", "empty"])
def test_a_missing_key_fails_before_anything_is_sent(kit: Kit, key: str | None) -> None:
    with kit.standin(Text("never sent")) as server:
        with pytest.raises(AuthenticationFailed, match=kit.key_variable):
            kit.make(server, key=key)
        assert server.calls == 0


@every_provider
def test_a_silent_stream_is_cut_after_stall_after(kit: Kit) -> None:
    with kit.standin(Stall(after_chunks=2, seconds=20, then=Text("one two three four"))) as server:
        provider = kit.make(server, stall_after=0.5, timeout=20)
        pieces: list[None] = []
        started = time.monotonic()
        with pytest.raises(Stalled) as raised:
            provider.complete(request(kit.model), progress=lambda: pieces.append(None))
        took = time.monotonic() - started

    assert 0.5 <= took < 2.5
    assert raised.value.kind == "stalled" and raised.value.transient and "0.5 s" in str(raised.value)
    assert len(pieces) >= 2  # the pieces before the silence were reported


@every_provider
def test_a_stream_that_keeps_going_past_its_deadline_is_timed_out(kit: Kit) -> None:
    words = "one two three four five six seven eight nine ten"
    with kit.standin(Text(words)) as server:
        pieces: list[None] = []

        def slowly() -> None:  # each piece takes 0.1 s: never a stall, but the whole runs past the timeout
            pieces.append(None)
            time.sleep(0.1)

        started = time.monotonic()
        with pytest.raises(TimedOut) as raised:
            kit.make(server, stall_after=0.3, timeout=0.45).complete(request(kit.model), progress=slowly)
        took = time.monotonic() - started

    assert 0.45 <= took < 1.5 and raised.value.kind == "timeout" and "0.45 s" in str(raised.value)
    assert 4 <= len(pieces) < len(words.split())


@every_provider
def test_a_whole_reply_that_does_not_come_in_time_is_timed_out(kit: Kit) -> None:
    with kit.standin(Stall(seconds=20)) as server:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            kit.make(server, timeout=0.4).complete(request(kit.model, stream=False))

    assert time.monotonic() - started < 2


@every_provider
@both_ways
def test_an_unreachable_server_is_a_transient_connection_error(kit: Kit, stream: bool) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}" + ("/v1" if kit.name == "openai" else "")
    with pytest.raises(Unreachable) as raised:
        kit.at(base_url).complete(request(kit.model, stream=stream))

    assert raised.value.kind == "connection" and raised.value.transient and str(port) in str(raised.value)


@every_provider
def test_a_connection_dropped_mid_stream_is_a_connection_error(kit: Kit) -> None:
    with (kit.standin(Stall(after_chunks=1, seconds=0, then=Text("one two three"), hang_up=True)) as server,
          pytest.raises(Unreachable) as raised):
        kit.make(server).complete(request(kit.model))

    assert raised.value.transient


@every_provider
def test_an_unknown_model_names_it_and_says_how_to_list_models(kit: Kit) -> None:
    with kit.standin(Failure(404)) as server, pytest.raises(BadRequest) as raised:
        kit.make(server).complete(request("no-such-model-9"))

    message = str(raised.value)
    assert "'no-such-model-9'" in message and "404" in message and not raised.value.transient
    assert ("ollama list" if kit.name == "ollama" else "/models") in message


@every_provider
def test_a_provider_message_that_quotes_the_key_is_cleaned(kit: Kit) -> None:
    with (kit.standin(Failure(400, f"key {KEY} may not set this; also Authorization: Bearer {KEY}")) as server,
          pytest.raises(BadRequest) as raised):
        kit.make(server).complete(request(kit.model))

    message = str(raised.value)
    assert KEY not in message and "[redacted]" in message and "may not set this" in message
    assert "\n" not in message


@every_provider
def test_from_env_honours_the_sdks_own_variables(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    with kit.standin(Text("configured from the environment"), expect_key=KEY) as server:
        monkeypatch.setenv(kit.key_variable, KEY)
        monkeypatch.setenv(kit.url_variable, server.base_url)
        provider = kit.cls.from_env(timeout=5, stall_after=2)
        reply = provider.complete(request(kit.model))
        assert server.calls == 1

    assert reply.text == "configured from the environment"
    assert (provider.timeout, provider.stall_after) == (5, 2)


@keyed_providers
def test_from_env_without_a_key_says_which_variable_to_set(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kit.key_variable, raising=False)
    with pytest.raises(AuthenticationFailed, match=f"set {kit.key_variable}"):
        kit.cls.from_env()


@every_provider
def test_a_provider_is_reused_across_calls(kit: Kit) -> None:
    with kit.standin(Text("first"), Text("second")) as server:
        provider = kit.make(server)
        answers = [provider.complete(request(kit.model, stream=stream)).text for stream in (True, False)]
        provider.close()

    assert answers == ["first", "second"]


# -- what one provider does ---------------------------------------------------------------------------------------


CONVERSATION = [
    Message(role="system", content="You plan trips."),
    Message(role="user", content="Weather in Lyon and Paris?"),
    Message(role="assistant", content="Checking.", tool_calls=[
        Call(id="call_1", name="get_weather", arguments={"city": "Lyon"}),
        Call(id="call_2", name="get_weather", arguments={"city": "Paris"})]),
    Message(role="tool", tool_call_id="call_1", content="sunny"),
    Message(role="tool", tool_call_id="call_2", content="rain"),
    Message(role="user", content="So where do I go?"),
]


def test_openai_sends_a_conversation_with_tool_results_in_its_shape() -> None:
    with OpenAIStandin(Text("Lyon.")) as server:
        _openai(server).complete(ModelRequest(model="m", messages=CONVERSATION, max_tokens=9, temperature=0.2,
                                              tools=[WEATHER]))
        body = server.requests[0].body

    assert body["messages"] == [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "content": "Weather in Lyon and Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "user", "content": "So where do I go?"},
    ]
    assert (body["max_tokens"], body["temperature"], body["stream_options"]) == (9, 0.2, {"include_usage": True})


def test_anthropic_sends_the_system_prompt_apart_and_tool_results_in_one_user_turn() -> None:
    with AnthropicStandin(Text("Lyon.")) as server:
        _anthropic(server).complete(ModelRequest(model="c", messages=CONVERSATION, max_tokens=9, temperature=0.2,
                                                 tools=[WEATHER], stream=False))
        body = server.requests[0].body

    assert body["system"] == "You plan trips."
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Lyon and Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lyon"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"}]},
        {"role": "user", "content": "So where do I go?"},
    ]
    assert body["max_tokens"] == 9 and "temperature" not in body  # this SDK's API version has no temperature


def test_ollama_sends_tool_results_with_the_tool_name_and_limits_as_options() -> None:
    with OllamaStandin(Text("Lyon.")) as server:
        _ollama(server).complete(ModelRequest(model="m", messages=CONVERSATION, max_tokens=9, temperature=0.2,
                                              tools=[WEATHER]))
        body = server.requests[0].body

    assert [m.get("tool_name") for m in body["messages"]] == [None, None, None, "get_weather", "get_weather", None]
    assert body["messages"][2]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Lyon"}}},
                                                 {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert body["options"] == {"num_predict": 9, "temperature": 0.2}


def test_ollama_tool_call_ids_are_the_same_on_every_run() -> None:
    call = ToolCall("get_weather", WEATHER_ARGS)
    with OllamaStandin(call, call, ToolCall("get_weather", {"city": "Paris"})) as server:
        provider = _ollama(server)
        ids = [provider.complete(request("m", tools=[WEATHER])).tool_calls[0].id for _ in range(3)]

    assert ids[0] == ids[1] != ids[2]


def test_openai_sends_max_completion_tokens_to_openai_itself_and_when_told() -> None:
    assert OpenAIProvider(api_key=KEY).limit_parameter == "max_completion_tokens"
    with OpenAIStandin(Text("ok")) as server:
        assert _openai(server).limit_parameter == "max_tokens"
        _openai(server, limit_parameter="max_completion_tokens").complete(request("m"))
        body = server.requests[0].body

    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body


def test_openai_context_length_exceeded_is_context_too_long() -> None:
    too_long = Failure(400, "This model's maximum context length is 8192 tokens.", code="context_length_exceeded")
    with OpenAIStandin(too_long) as server, pytest.raises(ContextTooLong) as raised:
        _openai(server).complete(request("m"))

    assert not raised.value.transient and "maximum context length" in str(raised.value)


def test_openai_429_for_an_exhausted_quota_is_a_refusal_not_a_rate_limit() -> None:
    with (OpenAIStandin(Failure(429, "You exceeded your current quota.", code="insufficient_quota")) as server,
          pytest.raises(Refused) as raised):
        _openai(server).complete(request("m"))

    assert raised.value.kind == "refused" and not raised.value.transient and "retrying will not help" in str(
        raised.value)


def test_anthropic_prompt_too_long_is_context_too_long() -> None:
    with (AnthropicStandin(Failure(400, "prompt is too long: 208310 tokens > 200000 maximum")) as server,
          pytest.raises(ContextTooLong)):
        _anthropic(server).complete(request("c"))


def test_anthropic_overloaded_529_is_a_transient_server_error() -> None:
    with (AnthropicStandin(Failure(529, retry_after=2)) as server,
          pytest.raises(ServerError) as raised):
        _anthropic(server).complete(request("c"))

    assert (raised.value.status, raised.value.retry_after, raised.value.transient) == (529, 2, True)


def test_anthropic_schema_with_tools_lets_the_model_choose_any_tool() -> None:
    with AnthropicStandin(Text("thinking about it")) as server:
        _anthropic(server).complete(request("c", schema=VERDICT_SCHEMA, schema_name="verdict", tools=[WEATHER]))
        body = server.requests[0].body

    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "verdict"]
    assert body["tool_choice"] == {"type": "any"}


def test_anthropic_tool_call_alongside_the_answer_tool_stays_a_tool_call() -> None:
    with AnthropicStandin(ToolCall("get_weather", WEATHER_ARGS)) as server:
        reply = _anthropic(server).complete(request("c", schema=VERDICT_SCHEMA, schema_name="verdict", tools=[WEATHER]))

    assert reply.structured is None and [c.name for c in reply.tool_calls] == ["get_weather"]
    assert reply.finish == "tool_calls"
