"""The orchestrator, measured: how good and how costly its plans are per model, and what its own bookkeeping adds to a
request's wall time.

* **planning** — each of the first ``--requests`` plain-word requests of ``bench/feature_requests.toml`` planned by
  the real planner (``plan.write``, as an agent runs it: a governed, recorded model call on a SQLite log under a
  warrant, validated, sent back once with its problems) for the example team and policy, over the accounts service.
  Per model: the share of plans valid first time, valid after one repair, and never valid; the share of valid ones
  that pass the request's acceptance checks (the roles it needs, the dependencies that must hold:
  ``bench/plan_checks.py``); latency and tokens per plan. ``scripted`` is a loopback stand-in that answers one fixed
  plan (the seed's Example 1) to everything: it measures the planner's own time, not planning.
* **overhead** — ``--runs`` requests carried out end to end on a running council (Ray, the orchestrator actor, the
  team's agents) with scripted replies: the orchestrator's own bookkeeping is the time from each event it answers
  to its answer being in the log (the planner's result → ``plan.proposed`` → ``plan.adopted`` with the tasks and
  phase warrants; the last task's completion → ``request.finished``). Printed against the request's wall time
  (target: under 5 %) and the agents' own model time.

Usage::

    python bench/orchestrator.py [--part planning|overhead|both] [--models local:default,scripted]
        [--requests 24] [--runs 2] [--max-tokens 2048]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support"), str(ROOT / "bench")]

from coding_support import block, repository, tools_with  # noqa: E402
from governance_support import make_council  # noqa: E402
from model_standins import OpenAIStandin, Respond, Structured, Text  # noqa: E402
from orchestrator_support import PLANNING_TEAM, POLICY, example_roster, jwt_answer  # noqa: E402
from plan_checks import check, load  # noqa: E402

from actors.llm.config import Price, ProviderSettings, split  # noqa: E402
from actors.llm.openai_provider import OpenAIProvider  # noqa: E402
from actors.llm.providers import make_provider  # noqa: E402
from actors.llm.types import Provider  # noqa: E402
from actors.orchestrator.planner import write_plan  # noqa: E402
from actors.skills import PermanentFailure  # noqa: E402
from governance.policy import load_policy  # noqa: E402

REQUESTS = ROOT / "bench" / "feature_requests.toml"
SERVICE = ROOT / "examples" / "accounts-service"
KEY = "sk-bench-" + uuid.uuid4().hex


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


# -- planning ------------------------------------------------------------------------------------------------------


def plan_once(provider: Provider, model: str, text: str, where: Path, max_tokens: int) -> tuple[dict[str, Any] | None,
                                                                                                 str, float, int]:
    """One request planned: (the planner's result or None, why it stopped, seconds, tokens)."""
    council = make_council(where, f"sqlite:///{where / 'events.db'}")
    council.adopt(POLICY.read_text())
    shutil.copytree(SERVICE, where / "workspace", dirs_exist_ok=True)
    repository(where / "workspace", {})
    budget = load_policy(POLICY).budget_for("request")
    inputs = {"instruction": text, "request_id": "r-bench", "team": example_roster().model_dump(),
              "budget": {"tokens": budget.tokens, "wall_time_s": budget.wall_time_s}, "max_tokens": max_tokens}
    started = time.perf_counter()
    try:
        result = write_plan(inputs, tools_with(council, provider, model, "plan", "orchestrator", price=Price()))
    except PermanentFailure as stopped:
        tokens = _tokens(council)
        return None, str(stopped).split(";")[0][:90], time.perf_counter() - started, tokens
    return result, "", time.perf_counter() - started, _tokens(council)


def _tokens(council: Any) -> int:
    return int(sum(e.payload.input_tokens + e.payload.output_tokens for e in council.store.read_all(1, None)
                   if e.type == "llm.completed"))


def planning(models: list[str], count: int, max_tokens: int) -> None:
    expectations = load(REQUESTS)[:count]
    print(f"planning: the first {len(expectations)} of {REQUESTS.name}'s requests, each planned by plan.write for the "
          f"example team and policy over examples/accounts-service (answers of at most {max_tokens} tokens)")
    print(f"{'model':24}{'first time':>11}{'after repair':>14}{'never':>7}{'checks pass':>13}{'p50 s':>8}"
          f"{'tokens/plan':>13}")
    for model in models:
        first = repaired = never = passing = 0
        seconds: list[float] = []
        tokens: list[int] = []
        why: dict[str, int] = {}
        provider, standin = _provider(model)
        try:
            with tempfile.TemporaryDirectory(prefix="plans-") as scratch:
                for n, expected in enumerate(expectations):
                    where = Path(scratch) / str(n)
                    where.mkdir()
                    result, stopped, took, used = plan_once(provider, model if model != "scripted" else
                                                            "openai:scripted", expected.text, where, max_tokens)
                    seconds.append(took)
                    tokens.append(used)
                    if result is None or result["problems"]:
                        never += 1
                        reason = stopped or (result["problems"][0][:90] if result else "")
                        why[reason] = why.get(reason, 0) + 1
                        continue
                    first += not result["repaired"]
                    repaired += bool(result["repaired"])
                    passing += not check(result["plan"], expected)
        finally:
            if standin is not None:
                standin.stop()
        total = len(expectations)
        print(f"{model:24}{first / total:>11.0%}{repaired / total:>14.0%}{never / total:>7.0%}"
              f"{passing / total:>13.0%}{statistics.median(seconds):>8.2f}{statistics.mean(tokens):>13,.0f}")
        for reason, n in sorted(why.items(), key=lambda kv: -kv[1])[:3]:
            print(f"  never valid ({n}): {reason}")


def _provider(model: str) -> tuple[Provider, OpenAIStandin | None]:
    if model == "scripted":
        standin = OpenAIStandin(default=Structured(jwt_answer()), expect_key=KEY).start()
        return OpenAIProvider(api_key=KEY, base_url=standin.base_url, timeout=30, stall_after=10), standin
    name, _ = split(model)
    return make_provider(name, ProviderSettings(timeout=600.0, stall_after=120.0, context=8192)), None


# -- overhead ------------------------------------------------------------------------------------------------------

TEAM = PLANNING_TEAM + """
[models]
default = "openai:scripted"

[models.providers.openai]
base_url = "{base_url}"
timeout = "30s"
stall_after = "10s"
"""


def _answer(body: dict[str, Any]) -> Text | Structured:
    """Each role's scripted answer: the plan (without shipping), the note, the code, its review, the tests, the
    docs."""
    import re

    system = str(body["messages"][0]["content"])
    asked = "\n".join(str(m["content"]) for m in body["messages"][1:])
    fixtures = ROOT / "tests" / "fixtures" / "jwt_feature"
    if system.startswith("You are the orchestrator"):
        plan = jwt_answer()
        plan["phases"] = plan["phases"][:-1]
        return Structured(plan)
    if system.startswith("You are the architect"):
        path = re.search(r"docs/design/r-[0-9a-f]+\.md", asked)
        return Text("Design.\n" + block(path[0] if path else "docs/design/x.md", "",
                                        (fixtures / "design.md").read_text(), fence="````"))
    if system.startswith("You are the coder"):
        return Text("Code.\n" + block("src/accounts_service/auth.py", "", (fixtures / "auth.py").read_text()))
    if system.startswith("You are the test writer"):
        return Text("Tests.\n" + block("tests/test_auth.py", "", (fixtures / "test_auth.py").read_text()))
    if system.startswith("You are the documenter"):
        return Text("Docs.\n" + block("README.md", "# accounts-service\n", "# accounts-service\n\n"
                                      + (fixtures / "docs.md").read_text(), fence="````"))
    if system.startswith("You are a security reviewer"):  # the example policy has auth.py reviewed
        return Structured({"answers": ["Sound.", "No SQL."], "verdict": "approve"})
    return Text("nothing")


def overhead(runs: int) -> None:
    import ray

    from cluster.driver import Council
    from cluster.feature import follow_feature, start_feature
    from cluster.settings import Settings
    from cluster.system import shutdown
    from cluster.team import load_team
    from events import streams

    os.environ["OPENAI_API_KEY"] = KEY
    rows = []
    with tempfile.TemporaryDirectory(prefix="orchestrator-") as scratch, \
            OpenAIStandin(default=Respond(_answer), expect_key=KEY) as server:
        home = Path(scratch)
        team = home / "team.toml"
        team.write_text(TEAM.format(base_url=server.base_url))
        settings = Settings(store=f"sqlite:///{home / '.council' / 'events.db'}", home=str(home / ".council"),
                            team=str(team), metrics_port=None, health=False)
        council = Council.start(settings, team=load_team(team), dispatch={"backoff_base": 0.05})
        try:
            for n in range(runs):
                repo = home / f"service-{n}"
                shutil.copytree(SERVICE, repo)
                feature = start_feature(council, "Add a user authentication system with JWT tokens", repo)
                seen = follow_feature(council, feature, lambda line: None, timeout=600)
                if seen.finished is None or seen.finished.outcome != "completed":
                    raise SystemExit(f"run {n}: the request did not complete: {seen.finished}")
                rows.append(_gaps(council, feature.request_id, streams))
        finally:
            shutdown()
            ray.shutdown()
    print(f"\noverhead: {runs} request(s) of the seed's Example 1 (design, code, tests, docs; no shipping) carried "
          "out on a running council with scripted replies")
    print(f"{'run':>4}{'wall s':>9}{'model s':>9}{'orchestrator s':>16}{'share':>8}   where")
    for n, (wall, model, gaps) in enumerate(rows):
        spent = sum(gaps.values())
        print(f"{n + 1:>4}{wall:>9.2f}{model:>9.2f}{spent:>16.3f}{spent / wall:>8.1%}   "
              + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in gaps.items()))
    share = sum(sum(g.values()) for _, _, g in rows) / sum(w for w, _, _ in rows)
    kept = sum(sum(g.values()) for _, _, g in rows)
    print(f"the orchestrator's bookkeeping: {share:.1%} of the requests' wall time (target: under 5%); "
          f"ratio orchestrator / agents' model time {kept / max(1e-9, sum(m for _, m, _ in rows)):.2f}")


