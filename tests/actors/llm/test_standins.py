"""The model stand-ins, driven by the official SDKs: if these pass, a provider tested against a stand-in is
tested against what the real SDK does with the real wire format, errors and retries included.

Every test asserts on content the stand-in was scripted with (texts, token counts, tool arguments, statuses), so
a stand-in that sent a canned or empty answer fails. Stalls are short and the clients' timeouts shorter.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import anthropic
import httpx
import httpx2
import ollama
import openai
import pytest
from model_standins import (
    MAX_STALL_SECONDS,
    AnthropicStandin,
    Failure,
    OllamaStandin,
    OpenAIStandin,
    Stall,
    Structured,
    Text,
    ToolCall,
    Truncated,
    tokens_in,
)
from pydantic import BaseModel

CLAUDE = "claude-standin-1"  # not a real model: the SDK warns about the deprecated ones it knows
ASK = [{"role": "user", "content": "Review the diff and say whether to merge it."}]
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["approve", "reject"]}, "score": {"type": "integer"}},
    "required": ["verdict", "score"],
    "additionalProperties": False,
}
VERDICT = {"verdict": "reject", "score": 3}
WEATHER_TOOL_ARGS = {"city": "Lyon", "units": "metric"}


def openai_client(server: OpenAIStandin, key: str = "sk-test", **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, **{"max_retries": 0, **options})


def anthropic_client(server: AnthropicStandin, key: str = "sk-ant-test", **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=key, **{"max_retries": 0, **options})


def claude(client: anthropic.Anthropic, **extra: Any) -> anthropic.types.Message:
    return client.messages.create(model=CLAUDE, max_tokens=256, messages=ASK, **extra)


# -- OpenAI chat completions -----------------------------------------------------------------------------------


def test_openai_plain_reply_carries_the_scripted_text_and_usage() -> None:
    with OpenAIStandin(Text("Merge it.", input_tokens=41, output_tokens=3), expect_key="sk-test") as server:
        reply = openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=ASK)
        received = server.requests

    assert reply.choices[0].message.content == "Merge it."
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (41, 3, 44)
    assert reply.model == "gpt-4o-mini"
    assert [(r.method, r.path) for r in received] == [("POST", "/v1/chat/completions")]
    assert received[0].headers["authorization"] == "Bearer sk-test"
    assert received[0].body["messages"] == ASK


def test_openai_default_usage_is_derived_from_the_texts() -> None:
    with OpenAIStandin(Text("a reply of twenty-six chars")) as server:
        usage = openai_client(server).chat.completions.create(model="m", messages=ASK).usage

    assert usage.completion_tokens == tokens_in("a reply of twenty-six chars") == 7
    assert usage.prompt_tokens == tokens_in("user" + ASK[0]["content"])


def test_openai_stream_assembles_to_the_text_and_ends_with_usage() -> None:
    text = "Merge it, the tests cover the change."
    with OpenAIStandin(Text(text, input_tokens=12, output_tokens=9), Text(text)) as server:
        client = openai_client(server)
        chunks = list(client.chat.completions.create(model="m", messages=ASK, stream=True,
                                                     stream_options={"include_usage": True}))
        plain = list(client.chat.completions.create(model="m", messages=ASK, stream=True))

    assembled = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert assembled == text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == len(text.split())
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 9)
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.usage is None for c in plain)  # no include_usage: no usage chunk
    assert "".join(c.choices[0].delta.content or "" for c in plain) == text


def test_openai_structured_output_answers_the_schema() -> None:
    class Verdict(BaseModel):
        verdict: str
        score: int

    with OpenAIStandin(Structured(VERDICT), Structured(VERDICT)) as server:
        client = openai_client(server)
        fmt = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}}
        raw = client.chat.completions.create(model="m", messages=ASK, response_format=fmt)
        parsed = client.chat.completions.parse(model="m", messages=ASK, response_format=Verdict)
        sent = server.requests

    assert json.loads(raw.choices[0].message.content) == VERDICT
    assert parsed.choices[0].message.parsed == Verdict(verdict="reject", score=3)
    assert sent[0].body["response_format"]["json_schema"]["schema"] == VERDICT_SCHEMA
    assert sent[1].body["response_format"]["type"] == "json_schema"


def test_openai_tool_call_whole_and_streamed() -> None:
    call = ToolCall("get_weather", WEATHER_TOOL_ARGS, call_id="call_abc")
    with OpenAIStandin(call, call) as server:
        client = openai_client(server)
        reply = client.chat.completions.create(model="m", messages=ASK)
        chunks = list(client.chat.completions.create(model="m", messages=ASK, stream=True))

    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls" and message.content is None
    assert message.tool_calls[0].id == "call_abc" and message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == WEATHER_TOOL_ARGS
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather" and deltas[0].id == "call_abc"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == WEATHER_TOOL_ARGS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_truncation_is_finish_reason_length() -> None:
    with OpenAIStandin(Truncated("The change is fine but", output_tokens=5)) as server:
        reply = openai_client(server).chat.completions.create(model="m", messages=ASK)

    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "The change is fine but" and reply.usage.completion_tokens == 5


def test_openai_429_raises_rate_limit_error_with_retry_after() -> None:
    with OpenAIStandin(Failure(429, retry_after=7)) as server:
        with pytest.raises(openai.RateLimitError) as raised:
            openai_client(server).chat.completions.create(model="m", messages=ASK)
        assert server.calls == 1

    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_openai_retries_a_429_then_succeeds_after_the_retry_after() -> None:
    with OpenAIStandin(Failure(429, retry_after=0.2), Text("second time lucky")) as server:
        started = time.monotonic()
        reply = openai_client(server, max_retries=2).chat.completions.create(model="m", messages=ASK)
        waited = time.monotonic() - started
        sent = server.requests

    assert reply.choices[0].message.content == "second time lucky"
    assert len(sent) == 2 and waited >= 0.2
    assert [r.headers["x-stainless-retry-count"] for r in sent] == ["0", "1"]


def test_openai_wrong_key_is_authentication_error_and_takes_no_reply() -> None:
    with OpenAIStandin(Text("never sent"), expect_key="sk-right-key") as server:
        with pytest.raises(openai.AuthenticationError) as raised:
            openai_client(server, key="sk-wrong-key-1234").chat.completions.create(model="m", messages=ASK)
        missing = httpx.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": ASK})
        assert server.remaining == 1 and server.calls == 2

    assert raised.value.body["code"] == "invalid_api_key" and "sk-*****1234" in raised.value.message
    assert missing.status_code == 401 and "didn't provide an API key" in missing.json()["error"]["message"]


def test_openai_500_is_internal_server_error_and_is_retried_by_default() -> None:
    with OpenAIStandin(Failure(500, retry_after=0.01), Failure(500, retry_after=0.01), Failure(500)) as server:
        with pytest.raises(openai.InternalServerError) as raised:
            openai_client(server, max_retries=2).chat.completions.create(model="m", messages=ASK)
        assert server.calls == 3

    assert raised.value.body["type"] == "server_error"


def test_openai_stream_stall_is_cut_by_the_read_timeout_after_the_first_chunks() -> None:
    stall = Stall(after_chunks=2, seconds=3, then=Text("one two three four"))
    with OpenAIStandin(stall) as server:
        client = openai_client(server, timeout=openai.Timeout(5, read=0.3))
        received: list[str] = []
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):  # the SDK wraps a timeout mid-stream too
            for chunk in client.chat.completions.create(model="m", messages=ASK, stream=True):
                received.append(chunk.choices[0].delta.content or "")
    elapsed = time.monotonic() - started  # includes stopping the stand-in, which cuts the stall short

    assert "".join(received) == "one two"
    assert elapsed < 2


def test_openai_whole_reply_stall_is_an_api_timeout_and_a_slow_model_still_answers() -> None:
    with OpenAIStandin(Stall(seconds=2), Stall(seconds=0.2, then=Text("slow but sure"))) as server:
        with pytest.raises(openai.APITimeoutError):
            openai_client(server, timeout=0.3).chat.completions.create(model="m", messages=ASK)
        slow = openai_client(server, timeout=5).chat.completions.create(model="m", messages=ASK)

    assert slow.choices[0].message.content == "slow but sure"


def test_openai_lists_models() -> None:
    with OpenAIStandin(models=("gpt-a", "gpt-b"), expect_key="sk-test") as server:
        names = [model.id for model in openai_client(server).models.list()]
        assert server.remaining == 0 and server.calls == 1

    assert names == ["gpt-a", "gpt-b"]


# -- Anthropic messages ----------------------------------------------------------------------------------------


def test_anthropic_plain_reply_carries_text_stop_reason_and_usage() -> None:
    with AnthropicStandin(Text("Merge it.", input_tokens=30, output_tokens=4), expect_key="sk-ant-test") as server:
        reply = claude(anthropic_client(server))
        headers = server.requests[0].headers

    assert [block.text for block in reply.content] == ["Merge it."]
    assert reply.stop_reason == "end_turn" and reply.role == "assistant" and reply.model == CLAUDE
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (30, 4)
    assert "anthropic-version" in headers


def test_anthropic_takes_the_key_from_x_api_key_too() -> None:
    with AnthropicStandin(Text("ok"), expect_key="sk-ant-test") as server:
        headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
        body = {"model": "claude", "max_tokens": 10, "messages": ASK}
        accepted = httpx.post(f"{server.base_url}/v1/messages", json=body, headers=headers)
        refused = httpx.post(f"{server.base_url}/v1/messages", json=body)

    assert accepted.status_code == 200 and accepted.json()["content"][0]["text"] == "ok"
    assert refused.status_code == 401
    assert refused.json()["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}


def test_anthropic_stream_sends_the_event_sequence_and_final_usage() -> None:
    text = "Merge it, the tests cover the change."
    with AnthropicStandin(Text(text, input_tokens=20, output_tokens=9), Text(text, output_tokens=9)) as server:
        client = anthropic_client(server)
        events = list(claude(client, stream=True))
        with client.messages.stream(model=CLAUDE, max_tokens=256, messages=ASK) as stream:
            assembled = "".join(stream.text_stream)
            final = stream.get_final_message()

    kinds = [event.type for event in events]
    assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == text
    assert events[0].message.usage.input_tokens == 20 and events[-2].usage.output_tokens == 9
    assert events[-2].delta.stop_reason == "end_turn"
    assert assembled == text and final.usage.output_tokens == 9 and final.stop_reason == "end_turn"


def test_anthropic_structured_answer_is_the_forced_tool_input_whole_and_streamed() -> None:
    tool = {"name": "record_verdict", "description": "Record the verdict.", "input_schema": VERDICT_SCHEMA}
    forced = {"type": "tool", "name": "record_verdict"}
    with AnthropicStandin(Structured(VERDICT), Structured(VERDICT)) as server:
        client = anthropic_client(server)
        reply = claude(client, tools=[tool], tool_choice=forced)
        with client.messages.stream(model="c", max_tokens=256, messages=ASK, tools=[tool],
                                    tool_choice=forced) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
        sent = server.requests

    block = reply.content[0]
    assert reply.stop_reason == "tool_use" and block.type == "tool_use"
    assert (block.name, block.input) == ("record_verdict", VERDICT)
    assert "input_json" in kinds  # the SDK's event for each input_json_delta
    assert final.content[0].input == VERDICT and final.stop_reason == "tool_use"
    assert sent[0].body["tool_choice"] == forced and sent[1].body["stream"] is True


def test_anthropic_tool_call_streams_input_json_deltas() -> None:
    with AnthropicStandin(ToolCall("get_weather", WEATHER_TOOL_ARGS)) as server:
        events = list(claude(anthropic_client(server), stream=True))

    start = next(e for e in events if e.type == "content_block_start")
    assert start.content_block.type == "tool_use" and start.content_block.name == "get_weather"
    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert all(e.delta.type == "input_json_delta" for e in events if e.type == "content_block_delta")
    assert len(partials) > 2 and json.loads("".join(partials)) == WEATHER_TOOL_ARGS
    assert events[-2].delta.stop_reason == "tool_use"


def test_anthropic_truncation_is_stop_reason_max_tokens() -> None:
    with AnthropicStandin(Truncated("The change is fine but")) as server:
        reply = claude(anthropic_client(server))

    assert reply.stop_reason == "max_tokens" and reply.content[0].text == "The change is fine but"


def test_anthropic_errors_are_the_sdks_typed_exceptions() -> None:
    script = [Failure(429, retry_after=3), Failure(500), Failure(529)]
    with AnthropicStandin(*script, expect_key="sk-ant-test") as server:
        client = anthropic_client(server)
        with pytest.raises(anthropic.RateLimitError) as limited:
            claude(client)
        with pytest.raises(anthropic.InternalServerError) as broken:
            claude(client)
        with pytest.raises(anthropic.OverloadedError):
            claude(client)
        with pytest.raises(anthropic.AuthenticationError) as refused:
            claude(anthropic_client(server, key="sk-ant-other"))
        assert server.calls == 4 and server.remaining == 0

    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.request_id == "req_standin000001"
    assert broken.value.body["error"]["type"] == "api_error"
    assert refused.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}


def test_anthropic_retries_a_429_then_succeeds() -> None:
    with AnthropicStandin(Failure(429, retry_after=0.1), Text("second time lucky")) as server:
        reply = claude(anthropic_client(server, max_retries=1))
        assert server.calls == 2

    assert reply.content[0].text == "second time lucky"


def test_anthropic_stream_stall_is_cut_by_the_read_timeout() -> None:
    with AnthropicStandin(Stall(after_chunks=1, seconds=3, then=Text("one two three"))) as server:
        client = anthropic_client(server, timeout=anthropic.Timeout(5, read=0.3))
        texts: list[str] = []
        with pytest.raises(httpx2.ReadTimeout):  # not wrapped: anthropic's stream lets httpx2's error through
            for event in claude(client, stream=True):
                if event.type == "content_block_delta":
                    texts.append(event.delta.text)

    assert texts == ["one"]


# -- Ollama native chat ----------------------------------------------------------------------------------------


def test_ollama_whole_reply_has_counts_and_done_reason() -> None:
    with OllamaStandin(Text("Merge it.", input_tokens=26, output_tokens=4)) as server:
        reply = ollama.Client(host=server.base_url).chat(model="llama3.2", messages=ASK, stream=False)
        sent = server.requests[0]

    assert reply.message.content == "Merge it." and reply.message.role == "assistant"
    assert (reply.prompt_eval_count, reply.eval_count, reply.done_reason, reply.done) == (26, 4, "stop", True)
    assert (sent.path, sent.body["model"], sent.body["stream"]) == ("/api/chat", "llama3.2", False)


def test_ollama_streams_ndjson_by_default() -> None:
    text = "Merge it, the tests cover the change."
    with OllamaStandin(Text(text, input_tokens=15, output_tokens=9), Text("raw lines")) as server:
        parts = list(ollama.Client(host=server.base_url).chat(model="llama3.2", messages=ASK, stream=True))
        raw = httpx.post(f"{server.base_url}/api/chat", json={"model": "llama3.2", "messages": ASK})

    assert "".join(part.message.content for part in parts) == text
    assert [part.done for part in parts] == [False] * len(text.split()) + [True]
    assert (parts[-1].prompt_eval_count, parts[-1].eval_count, parts[-1].done_reason) == (15, 9, "stop")
    assert raw.headers["content-type"] == "application/x-ndjson"  # no "stream" in the body: Ollama streams
    lines = [json.loads(line) for line in raw.text.splitlines()]
    assert [line["message"]["content"] for line in lines] == ["raw", " lines", ""] and lines[-1]["done"] is True


def test_ollama_format_schema_gets_the_structured_answer() -> None:
    with OllamaStandin(Structured(VERDICT)) as server:
        reply = ollama.Client(host=server.base_url).chat(model="llama3.2", messages=ASK, format=VERDICT_SCHEMA)
        sent = server.requests[0].body

    assert json.loads(reply.message.content) == VERDICT
    assert sent["format"] == VERDICT_SCHEMA


def test_ollama_tool_call_arguments_are_an_object() -> None:
    with OllamaStandin(ToolCall("get_weather", WEATHER_TOOL_ARGS), ToolCall("get_weather", WEATHER_TOOL_ARGS)) as s:
        client = ollama.Client(host=s.base_url)
        whole = client.chat(model="llama3.2", messages=ASK)
        streamed = [call for part in client.chat(model="llama3.2", messages=ASK, stream=True)
                    for call in part.message.tool_calls or []]

    for calls in (whole.message.tool_calls, streamed):
        assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", WEATHER_TOOL_ARGS)]


def test_ollama_truncation_is_done_reason_length() -> None:
    with OllamaStandin(Truncated("The change is fine but")) as server:
        parts = list(ollama.Client(host=server.base_url).chat(model="llama3.2", messages=ASK, stream=True))

    assert parts[-1].done_reason == "length"
    assert "".join(part.message.content for part in parts) == "The change is fine but"


def test_ollama_errors_are_response_errors_with_status() -> None:
    with OllamaStandin(Failure(429, retry_after=2), Failure(500, "model runner crashed"), expect_key="ol-key") as s:
        client = ollama.Client(host=s.base_url, headers={"Authorization": "Bearer ol-key"})
        with pytest.raises(ollama.ResponseError) as limited:
            client.chat(model="llama3.2", messages=ASK)
        with pytest.raises(ollama.ResponseError) as broken:
            list(client.chat(model="llama3.2", messages=ASK, stream=True))  # the status arrives before any line
        with pytest.raises(ollama.ResponseError) as refused:
            ollama.Client(host=s.base_url, headers={"Authorization": "Bearer nope"}).list()
        assert s.calls == 3 and s.requests[0].headers["authorization"] == "Bearer ol-key"

    assert (limited.value.status_code, limited.value.error) == (429, "too many requests")
    assert (broken.value.status_code, broken.value.error) == (500, "model runner crashed")
    assert (refused.value.status_code, refused.value.error) == (401, "unauthorized")


def test_ollama_stream_stall_is_cut_by_the_client_timeout() -> None:
    with OllamaStandin(Stall(after_chunks=2, seconds=3, then=Text("one two three"))) as server:
        parts: list[str] = []
        with pytest.raises(httpx.ReadTimeout):
            for part in ollama.Client(host=server.base_url, timeout=0.3).chat(model="m", messages=ASK, stream=True):
                parts.append(part.message.content)

    assert parts == ["one", " two"]


def test_ollama_lists_tags_and_unknown_routes_are_go_404s() -> None:
    with OllamaStandin(models=("llama3.2:latest", "qwen2.5-coder:7b")) as server:
        listed = ollama.Client(host=server.base_url).list()
        unknown = httpx.get(f"{server.base_url}/api/nothing")

    assert [model.model for model in listed.models] == ["llama3.2:latest", "qwen2.5-coder:7b"]
    assert listed.models[0].details.family == "llama"
    assert (unknown.status_code, unknown.text) == (404, "404 page not found")


# -- the shared core -------------------------------------------------------------------------------------------


def test_nothing_called_means_nothing_recorded_and_the_script_is_left() -> None:
    with OpenAIStandin(Text("unused")) as server:
        assert (server.calls, server.requests, server.remaining) == (0, [], 1)


def test_the_default_reply_answers_once_the_script_is_spent() -> None:
    with OllamaStandin(Text("scripted"), default=Text("default")) as server:
        client = ollama.Client(host=server.base_url)
        answers = [client.chat(model="m", messages=ASK).message.content for _ in range(3)]

    assert answers == ["scripted", "default", "default"]


def test_an_empty_script_is_a_500_that_says_so() -> None:
    with OpenAIStandin() as server, pytest.raises(openai.InternalServerError) as raised:
        openai_client(server).chat.completions.create(model="m", messages=ASK)

    assert "script ran out after 0 replies" in raised.value.message


def test_concurrent_calls_each_take_one_reply_and_are_all_counted() -> None:
    texts = [f"answer {n}" for n in range(12)]
    with OpenAIStandin(*(Text(t) for t in texts)) as server:
        client = openai_client(server)
        answers: list[str] = []

        def ask() -> None:
            answers.append(client.chat.completions.create(model="m", messages=ASK).choices[0].message.content)

        threads = [threading.Thread(target=ask) for _ in texts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert server.calls == 12 and server.remaining == 0

    assert sorted(answers) == sorted(texts)


def test_a_hang_up_mid_stream_is_an_incomplete_reply() -> None:
    with OpenAIStandin(Stall(after_chunks=1, seconds=0, then=Text("one two three"), hang_up=True)) as server:
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):  # the SDK wraps httpx's RemoteProtocolError
            for chunk in openai_client(server).chat.completions.create(model="m", messages=ASK, stream=True):
                received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "one"


def test_stopping_cuts_a_long_stall_short() -> None:
    server = OpenAIStandin(Stall(after_chunks=0, seconds=MAX_STALL_SECONDS)).start()
    client = openai_client(server, timeout=openai.Timeout(5, read=0.2))
    with pytest.raises(openai.APITimeoutError):
        list(client.chat.completions.create(model="m", messages=ASK, stream=True))
    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 1.5
    assert server.open_connections == 0
    with pytest.raises(ValueError, match="0 to 30"):
        Stall(seconds=MAX_STALL_SECONDS + 1)
