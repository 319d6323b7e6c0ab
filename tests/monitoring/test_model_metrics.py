"""Model call metrics: folded from a real log's llm.* events, read back from the exposition text Prometheus scrapes."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from events import Event, EventStore, open_store, streams
from events.catalogue import (
    Budget,
    ModelAnswerRepaired,
    ModelCallCompleted,
    ModelCallFailed,
    ModelCallRequested,
)
from monitoring.metrics import CouncilCollector, LogMetrics

DIGEST = "cd" * 32
SECRET_PROMPT = "the prompt, which no metric may carry"


def requested(key: str, model: str, attempt: int = 1) -> ModelCallRequested:
    return ModelCallRequested(task_id="t1", warrant_id="w1", agent_id="coder-1", request_id="r1", key=key,
                              digest=DIGEST, provider=model.split(":")[0], model=model, max_tokens=256,
                              estimate=Budget(tokens=300, money=0.05), attempt=attempt)


def completed(key: str, model: str, *, answered_by: str, cost: float, tokens: tuple[int, int], latency_s: float,
              attempt: int = 1) -> ModelCallCompleted:
    return ModelCallCompleted(task_id="t1", key=key, digest=DIGEST, provider=model.split(":")[0], model=answered_by,
                              reply={"text": SECRET_PROMPT}, input_tokens=tokens[0], output_tokens=tokens[1],
                              cost=cost, latency_s=latency_s, finish="stop", attempt=attempt)


def failed(key: str, model: str, kind: str, *, cost: float = 0.0, transient: bool = True,
           attempt: int = 1) -> ModelCallFailed:
    return ModelCallFailed(task_id="t1", key=key, digest=DIGEST, provider=model.split(":")[0], model=model,
                           kind=kind, transient=transient, error=f"{kind}: {SECRET_PROMPT}",  # type: ignore[arg-type]
                           cost=cost, attempt=attempt)


GPT, CLAUDE, QWEN = "openai:gpt-test", "anthropic:claude-test", "ollama:qwen2.5-coder:7b"


def a_log() -> EventStore:
    """Calls as actors.llm.calls records them: an answer's cost includes what its run's failed tries were charged."""
    log = open_store("memory://")
    events: list[Event] = [
        requested("k1", GPT), failed("k1", GPT, "timeout", cost=0.01), requested("k1", GPT, attempt=2),
        completed("k1", GPT, answered_by="gpt-test-2026-01-01", cost=0.01 + 0.002, tokens=(1000, 100),
                  latency_s=1.2, attempt=2),
        ModelAnswerRepaired(task_id="t1", key="k1", error="score: missing", repair=1, model=GPT, provider="openai"),
        requested("k1.1", GPT),
        completed("k1.1", GPT, answered_by="gpt-test-2026-01-01", cost=0.003, tokens=(500, 50), latency_s=0.4),
        requested("k2", CLAUDE), failed("k2", CLAUDE, "authentication", transient=False),
        requested("k3", QWEN), failed("k3", QWEN, "rate_limited"), requested("k3", QWEN, attempt=2),
        completed("k3", QWEN, answered_by="qwen2.5-coder:7b", cost=0.0, tokens=(10, 5), latency_s=12.0, attempt=2),
    ]
    for event in events:
        log.append(streams.model_calls("t1"), [event])
    return log


def scrape(log: EventStore) -> str:
    metrics = LogMetrics()
    for event in log.read_all():
        metrics.evolve(event)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CouncilCollector(metrics, log.head, None))
    return generate_latest(registry).decode()


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_calls_tokens_dollars_repairs_and_latency_by_provider_and_model() -> None:
    found = values(scrape(a_log()))
    gpt, qwen = (("model", "gpt-test"), ("provider", "openai")), (("model", "qwen2.5-coder:7b"), ("provider", "ollama"))
    claude = (("model", "claude-test"), ("provider", "anthropic"))
    calls = {labels: n for (name, labels), n in found.items() if name == "council_model_calls_total"}
    assert calls == {(*gpt[:1], ("outcome", "completed"), *gpt[1:]): 2, (*gpt[:1], ("outcome", "timeout"), *gpt[1:]): 1,
                     (*claude[:1], ("outcome", "authentication"), *claude[1:]): 1,
                     (*qwen[:1], ("outcome", "completed"), *qwen[1:]): 1,
                     (*qwen[:1], ("outcome", "rate_limited"), *qwen[1:]): 1}
    assert found[("council_model_tokens_total", (("direction", "input"), *gpt))] == 1500
    assert found[("council_model_tokens_total", (("direction", "output"), *gpt))] == 150
    assert found[("council_model_tokens_total", (("direction", "input"), *qwen))] == 10
    assert found[("council_model_cost_usd_total", gpt)] == pytest.approx(0.015)  # the timeout's 0.01 once, not twice
    assert found[("council_model_cost_usd_total", claude)] == 0
    assert found[("council_model_repairs_total", gpt)] == 1 and ("council_model_repairs_total", qwen) not in found
    assert found[("council_model_call_latency_seconds_count", gpt)] == 2
    assert found[("council_model_call_latency_seconds_sum", gpt)] == pytest.approx(1.6)
    assert [found[("council_model_call_latency_seconds_bucket", (("le", le), *gpt))] for le in ("0.25", "0.5", "1.0",
                                                                                                  "2.5", "+Inf")] == [
        0, 1, 1, 2, 2]
    assert found[("council_model_call_latency_seconds_bucket", (("le", "10.0"), *qwen))] == 0
    assert found[("council_model_call_latency_seconds_bucket", (("le", "20.0"), *qwen))] == 1


def test_labels_name_the_model_asked_for_and_nothing_secret() -> None:
    text = scrape(a_log())
    assert SECRET_PROMPT not in text and "gpt-test-2026-01-01" not in text  # the answering version is not a label
    labels = {k for (name, ls), _ in values(text).items() if name.startswith("council_model_") for k, _ in ls}
    assert labels == {"provider", "model", "outcome", "direction", "le"}


def test_a_log_without_model_calls_publishes_no_model_samples() -> None:
    with open_store("memory://") as log:
        found = values(scrape(log))
    assert not any(name.startswith("council_model_") for name, _ in found)


def test_a_refolded_exporter_publishes_the_same_model_metrics() -> None:
    log = a_log()
    assert scrape(log) == scrape(log)


def test_calls_never_answered_are_forgotten_a_day_later() -> None:
    with open_store("memory://") as log:
        for n in range(48):
            log.append(streams.model_calls("t1"), [requested(f"k{n}", GPT), failed(f"k{n}", GPT, "timeout", cost=0.01)])
        log.append(streams.model_calls("t1"), [completed("k47", GPT, answered_by="gpt-test", cost=0.01 + 0.002,
                                                         tokens=(1, 1), latency_s=1.0)])
        events = log.read_all()
    start, metrics = events[0].recorded_at, LogMetrics()
    for n, event in enumerate(events):  # a call an hour
        metrics.evolve(msgspec.structs.replace(event, recorded_at=start + timedelta(hours=n // 2)))
    # Waiting only for the calls heard of in the last day (k24..k46); k47 was answered.
    assert list(metrics.models.open) == [f"k{n}" for n in range(24, 47)]
    assert metrics.models.cost[("openai", "gpt-test")] == pytest.approx(48 * 0.01 + 0.002)


def test_promtool_accepts_the_model_metrics() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed here (apt-get install prometheus)")
    checked = subprocess.run([promtool, "check", "metrics"], input=scrape(a_log()), capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
