"""What the coding team adds to a model call: the same scripted answers, asked bare and through the coder, alternating.

* **bare** (the peer): a script's one call — the instruction alone — to a loopback OpenAI stand-in through the
  provider, and the answer's file written as it stands.
* **team**: ``code.write`` on a copy of the sample service, as an agent runs it: the tree read (and kept as a blob),
  the repository map and the search, the governed and recorded call with that context, the SEARCH/REPLACE block
  parsed, applied and compiled in memory, the file written through the gate, one commit under the warrant.

The stand-in answers both with the same new module. Printed: p50 and p99 seconds a side and their ratio, and the
prompt tokens each sends (the stand-in counts a token per four characters): what the team's context costs.

Usage::

    python bench/coding_overhead.py [--calls 20]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from figures import log_checked, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from coding_support import block, repository, tools_with  # noqa: E402
from governance_support import POLICY, make_council  # noqa: E402
from model_standins import OpenAIStandin, Respond, Text  # noqa: E402

from actors.coding.coder import write_code  # noqa: E402
from actors.llm.openai_provider import OpenAIProvider  # noqa: E402
from actors.llm.types import Message, ModelRequest  # noqa: E402
from events import streams  # noqa: E402
from events.catalogue import ModelCallCompleted  # noqa: E402

KEY = "sk-bench-" + uuid.uuid4().hex
MODEL = "openai:gpt-bench"
SAMPLE = ROOT / "examples" / "sample-service"
CODER_POLICY = POLICY.replace("[budgets.agent]\nactions = 50", "[budgets.agent]\nactions = 100000") + """
[[rules]]
name = "coder-works"
actions = ["llm.call", "file.read", "file.write", "git.commit"]
roles = ["coder"]
effect = "allow"
"""
MODULE = '"""Fibonacci numbers."""\n\n\ndef fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n' \
         '        a, b = b, a + b\n    return a\n'
NUMBER = re.compile(r"fib_(\d+)\.py")


def answer(body: dict[str, Any]) -> Text:
    """The same new module for either side, under the name the question asks for."""
    asked = NUMBER.search(str(body["messages"][-1]["content"]))
    path = f"src/sample_service/fib_{asked.group(1) if asked else 0}.py"
    return Text(f"I add {path}.\n" + block(path, "", MODULE), output_tokens=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls a side")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coding-bench-"))
    council = make_council(tmp, f"sqlite:///{tmp / 'events.db'}")
    council.adopt(CODER_POLICY)
    root = council.home / "workspace"
    shutil.copytree(SAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "dist"))
    repository(root, {})
    files = sum(1 for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
    bare_dir = tmp / "bare"
    bare_dir.mkdir()
    with OpenAIStandin(default=Respond(answer), expect_key=KEY) as server:
        provider = OpenAIProvider(api_key=KEY, base_url=server.base_url, timeout=30, stall_after=10)
        bare: list[float] = []
        team: list[float] = []
        bare_tokens: list[int] = []
        team_tokens: list[int] = []
        for i in range(-3, args.calls):  # three of each first, not counted
            instruction = f"Create src/sample_service/fib_{i + 3}.py with a function that computes Fibonacci numbers"
            t0 = time.perf_counter()
            reply = provider.complete(ModelRequest(model="gpt-bench", messages=[
                Message(role="user", content=instruction)], max_tokens=1024))
            code = reply.text.split("=======\n", 1)[-1].split(">>>>>>> REPLACE", 1)[0]
            (bare_dir / f"fib_{i + 3}.py").write_text(code)
            t1 = time.perf_counter()
            done = write_code({"instruction": instruction, "max_tokens": 1024},
                              tools_with(council, provider, MODEL, f"t-{i + 3}", "coder"))
            t2 = time.perf_counter()
            assert done["rounds"] == 1 and done["commit"], done
            if i >= 0:
                bare.append(t1 - t0)
                team.append(t2 - t1)
                bare_tokens.append(reply.input_tokens)
                answered = [e.payload for e in council.store.read_stream(streams.model_calls(f"t-{i + 3}"))
                            if isinstance(e.payload, ModelCallCompleted)]
                team_tokens.append(answered[-1].input_tokens)
    ms = 1000
    print(f"{args.calls} requests a side, alternating; the coder on a copy of the sample service "
          f"({files} files at first, one more a request), SQLite log "
          "(WAL, synchronous=FULL), OpenAI stand-in on loopback answering both with the same new module")
    print(f"{'':44}{'p50 ms':>9}{'p99 ms':>9}{'prompt tokens':>15}")
    print(f"{'bare: one call, the file written':44}{percentile(bare, 50) * ms:>9.1f}{percentile(bare, 99) * ms:>9.1f}"
          f"{sum(bare_tokens) / len(bare_tokens):>15,.0f}")
    print(f"{'team: read, map, search, call, edit, commit':44}{percentile(team, 50) * ms:>9.1f}"
          f"{percentile(team, 99) * ms:>9.1f}{sum(team_tokens) / len(team_tokens):>15,.0f}")
    print(f"the team adds {(percentile(team, 50) - percentile(bare, 50)) * ms:.1f} ms at p50 (ratio "
          f"{percentile(team, 50) / percentile(bare, 50):.1f}) and "
          f"{sum(team_tokens) / len(team_tokens) - sum(bare_tokens) / len(bare_tokens):,.0f} prompt tokens of "
          "context to a call")
    return log_checked(council.store.verify().ok)


if __name__ == "__main__":
    sys.exit(main())
