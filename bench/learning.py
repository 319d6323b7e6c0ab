"""What learning saves: the same workload of requests with injected failures, run twice — the second time from a
fresh log that holds the first pass's lessons and strategies — side by side.

The workload (the same both passes; ``--requests``, 32 by default) is a stream of requests submitted one after the
other, each two tasks: a coding task (one of four capabilities, each carried out by the real coder, ``code.write``'s
skill: the tree read, the governed and recorded model call, SEARCH/REPLACE edits applied and compiled, a commit) and
a build after it (one of four capabilities, a plain skill that works for 0.35 s). Two failures are injected:

* **a sloppy model.** The team's model, ``openai:gpt-sloppy`` on a loopback OpenAI stand-in, answers each task's
  first two questions with edits that do not apply, and only the third right; its fallback (``[models] fallback``),
  ``openai:gpt-steady``, answers right the first time. Nothing tells the council which is which;
* **leases too short for the builds.** The dispatcher leases every build for 0.25 s; the bench's agents say they
  are alive but do not renew leases, so a lease is a task's time limit, and a build's lease expires before it ends.

The real dispatcher (:class:`actors.dispatch.Dispatch`) and the real learner (:class:`monitoring.learner.Learner`)
each follow the SQLite log in a thread, as their actors do; the bench's agents take each lease the dispatcher hands
out and run it as :class:`actors.agent.AgentActor` does (``task.started``, the skill, ``task.completed`` or
``task.failed``, each appended at the task stream's version; a lease taken back first makes the attempt "lost").
Pass 1 starts with nothing learned: the learner swaps the model for a capability after 3 refused answers and
lengthens a capability's lease after 2 expiries, while the workload runs. Pass 2 starts from a fresh log and a fresh
tree into which pass 1's lessons and strategies were copied (their evidence positions are pass 1's log).

Printed: per pass, the task attempts, expired leases, refused answers, model calls and tokens, the wall time, and
what was learned; then pass 2 over pass 1 as ratios.

Usage::

    python bench/learning.py [--requests 32]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import log_checked

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from coding_support import block, repository  # noqa: E402
from governance_support import POLICY, Council, make_council  # noqa: E402
from model_standins import OpenAIStandin, Respond, Text  # noqa: E402

from actors.coding.coder import write_code  # noqa: E402
from actors.dispatch import Dispatch, DispatchSettings  # noqa: E402
from actors.follow import Follower  # noqa: E402
from actors.llm.calls import ModelCalls  # noqa: E402
from actors.llm.config import ModelsConfig, Price  # noqa: E402
from actors.llm.openai_provider import OpenAIProvider  # noqa: E402
from actors.skills import failure_kind  # noqa: E402
from actors.tools.gated import Tools  # noqa: E402
from actors.tools.workspace import Workspace  # noqa: E402
from events import NO_STREAM, AppendResult, EventStore, Intent, NewEvent, streams  # noqa: E402
from events.blobs import BlobStore  # noqa: E402
from events.catalogue import (  # noqa: E402
    AgentRegistered,
    EditMalformed,
    KnowledgeAdded,
    ModelCallCompleted,
    RequestSubmitted,
    StrategyChanged,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskStarted,
    TaskSubmitted,
)
from events.errors import ConcurrencyError  # noqa: E402
from monitoring.learner import Learner, LearnerSettings  # noqa: E402
from projections.strategies import StrategyBook  # noqa: E402

KEY = "sk-bench-" + uuid.uuid4().hex
SLOPPY, STEADY = "openai:gpt-sloppy", "openai:gpt-steady"
CODE = ("code.write", "code.fix", "code.test", "code.docs")
BUILD = ("ci.build", "ci.package", "ci.lint", "ci.docs")
BUILD_SECONDS = 0.35
LEASE = 0.25
SAMPLE = ROOT / "examples" / "sample-service"
CODER_POLICY = POLICY.replace("[budgets.agent]\nactions = 50", "[budgets.agent]\nactions = 100000") + """
[[rules]]
name = "coder-works"
actions = ["llm.call", "file.read", "file.write", "git.commit"]
roles = ["coder"]
effect = "allow"
"""
MODULE = '"""Step {n} of the workload."""\n\n\ndef step_{n}(x: int) -> int:\n    return x + {n}\n'
ASKED = re.compile(r"Create (src/sample_service/learn_(\d+)\.py)")


def answer(body: dict[str, Any]) -> Text:
    """The stand-in's answer: the module the instruction asks for, but from the sloppy model only on its third try
    (its first two name a file and text that are not there)."""
    said = "\n".join(str(m.get("content", "")) for m in body["messages"])
    found = ASKED.search(said)
    path, n = (found.group(1), found.group(2)) if found else ("src/sample_service/learn_0.py", "0")
    tries = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    if body["model"] == SLOPPY.split(":", 1)[1] and tries < 2:
        return Text(f"I change {path}.\n" + block("src/sample_service/nowhere.py", "def missing():\n", "pass\n"),
                    output_tokens=40)
    return Text(f"I add {path}.\n" + block(path, "", MODULE.format(n=n)), output_tokens=60)


@dataclass(frozen=True)
class Figures:
    """What one pass cost."""

    attempts: int
    expired: int
    refused: int
    calls: int
    tokens: int
    seconds: float
    dead: int
    lessons: int
    strategies: list[str]


class BenchDispatch(Dispatch):
    """The dispatcher's process with what its Ray shell adds done in threads: each new lease handed to its agent."""

    def __init__(self, settings: DispatchSettings, agents: dict[str, Agent]) -> None:
        super().__init__(settings)
        self.agents = agents

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        for intent, result in stored:
            assigned = intent.events[-1]
            if isinstance(assigned, TaskAssigned):
                task = self.state.tasks[assigned.task_id]
                threading.Thread(target=self.agents[assigned.agent_id].run, daemon=True, args=(
                    assigned.task_id, assigned.attempt, task.capability, dict(task.inputs or {}),
                    result.stream_version)).start()


