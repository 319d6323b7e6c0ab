"""Governed model calls: the gate and the budget before the provider, the record after, the log before the provider.

No Ray: a real log with a policy in force, a real gatekeeper and warrant, a real blob store, the real
OpenAI SDK talking to a loopback stand-in that counts what reaches it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from governance_support import POLICY, Council, make_council
from model_standins import Failure, OllamaStandin, OpenAIStandin, Structured, Text, Truncated
from pydantic import BaseModel

from actors.llm.calls import INLINE_REPLY, ModelCalls, ModelUnavailable
from actors.llm.config import ModelsConfig, Price
from actors.llm.ollama_provider import OllamaProvider
from actors.llm.openai_provider import OpenAIProvider
from actors.llm.replay import replay
from actors.skills import PermanentFailure
from actors.tools.gated import ActionRefused
from events import streams
from events.blobs import BlobError, BlobStore
from events.catalogue import TaskSubmitted

KEY = "sk-council-test-" + uuid.uuid4().hex
MODEL = "openai:gpt-test"
CALLS_POLICY = POLICY + """
[[rules]]
name = "coders-think"
actions = ["llm.call"]
roles = ["coder"]
effect = "allow"
"""


class Verdict(BaseModel):
    """What a structured question asks for."""

    name: str
    score: int


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    council.adopt(CALLS_POLICY)
    return council


@pytest.fixture
def server() -> Iterator[OpenAIStandin]:
    with OpenAIStandin(expect_key=KEY) as standin:
        yield standin


def calls(council: Council, server: OpenAIStandin, task: str = "t-think", *, repairs: int = 1, retries: int = 3,
          waited: list[float] | None = None) -> ModelCalls:
    """The model calls of an attempt of ``task`` by coder-1, under a warrant of its own."""
    found = [e for e in council.store.read_stream(f"warrant-w-{task}")]
    grant_id = f"w-{task}" if found else council.warrant("coder-1", "coder", task=task).warrant_id
    provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=10, stall_after=5)
    config = ModelsConfig(default=MODEL, prices={MODEL: Price(input=1.0, output=4.0)}, repairs=repairs,
                          retries=retries)
    return ModelCalls(council.tools("coder-1", grant_id, task), config, "coder", BlobStore(council.home / "blobs"),
                      lambda name: provider, sleep=(waited.append if waited is not None else lambda s: None))


def types(council: Council, task: str = "t-think") -> list[str]:
    return council.types(streams.model_calls(task))


def test_a_call_is_recorded_charged_and_answered_again_from_the_log_without_the_provider(
        council: Council, server: OpenAIStandin) -> None:
    server.script(Text("forty-two", input_tokens=1000, output_tokens=500))
    first = calls(council, server).ask("What is six times seven?", system="Answer in words.", max_tokens=64)
    assert (first.text, first.replayed, server.calls) == ("forty-two", False, 1)
    assert first.cost == pytest.approx((1000 * 1.0 + 500 * 4.0) / 1e6)
    assert types(council) == ["llm.requested", "llm.completed"]
    requested, completed = council.events(streams.model_calls("t-think"))
    assert (requested.provider, requested.model, requested.max_tokens) == ("openai", MODEL, 64)
    assert requested.estimate.tokens > 64 and completed.input_tokens == 1000 and completed.digest == requested.digest
    body = BlobStore(council.home / "blobs").get(requested.digest)  # the call's body, verified by its name
    assert b"six times seven" in body and KEY.encode() not in body
    charged = [e for e in council.events("warrant-w-t-think") if type(e).__name__ == "ActionCompleted"]
    assert charged[-1].cost.tokens == 1500 and charged[-1].cost.money == pytest.approx(first.cost)

    again = calls(council, server).ask("What is six times seven?", system="Answer in words.", max_tokens=64)
    assert (again.text, again.replayed, server.calls) == ("forty-two", True, 1)  # a restarted agent pays nothing
    assert types(council) == ["llm.requested", "llm.completed"]

    other = calls(council, server)
    server.script(Text("forty-three"))
    changed = other.ask("What is six times seven and one?", system="Answer in words.", max_tokens=64)
    assert (changed.text, changed.replayed, server.calls) == ("forty-three", False, 2)  # other messages: new work


def test_a_call_the_budget_cannot_hold_is_denied_before_the_provider_is_called(tmp_path: Path,
                                                                              server: OpenAIStandin) -> None:
    council = make_council(tmp_path)
    council.adopt(CALLS_POLICY.replace("[budgets.agent]\nactions = 50", "[budgets.agent]\nactions = 50\ntokens = 500"))
    server.script(Text("never sent"))
    with pytest.raises(ActionRefused, match=r"budget exhausted: tokens 0 used \+ \d+ asked > 500"):
        calls(council, server).ask("Write me a novel.", max_tokens=1000)
    assert server.calls == 0 and types(council) == []


def test_a_rate_limit_waits_what_the_provider_asks_then_succeeds(council: Council, server: OpenAIStandin) -> None:
    server.script(Failure(429, retry_after=0.25), Text("done"))
    waited: list[float] = []
    answer = calls(council, server, waited=waited).ask("Go.", max_tokens=16)
    assert (answer.text, server.calls, waited) == ("done", 2, [0.25])
    assert types(council) == ["llm.requested", "llm.failed", "llm.requested", "llm.completed"]
    failed = council.events(streams.model_calls("t-think"))[1]
    assert (failed.kind, failed.transient, failed.attempt, failed.retry_after) == ("rate_limited", True, 1, 0.25)


def test_a_provider_down_through_every_try_fails_the_attempt_as_transient(council: Council,
                                                                         server: OpenAIStandin) -> None:
    server.script(Failure(500), Failure(503), Failure(502))
    waited: list[float] = []
    with pytest.raises(ModelUnavailable, match="failed 3 time"):
        calls(council, server, waited=waited).ask("Go.", max_tokens=16)
    assert server.calls == 3 and waited == [1.0, 2.0]
    assert types(council).count("llm.failed") == 3


def test_a_bad_key_fails_for_good_in_one_line_and_no_key_is_ever_recorded(council: Council,
                                                                          server: OpenAIStandin) -> None:
    wrong = "sk-wrong-" + uuid.uuid4().hex
    provider = OpenAIProvider(api_key=wrong, base_url=server.base_url, timeout=10)
    grant = council.warrant("coder-1", "coder", task="t-key")
    model_calls = ModelCalls(council.tools("coder-1", grant.warrant_id, "t-key"), ModelsConfig(default=MODEL),
                             "coder", BlobStore(council.home / "blobs"), lambda name: provider)
    with pytest.raises(PermanentFailure) as failed:
        model_calls.ask("Go.", max_tokens=16)
    assert "OPENAI_API_KEY" in str(failed.value) and "\n" not in str(failed.value)
    assert server.calls == 1
    recorded = b"".join(msgspec.json.encode(e.payload) for e in council.store.read_all(1, None))
    assert wrong.encode() not in recorded and b"Bearer" not in recorded
    for blob in (council.home / "blobs").rglob("*"):
        assert not blob.is_file() or wrong.encode() not in blob.read_bytes()


def test_an_answer_that_does_not_fit_its_schema_is_repaired_once(council: Council, server: OpenAIStandin) -> None:
    server.script(Structured({"name": "x", "score": "high"}), Structured({"name": "x", "score": 9}))
    answer = calls(council, server).ask("Judge it.", schema=Verdict, max_tokens=64)
    assert answer.answer == Verdict(name="x", score=9) and answer.calls == 2 and server.calls == 2
    assert types(council) == ["llm.requested", "llm.completed", "llm.repaired", "llm.requested", "llm.completed"]
    repaired = council.events(streams.model_calls("t-think"))[2]
    assert "score" in repaired.error and repaired.repair == 1
    asked_again = server.requests[-1].body["messages"]
    assert asked_again[-1]["role"] == "user" and "does not fit the schema" in asked_again[-1]["content"]
    assert server.requests[0].body["response_format"]["type"] == "json_schema"


def test_an_answer_that_never_fits_fails_for_good_with_the_validation_error(council: Council,
                                                                            server: OpenAIStandin) -> None:
    server.script(Structured({"name": "x"}), Structured({"score": 1}))
    with pytest.raises(PermanentFailure, match=r"did not fit Verdict after 1 repair\(s\): name: Field required"):
        calls(council, server).ask("Judge it.", schema=Verdict, max_tokens=64)
    assert server.calls == 2


def test_a_reply_cut_off_at_max_tokens_is_a_failure_never_an_answer(council: Council, server: OpenAIStandin) -> None:
    server.script(Truncated("Once upon a"), Truncated("Once upon a"))
    with pytest.raises(PermanentFailure, match="cut off at max_tokens=8"):
        calls(council, server).ask("Tell a story.", max_tokens=8)
    probe = calls(council, server).ask("Tell a short story.", max_tokens=8, cut_ok=True)  # only: does it answer?
    assert (probe.text, probe.reply.finish) == ("Once upon a", "length")


def test_a_large_reply_is_a_blob_and_a_tampered_blob_is_refused(council: Council, server: OpenAIStandin) -> None:
    server.script(Text("x" * (INLINE_REPLY + 10)))
    calls(council, server).ask("Say a lot.", max_tokens=64)
    completed = council.events(streams.model_calls("t-think"))[-1]
    assert completed.reply is None and completed.reply_blob is not None
    assert calls(council, server).ask("Say a lot.", max_tokens=64).text == "x" * (INLINE_REPLY + 10)
    path = BlobStore(council.home / "blobs").path(completed.reply_blob)
    path.write_bytes(path.read_bytes().replace(b"xxxx", b"yyyy", 1))
    with pytest.raises(BlobError, match="has been altered"):
        calls(council, server).ask("Say a lot.", max_tokens=64)
    assert server.calls == 1


def test_a_requests_calls_are_answered_from_the_log_alone_or_named(council: Council, server: OpenAIStandin) -> None:
    for task in ("t-think", "t-other"):
        council.store.append(f"task-{task}", [TaskSubmitted(task_id=task, capability="think", request_id="r-1")])
    server.script(Text("yes"), Failure(401))
    calls(council, server).ask("First?", max_tokens=8)
    with pytest.raises(PermanentFailure):
        calls(council, server, task="t-other").ask("Second?", max_tokens=8)
    blobs = BlobStore(council.home / "blobs")
    found = replay(council.store, blobs, "r-1")
    assert [(c.task_id, c.answered) for c in found] == [("t-think", True), ("t-other", False)]
    assert "never completed" in found[1].why and replay(council.store, blobs, "r-none") == []
    body = blobs.path(council.events(streams.model_calls("t-think"))[0].digest)
    body.write_bytes(body.read_bytes() + b" ")
    assert not replay(council.store, blobs, "r-1")[0].answered  # an altered body is no answer


def fallback_calls(council: Council, server: OpenAIStandin, backup: OllamaStandin, task: str) -> ModelCalls:
    grant = council.warrant("coder-1", "coder", task=task)
    providers = {"openai": OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=10),
                 "ollama": OllamaProvider(base_url=backup.base_url, timeout=10)}
    config = ModelsConfig(default=MODEL, fallback={MODEL: ["ollama:backup"]}, retries=2)
    return ModelCalls(council.tools("coder-1", grant.warrant_id, task), config, "coder",
                      BlobStore(council.home / "blobs"), providers.__getitem__, sleep=lambda s: None)


def test_a_model_down_for_good_hands_the_question_to_its_fallback(council: Council, server: OpenAIStandin) -> None:
    server.script(Failure(503), Failure(503))
    with OllamaStandin(Text("from the backup")) as backup:
        answer = fallback_calls(council, server, backup, "t-fall").ask("Anyone there?", max_tokens=16)
        assert (answer.text, answer.model, server.calls, backup.calls) == ("from the backup", "ollama:backup", 2, 1)
    completed = [e for e in council.events(streams.model_calls("t-fall")) if type(e).__name__ == "ModelCallCompleted"]
    assert [c.provider for c in completed] == ["ollama"]


def test_a_fallback_the_policy_does_not_allow_is_passed_over(tmp_path: Path, server: OpenAIStandin) -> None:
    council = make_council(tmp_path)
    council.adopt(CALLS_POLICY.replace('roles = ["coder"]\neffect = "allow"\n',
                                       'roles = ["coder"]\nenvironments = ["openai.*"]\neffect = "allow"\n'))
    server.script(Failure(503), Failure(503))
    with OllamaStandin(Text("never")) as backup:
        with pytest.raises(ModelUnavailable, match="openai:gpt-test failed 2 time"):
            fallback_calls(council, server, backup, "t-denied").ask("Anyone there?", max_tokens=16)
        assert backup.calls == 0
