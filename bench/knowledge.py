"""What knowledge costs an agent: reading it from the log, choosing what to show a model, and searching it.

A scratch SQLite log is filled with ``--events`` task events and ``--entries`` knowledge entries
(patterns, practices, context, lessons about made-up modules), interleaved as a council writes
them. Then, in this process:

* **first recall**: an agent's knowledge base folded from an empty one (what an agent pays once,
  on its first recall), against the peer — reading the whole log, every type (what a recall that
  did not filter by type would pay);
* **later recall**: bringing it up to date when nothing changed (every later recall);
* **choose**: :meth:`KnowledgeBase.relevant` for task-like queries (a fresh index of the entries,
  ranked, cut to 1,024 tokens), p50 and p95;
* **semantic** (with the ``semantic`` extra): the first search (every entry embedded) and later
  ones (embeddings kept), against full-text search of the same queries.

Usage::

    python bench/knowledge.py [--events 100000] [--entries 1000] [--queries 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from figures import log_checked, percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.coding.context import tokens
from events import open_store, streams
from events.catalogue import KINDS, KnowledgeAdded, TaskCompleted, TaskSubmitted
from projections.knowledge import KnowledgeBase

TOPICS = ["password hashing", "jwt tokens", "database migrations", "sql parameters", "request logging",
          "retry with backoff", "rate limiting", "input validation", "error messages", "configuration files",
          "feature flags", "caching", "pagination", "date and time zones", "file uploads", "email sending",
          "background jobs", "health checks", "metrics", "tracing"]
MODULES = ["accounts", "billing", "search", "orders", "inventory", "reports", "notifications", "sessions"]


def entry(rng: random.Random, n: int) -> KnowledgeAdded:
    topic, module = rng.choice(TOPICS), rng.choice(MODULES)
    body = " ".join(f"In {module}, {topic} follows rule {k} of {n}: keep it in src/{module}/{topic.split()[0]}.py "
                    "and test it." for k in range(rng.randint(2, 8)))
    return KnowledgeAdded(entry_id=f"k-{n}", kind=rng.choice(KINDS), title=f"{topic.title()} in {module}",
                          body=body, tags=[module, topic.split()[0]], source="import", origin=f"knowledge/{n}.md")


def fill(url: str, events: int, entries: int, rng: random.Random) -> None:
    with open_store(url) as log:
        every = max(1, events // max(1, entries))
        made = 0
        for i in range(events // 2):
            task = f"t-{i}"
            log.append(streams.task(task), [TaskSubmitted(task_id=task, capability="code.write", inputs={}),
                                            TaskCompleted(task_id=task, agent_id="coder-1", attempt=1, result={},
                                                          duration_s=1.0)])
            if (2 * i) % every < 2 and made < entries:
                log.append(streams.knowledge(f"k-{made}"), [entry(rng, made)])
                made += 1
        while made < entries:
            log.append(streams.knowledge(f"k-{made}"), [entry(rng, made)])
            made += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(7)
    queries = [f"Add {rng.choice(TOPICS)} to the {rng.choice(MODULES)} service in src/{rng.choice(MODULES)}/app.py"
               for _ in range(args.queries)]
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'events.db'}"
        fill(url, args.events, args.entries, rng)
        with open_store(url) as log:
            head = log.head()
            start = time.perf_counter()
            base = KnowledgeBase()
            base.advance(log)
            first = time.perf_counter() - start
            start = time.perf_counter()
            everything = sum(len(log.read_all(p, 1000)) for p in range(1, head + 1, 1000))
            peer = time.perf_counter() - start
            start = time.perf_counter()
            base.advance(log)
            later = time.perf_counter() - start
            verified = log.verify().ok
        print(f"log: {head:,} events, {len(base.entries):,} knowledge entries")
        print(f"first recall (fold the knowledge): {first * 1000:,.0f} ms; peer, reading all {everything:,} events: "
              f"{peer * 1000:,.0f} ms (ratio {first / peer:.2f})")
        print(f"later recall, nothing new: {later * 1000:.2f} ms")
        chose: list[float] = []
        shown: list[int] = []
        for query in queries:
            start = time.perf_counter()
            chosen = base.relevant(query, ("pattern", "practice"), 1024, tokens)
            chose.append(time.perf_counter() - start)
            shown.append(len(chosen))
        print(f"choose within 1,024 tokens: p50 {percentile(chose, 50) * 1000:.1f} ms, p95 "
              f"{percentile(chose, 95) * 1000:.1f} ms, {sum(shown) / len(shown):.1f} entries shown on average")
        full: list[float] = []
        for query in queries:
            start = time.perf_counter()
            base.search(query, 10)
            full.append(time.perf_counter() - start)
        print(f"full-text search: p50 {percentile(full, 50) * 1000:.1f} ms")
        try:
            from projections.semantic import MiniLM, SemanticSearchUnavailable
            model = MiniLM()
            start = time.perf_counter()
            base.search(queries[0], 10, meaning=model)
            cold = time.perf_counter() - start
            warm: list[float] = []
            for query in queries[1:]:
                start = time.perf_counter()
                base.search(query, 10, meaning=model)
                warm.append(time.perf_counter() - start)
            print(f"semantic search: first {cold:.1f} s (model load and {len(base.entries):,} entries embedded), "
                  f"then p50 {percentile(warm, 50) * 1000:.1f} ms ({percentile(warm, 50) / percentile(full, 50):.1f}x "
                  "full-text)")
        except SemanticSearchUnavailable as exc:
            print(f"semantic search: not measured ({exc})")
    return log_checked(verified)


if __name__ == "__main__":
    sys.exit(main())