class Agent:
    """Runs an attempt as the agent actor does: started, the skill, the outcome, each at the task stream's version."""

    def __init__(self, agent_id: str, council: Council, provider: OpenAIProvider, config: ModelsConfig) -> None:
        self.agent_id, self.council, self.provider, self.config = agent_id, council, provider, config
        self.blobs = BlobStore(council.home / "blobs")
        self.git = threading.Lock()  # one commit at a time in the shared tree

    def run(self, task_id: str, attempt: int, capability: str, inputs: dict[str, Any], version: int) -> str:
        log = self.council.store
        try:
            version = log.append(streams.task(task_id), [TaskStarted(task_id=task_id, agent_id=self.agent_id,
                                                                     attempt=attempt)], version).stream_version
        except ConcurrencyError:
            return "lost"
        started = time.monotonic()
        outcome: Any
        try:
            if capability in BUILD:
                time.sleep(BUILD_SECONDS)
                result: dict[str, Any] = {"built": True}
            else:
                with self.git:
                    result = write_code(inputs, self.tools(task_id))
            outcome = TaskCompleted(task_id=task_id, agent_id=self.agent_id, attempt=attempt, result=result,
                                    duration_s=time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a skill's failure is the task's, as on the agent actor
            outcome = TaskFailed(task_id=task_id, agent_id=self.agent_id, attempt=attempt,
                                 error=f"{type(exc).__name__}: {exc}"[:2000], kind=failure_kind(exc))
        try:
            log.append(streams.task(task_id), [outcome], version)
        except ConcurrencyError:
            return "lost"
        return "done"

    def tools(self, task_id: str) -> Tools:
        """The coder's tools for ``task_id``, under its warrant (issued once), calling models through the stand-in."""
        if not self.council.store.read_stream(f"warrant-w-{task_id}"):
            self.council.warrant(self.agent_id, "coder", task=task_id)
        tools = Tools(self.council.gatekeeper(self.agent_id), f"w-{task_id}", task_id,
                      Workspace(self.council.home / "workspace"), hidden=(str(self.council.home),))
        tools.thinking = ModelCalls(tools, self.config, "coder", self.blobs, lambda name: self.provider)
        return tools


def run_pass(home: Path, server: OpenAIStandin, requests: int, carried: list[Any],
             name: str) -> tuple[Figures, EventStore]:
    """One pass of the workload on a fresh log at ``home`` holding ``carried`` (lessons and strategies) first; its
    requests' ids begin with ``name`` (so its lessons are not taken for the ones carried)."""
    council = make_council(home, f"sqlite:///{home / 'events.db'}")
    council.adopt(CODER_POLICY)
    for payload in carried:
        stream = (streams.knowledge(payload.entry_id) if isinstance(payload, KnowledgeAdded) else streams.STRATEGIES)
        council.store.append(stream, [NewEvent(payload=payload)])
    root = home / "workspace"
    shutil.copytree(SAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "dist"))
    repository(root, {})
    provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=30, stall_after=10)
    config = ModelsConfig(default=SLOPPY, fallback={SLOPPY: [STEADY]},
                          prices={SLOPPY: Price(input=1.0, output=4.0), STEADY: Price(input=1.0, output=4.0)})
    log = council.store
    agents = {f"agent-{n}": Agent(f"agent-{n}", council, provider, config) for n in range(3)}
    for agent_id in agents:
        log.append(streams.agent(agent_id), [AgentRegistered(agent_id=agent_id, role="coder",
                                                             capabilities=[*CODE, *BUILD], slots=4)])
    settings = DispatchSettings(lease=LEASE, leases=dict.fromkeys(CODE, 60.0), heartbeat_timeout=1.0,
                                backoff_base=0.02, backoff_max=0.1)
    dispatch = BenchDispatch(settings, agents)
    learner = Learner(LearnerSettings(), fallback=dict(config.fallback), lease=LEASE)
    followers = [Follower(dispatch, log, longest_wait=0.05), Follower(learner, log, longest_wait=0.05)]
    threads = [f.start(name) for f, name in zip(followers, ("dispatcher", "learner"), strict=True)]
    stop = threading.Event()

    def beat() -> None:  # alive, renewing no lease: a lease is each task's time limit
        while not stop.is_set():
            for agent_id in agents:
                dispatch.beat(agent_id, 1, {}, time.time())
            stop.wait(0.1)

    threading.Thread(target=beat, daemon=True).start()
    start = log.head()
    began = time.perf_counter()
    for i in range(requests):
        rid = f"{name}-r{i:03d}"
        code, build = f"{rid}-code", f"{rid}-build"
        submitted = log.append_many([
            Intent(streams.request(rid), [RequestSubmitted(request_id=rid, title=f"step {i}")], NO_STREAM),
            Intent(streams.task(code), [TaskSubmitted(
                task_id=code, capability=CODE[i % len(CODE)], request_id=rid, max_attempts=2, inputs={
                    "instruction": f"Create src/sample_service/learn_{i}.py with a function step_{i}",
                    "rounds": 2, "max_tokens": 512, "map_tokens": 256})], NO_STREAM),
            Intent(streams.task(build), [TaskSubmitted(task_id=build, capability=BUILD[i % len(BUILD)],
                                                       request_id=rid, depends_on=[code], max_attempts=4)], NO_STREAM)])
        refused = next((r for r in submitted if not isinstance(r, AppendResult)), None)
        if refused is not None:
            raise refused
        deadline = time.monotonic() + 60
        while not all(settled(log, t) for t in (code, build)):
            if time.monotonic() > deadline:
                raise SystemExit(f"request {rid} did not settle within 60 s")
            log.wait_for(log.head() + 1, 0.05)
    seconds = time.perf_counter() - began
    time.sleep(0.3)  # the learner's last lessons
    stop.set()
    for follower in followers:
        follower.stop()
    for thread in threads:
        thread.join(5)
    events = log.read_all(start + 1, None)
    kinds = [type(e.payload) for e in events]
    book = StrategyBook.of(log.read_stream(streams.STRATEGIES))
    figures = Figures(
        attempts=kinds.count(TaskAssigned), expired=kinds.count(TaskLeaseExpired), refused=kinds.count(EditMalformed),
        calls=kinds.count(ModelCallCompleted),
        tokens=sum(e.payload.input_tokens + e.payload.output_tokens for e in events
                   if isinstance(e.payload, ModelCallCompleted)),
        seconds=seconds, dead=kinds.count(TaskDeadLettered), lessons=kinds.count(KnowledgeAdded),
        strategies=[f"{s.changed.strategy_id} → {s.changed.value}" for s in book.in_effect().values()])
    return figures, log


