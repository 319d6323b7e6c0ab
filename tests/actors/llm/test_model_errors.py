"""The provider layer's errors and records, without any server: classification, cleaning, waits, pickling."""

from __future__ import annotations

import pickle
from email.utils import formatdate

import msgspec
import pytest

from actors.llm import (
    AuthenticationFailed,
    BadRequest,
    ContextTooLong,
    Message,
    ModelCallError,
    ModelReply,
    ModelRequest,
    RateLimited,
    Refused,
    ServerError,
    Stalled,
    TimedOut,
    ToolCall,
    Unreachable,
)
from actors.llm.errors import Service, clean, retry_after_seconds, status_error
from events.errors import CouncilError

SERVICE = Service(name="acme", title="the Acme API", key_variable="ACME_KEY", url_variable="ACME_URL",
                  list_models="`acme models` lists them")


def classify(status: int | None, code: str | None = None, retry_after: float | None = None) -> ModelCallError:
    return status_error(SERVICE, status, detail="what the service said", code=code, model="m-1",
                        retry_after=retry_after)


@pytest.mark.parametrize(("status", "code", "kind", "transient"), [
    (400, None, "bad_request", False),
    (400, "context_length_exceeded", "context_too_long", False),
    (401, None, "authentication", False),
    (402, None, "refused", False),
    (403, None, "refused", False),
    (404, None, "bad_request", False),
    (408, None, "timeout", True),
    (409, None, "server_error", True),
    (413, None, "context_too_long", False),
    (422, None, "bad_request", False),
    (429, None, "rate_limited", True),
    (429, "insufficient_quota", "refused", False),
    (429, "enforced_spend_limit_reached", "refused", False),
    (500, None, "server_error", True),
    (503, None, "server_error", True),
    (529, None, "server_error", True),
    (None, None, "server_error", True),
    (None, "rate_limit_error", "rate_limited", True),
    (None, "request_too_large", "context_too_long", False),
])
def test_status_and_code_decide_the_kind(status: int | None, code: str | None, kind: str, transient: bool) -> None:
    error = classify(status, code)

    assert (error.kind, error.transient, error.status, error.provider) == (kind, transient, status, "acme")
    assert isinstance(error, CouncilError) and "\n" not in str(error)


def test_each_kind_has_its_own_class() -> None:
    kinds = {cls.kind: cls for cls in (RateLimited, ServerError, TimedOut, Stalled, Unreachable, Refused,
                                       ContextTooLong, AuthenticationFailed, BadRequest)}
    assert len(kinds) == 9
    assert {k for k, cls in kinds.items() if cls.transient} == {"rate_limited", "server_error", "timeout", "stalled",
                                                                  "connection"}


def test_a_rate_limit_carries_its_wait_and_says_it() -> None:
    error = classify(429, retry_after=2.5)

    assert isinstance(error, RateLimited) and error.retry_after == 2.5 and "2.5 s" in str(error)


def test_authentication_says_which_variable_and_leaves_the_providers_words_out() -> None:
    error = status_error(SERVICE, 401, detail="Incorrect API key provided: kx-*****1234. Use Bearer YOUR_KEY",
                         code="invalid_api_key", model="m", secrets=["kx-secret-1234"])

    assert str(error) == "the Acme API refused the key (401 invalid_api_key); set ACME_KEY to a valid key"


def test_an_unknown_model_is_named_with_how_to_list_models() -> None:
    message = str(classify(404))

    assert "'m-1'" in message and "`acme models` lists them" in message and "ACME_URL" in message


def test_errors_pickle_with_their_fields() -> None:
    error = status_error(SERVICE, 429, detail="slow down", code=None, model="m", retry_after=3.0)
    again = pickle.loads(pickle.dumps(error))

    assert type(again) is RateLimited
    assert (str(again), again.provider, again.status, again.retry_after) == (str(error), "acme", 429, 3.0)


def test_clean_cuts_keys_bearer_credentials_and_secret_shapes_and_makes_one_line() -> None:
    text = ("key kx-plain-key-9 refused;\nheader Authorization: Bearer abc.def-123\n"
            "and sk-proj-abcdefghijklmnopqrstuv leaked")
    cleaned = clean(text, ["kx-plain-key-9", ""])

    for secret in ("kx-plain-key-9", "abc.def-123", "sk-proj-abcdefghijklmnopqrstuv"):
        assert secret not in cleaned
    assert "\n" not in cleaned and cleaned.startswith("key [redacted] refused; header Authorization: [redacted]")
    assert cleaned.endswith("and [redacted] leaked")


def test_a_key_is_cut_before_a_long_message_is_shortened() -> None:
    key = "kx-long-message-key"
    cleaned = clean("x" * 590 + key + "y" * 100, [key])

    assert key not in cleaned and not any(key[:n] in cleaned for n in range(6, len(key)))
    assert len(cleaned) <= 600


def test_every_message_is_cleaned_on_construction() -> None:
    error = ServerError("the server echoed Bearer kx-abc-123 back", provider="acme", secrets=["kx-abc-123"])

    assert "kx-abc-123" not in str(error) and "kx-abc-123" not in error.message


@pytest.mark.parametrize(("headers", "wait"), [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "soon"}, None),
    ({"retry-after": formatdate(1_000_030.0, usegmt=True)}, 30.0),
    ({"retry-after": formatdate(999_000.0, usegmt=True)}, 0.0),
    ({}, None),
    (None, None),
])
def test_retry_after_reads_milliseconds_seconds_and_dates(headers: dict[str, str] | None, wait: float | None) -> None:
    assert retry_after_seconds(headers, now=1_000_000.0) == wait


@pytest.mark.parametrize(("fields", "says"), [
    ({"messages": []}, "no messages"),
    ({"model": ""}, "names no model"),
    ({"max_tokens": 0}, "max_tokens must be at least 1"),
    ({"messages": [Message(role="tool", content="42")]}, "without a tool_call_id"),
])
def test_a_malformed_request_is_refused_before_any_provider_sees_it(fields: dict[str, object], says: str) -> None:
    base: dict[str, object] = {"model": "m", "messages": [Message(role="user", content="hi")], "max_tokens": 5}
    with pytest.raises(BadRequest, match=says):
        ModelRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_requests_and_replies_encode_and_decode_unchanged() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Lyon"})
    request = ModelRequest(model="m", max_tokens=9, messages=[
        Message(role="user", content="weather?"), Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", content="sunny", tool_call_id="call_1")], schema={"type": "object"})
    reply = ModelReply(text='{"a": 1}', structured={"a": 1}, tool_calls=[call], finish="length", input_tokens=3,
                       output_tokens=4, model="m-2024", latency_s=0.5, estimated=True, stop_reason="max_tokens")

    assert msgspec.json.decode(msgspec.json.encode(request), type=ModelRequest) == request
    assert msgspec.json.decode(msgspec.json.encode(reply), type=ModelReply) == reply
