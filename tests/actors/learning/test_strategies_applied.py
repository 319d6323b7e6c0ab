"""Each strategy where it bites, without Ray: the dispatcher leases a capability for its lease strategy's time, a
model call of the capability goes to the swapped model (back to its own chain if the gate refuses that one), and a
test run failing only recognised flaky tests is run once more."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from governance_support import BOX, POLICY, make_council
from model_standins import OpenAIStandin, Text

from actors.dispatch import Dispatch, DispatchSettings
from actors.follow import Follower
from actors.llm.calls import ModelCalls
from actors.llm.config import ModelsConfig
from actors.llm.openai_provider import OpenAIProvider
from actors.tools.testing import run_pytest
from actors.tools.workspace import Workspace
from events import EventStore, open_store, streams
from events.blobs import BlobStore
from events.catalogue import (
    AgentRegistered,
    StrategyChanged,
    StrategyReverted,
    TaskAssigned,
    TaskLeaseExpired,
    TaskSubmitted,
)

SLOPPY, STEADY = "openai:gpt-sloppy", "openai:gpt-steady"
KEY = "sk-strategies-" + uuid.uuid4().hex


def swap(capability: str = "code.write") -> StrategyChanged:
    return StrategyChanged(strategy_id=f"model-swap:{capability}:{SLOPPY}#1", kind="model-swap", subject=capability,
                           model=SLOPPY, value=STEADY, evidence=[1], reason="refused edits")


# -- the dispatcher's leases -----------------------------------------------------------------------


def lease_of(store: EventStore, task_id: str) -> float:
    assigned = next(e for e in store.read_stream(streams.task(task_id)) if isinstance(e.payload, TaskAssigned))
    assert isinstance(assigned.payload, TaskAssigned)
    return assigned.payload.lease_expires_at


@pytest.mark.parametrize(("strategies", "configured", "build", "test"), [
    ([], {}, 60.0, 60.0),
    ([], {"ci.build": 90.0}, 90.0, 60.0),  # a lease a person configured for a capability
    (["120"], {"ci.build": 90.0}, 120.0, 60.0),  # the learner's lease overrides it
    (["120", "240"], {}, 240.0, 60.0),  # the latest holds
    (["120", "240", "revert"], {}, 120.0, 60.0),  # reverted: the one before holds again
])
def test_a_capability_is_leased_for_the_strategy_in_effect(strategies: list[str], configured: dict[str, float],
                                                            build: float, test: float) -> None:
    store = open_store("memory://")
    for n, value in enumerate(strategies, 1):
        event = (StrategyReverted(strategy_id=f"lease:ci.build#{n - 1}", by="alice", reason="no")
                 if value == "revert" else
                 StrategyChanged(strategy_id=f"lease:ci.build#{n}", kind="lease", subject="ci.build", value=value,
                                 evidence=[1], reason="expired"))
        store.append(streams.STRATEGIES, [event])
    store.append(streams.agent("a-1"), [AgentRegistered(agent_id="a-1", role="ci", capabilities=["ci.build",
                                                                                                  "ci.test"], slots=2)])
    for task_id, capability in (("b", "ci.build"), ("t", "ci.test")):
        store.append(streams.task(task_id), [TaskSubmitted(task_id=task_id, capability=capability)])
    now = 1_000_000.0
    dispatch = Dispatch(DispatchSettings(lease=60.0, leases=configured), started_at=now)
    follower = Follower(dispatch, store)
    follower.step(now)
    follower.step(now)
    assert lease_of(store, "b") == now + build and lease_of(store, "t") == now + test


@pytest.mark.parametrize(("heard", "ran_out"), [(True, True), (False, False)])
def test_a_lease_taken_back_says_whether_its_term_ran_out_or_its_holder_fell_silent(heard: bool,
                                                                                    ran_out: bool) -> None:
    store = open_store("memory://")
    store.append(streams.agent("a-1"), [AgentRegistered(agent_id="a-1", role="ci", capabilities=["ci.build"])])
    store.append(streams.task("b"), [TaskSubmitted(task_id="b", capability="ci.build")])
    now = time.time()  # the agent was heard when it registered, by the log's clock
    dispatch = Dispatch(DispatchSettings(lease=30.0, heartbeat_timeout=15.0), started_at=now)
    follower = Follower(dispatch, store)
    follower.step(now)
    follower.step(now)
    later = now + 31
    if heard:
        dispatch.beat("a-1", 1, {}, later)  # alive, but not renewing the lease
    follower.step(later)
    expired = store.read_stream(streams.task("b"))[-1].payload
    assert isinstance(expired, TaskLeaseExpired) and expired.ran_out is ran_out


def test_a_lease_configured_as_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match=r"leases.ci.build must be > 0 seconds"):
        DispatchSettings(leases={"ci.build": 0})


# -- the model called ------------------------------------------------------------------------------


THINKS = """
[[rules]]
name = "coder-thinks"
actions = ["llm.call"]
roles = ["coder"]
environments = ["{allowed}"]
effect = "allow"
"""


@pytest.mark.parametrize(("strategies", "allowed", "capability", "asked"), [
    ([], "*", "code.write", "gpt-sloppy"),
    ([swap()], "*", "code.write", "gpt-steady"),
    ([swap()], "*", "code.test", "gpt-sloppy"),  # another capability: not swapped
    ([swap(), StrategyReverted(strategy_id=f"model-swap:code.write:{SLOPPY}#1", by="alice", reason="dear")],
     "*", "code.write", "gpt-sloppy"),
    ([swap()], "openai.gpt-sloppy", "code.write", "gpt-sloppy"),  # the gate refuses the swap: the role's own model
])
def test_a_call_goes_to_the_model_the_strategy_in_effect_names(tmp_path: Path, strategies: list[object],
                                                               allowed: str, capability: str, asked: str) -> None:
    council = make_council(tmp_path)
    council.adopt(POLICY + THINKS.format(allowed=allowed))
    if strategies:
        council.store.append(streams.STRATEGIES, strategies)  # type: ignore[arg-type]
    council.store.append(streams.task("t1"), [TaskSubmitted(task_id="t1", capability=capability)])
    grant = council.warrant("coder-1", "coder", task="t1")
    tools = council.tools("coder-1", grant.warrant_id, "t1")
    with OpenAIStandin(Text("done"), Text("done"), expect_key=KEY) as server:
        provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=10, stall_after=5)
        calls = ModelCalls(tools, ModelsConfig(default=SLOPPY, fallback={SLOPPY: [STEADY]}), "coder",
                           BlobStore(tmp_path / "blobs"), lambda name: provider, sleep=lambda seconds: None)
        answer = calls.ask("Say done.", max_tokens=16)
        assert answer.text == "done" and server.requests[-1].body["model"] == asked
        assert calls.ask("Say done again.", max_tokens=16, model=SLOPPY).model == SLOPPY  # a model asked by name


def test_a_task_that_asked_a_model_before_keeps_asking_it_so_the_log_answers(tmp_path: Path) -> None:
    council = make_council(tmp_path)
    council.adopt(POLICY + THINKS.format(allowed="*"))
    council.store.append(streams.task("t1"), [TaskSubmitted(task_id="t1", capability="code.write")])
    grant = council.warrant("coder-1", "coder", task="t1")
    with OpenAIStandin(Text("first"), expect_key=KEY) as server:
        provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=10, stall_after=5)

        def attempt() -> ModelCalls:
            return ModelCalls(council.tools("coder-1", grant.warrant_id, "t1"),
                              ModelsConfig(default=SLOPPY, fallback={SLOPPY: [STEADY]}), "coder",
                              BlobStore(tmp_path / "blobs"), lambda name: provider, sleep=lambda seconds: None)

        assert attempt().ask("Say it.", max_tokens=16).model == SLOPPY  # attempt 1, before any strategy
        council.store.append(streams.STRATEGIES, [swap()])
        again = attempt().ask("Say it.", max_tokens=16)  # attempt 2, the swap in effect
        assert (again.model, again.replayed, again.text, server.calls) == (SLOPPY, True, "first", 1)


# -- the test runner -------------------------------------------------------------------------------


FLAKY = """from pathlib import Path