def settled(log: EventStore, task_id: str) -> bool:
    """Whether the task completed or was dead-lettered."""
    return any(isinstance(e.payload, TaskCompleted | TaskDeadLettered) for e in log.read_stream(streams.task(task_id)))


def learned(log: EventStore) -> list[Any]:
    """The lessons and the strategies in effect in ``log``: what pass 2 starts with."""
    lessons = [e.payload for e in log.read_all(1, None, [KnowledgeAdded.type_name])]
    book = StrategyBook.of(log.read_stream(streams.STRATEGIES))
    return [*lessons, *(s.changed for s in book.in_effect().values())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=32, help="requests in the workload")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="learning-bench-"))
    with OpenAIStandin(default=Respond(answer), expect_key=KEY) as server:
        first, log1 = run_pass(tmp / "pass-1", server, args.requests, [], "p1")
        carried = learned(log1)
        second, log2 = run_pass(tmp / "pass-2", server, args.requests, carried, "p2")
    rows = [("task attempts", first.attempts, second.attempts), ("leases expired", first.expired, second.expired),
            ("answers refused", first.refused, second.refused), ("model calls", first.calls, second.calls),
            ("model tokens", first.tokens, second.tokens), ("tasks dead-lettered", first.dead, second.dead),
            ("lessons recorded", first.lessons, second.lessons)]
    print(f"{args.requests} requests a pass, one after the other, each a coding task (the coder, 4 capabilities) and a "
          f"build after it (4 capabilities, {BUILD_SECONDS} s of work); injected: a model whose edits apply only on "
          f"its third answer (its fallback's on the first), build leases of {LEASE} s; SQLite log, OpenAI stand-in "
          "on loopback")
    print(f"pass 2 starts from a fresh log holding pass 1's {sum(isinstance(c, KnowledgeAdded) for c in carried)} "
          f"lessons and {sum(isinstance(c, StrategyChanged) for c in carried)} strategies")
    print(f"{'':24}{'pass 1':>10}{'pass 2':>10}{'2 / 1':>8}")
    for name, a, b in rows:
        print(f"{name:24}{a:>10,}{b:>10,}" + (f"{b / a:>8.2f}" if a else f"{'-':>8}"))
    print(f"{'wall time (s)':24}{first.seconds:>10.1f}{second.seconds:>10.1f}{second.seconds / first.seconds:>8.2f}")
    print("strategies pass 1 learned: " + "; ".join(first.strategies))
    return log_checked(log1.verify().ok and log2.verify().ok)


if __name__ == "__main__":
    sys.exit(main())