def _gaps(council: Any, request_id: str, streams: Any) -> tuple[float, float, dict[str, float]]:
    """(wall seconds, the agents' model seconds, the orchestrator's answer time per decision)."""
    events = council.store.read_stream(streams.request(request_id))
    at = {e.type: e.recorded_at.timestamp() for e in events}
    planner = council.store.read_stream(streams.task(f"{request_id}-plan"))
    planned = max(e.recorded_at.timestamp() for e in planner if e.type == "task.completed")
    tasks = council.sql(f"SELECT max(finished_at) FROM tasks WHERE request_id = '{request_id}' "
                        f"AND task_id != '{request_id}-plan'").rows[0][0]
    last_done = tasks.timestamp() if tasks is not None else at["request.finished"]
    model = council.sql(f"SELECT coalesce(sum(latency_s), 0) FROM llm_calls WHERE request_id = '{request_id}'").rows
    gaps = {"plan→proposed": at["plan.proposed"] - planned,
            "proposed→adopted": at["plan.adopted"] - at["plan.proposed"],
            "done→finished": max(0.0, at["request.finished"] - last_done)}
    return at["request.finished"] - at["request.submitted"], float(model[0][0] or 0.0), gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("planning", "overhead", "both"), default="both")
    parser.add_argument("--models", default="local:default,scripted", help="provider:model list, comma-separated")
    parser.add_argument("--requests", type=int, default=24, help="how many requests of the set to plan per model")
    parser.add_argument("--runs", type=int, default=2, help="requests carried out end to end for the overhead")
    parser.add_argument("--max-tokens", type=int, default=2048, help="the longest plan asked for")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.part in ("planning", "both"):
        if any(split(m)[0] == "local" for m in models if m != "scripted"):
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        planning(models, args.requests, args.max_tokens)
        if any(split(m)[0] == "local" for m in models if m != "scripted"):
            import ray

            ray.shutdown()
    if args.part in ("overhead", "both"):
        overhead(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