def test_once():
    mark = Path(__file__).parent / "ran"
    if not mark.exists():
        mark.write_text("1")
        raise AssertionError("fails the first time only")


def test_fine():
    pass
"""
BROKEN = "def test_broken():\n    raise AssertionError('always')\n"


def project(root: Path, files: dict[str, str]) -> Workspace:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return Workspace(root)


def test_a_run_failing_only_flaky_tests_is_run_once_more_and_the_second_run_counts(tmp_path: Path) -> None:
    ws = project(tmp_path, {"tests/test_flaky.py": FLAKY})
    report = run_pytest(ws, args=["tests"], box=BOX, flaky={"tests.test_flaky::test_once"})
    assert (report.ok, report.passed, report.failed, report.retried) == (True, 2, 0, ["tests.test_flaky::test_once"])


def test_a_run_is_not_retried_without_the_strategy_or_when_another_test_fails(tmp_path: Path) -> None:
    ws = project(tmp_path / "a", {"tests/test_flaky.py": FLAKY})
    plain = run_pytest(ws, args=["tests"], box=BOX)
    assert (plain.ok, plain.failures, plain.retried) == (False, ["tests.test_flaky::test_once"], [])
    ws = project(tmp_path / "b", {"tests/test_flaky.py": FLAKY, "tests/test_broken.py": BROKEN})
    both = run_pytest(ws, args=["tests"], box=BOX, flaky={"tests.test_flaky::test_once"})
    assert (both.ok, both.failed, both.retried) == (False, 2, [])  # a real failure is never hidden by a retry
