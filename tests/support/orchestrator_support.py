"""What the orchestrator's tests share: the example team as a roster, a feature request, and the seed's Example 1
plan (five phases: architecture, implementation, testing, documentation, deployment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from coding_support import TEAM_AGENTS

from actors.orchestrator.validate import PlanAnswer, Roster, roster
from actors.pipeline.config import PipelineConfig
from actors.pipeline.plan import plan as plan_pipeline
from actors.skills.registry import SkillRegistry
from actors.tools.checkout import Checkout
from cluster.team import load_team
from events.catalogue import Budget, FeatureRequested, Plan
from governance.authority import grants
from governance.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "policy.toml"
TEAM = ROOT / "examples" / "team.toml"
START = "c0ffee" * 6 + "abcd"
REQUEST = "Add a user authentication system with JWT tokens"

PLANNING_TEAM = TEAM_AGENTS + """
[[agents]]
name = "orchestrator"
role = "orchestrator"
capabilities = ["plan.write"]
slots = 2

[[agents]]
name = "architect"
role = "architect"
capabilities = ["design.write"]
slots = 1
"""
"""A team file's agents for an orchestrated request: the coding team and the pipeline's, the orchestrator and the
architect (a test adds the ``[models]`` they think with)."""


def example_roster() -> Roster:
    """The example team under the example policy, with the actions the installed skills declare."""
    policy = load_policy(POLICY)
    team = load_team(TEAM)
    skills = SkillRegistry.load()
    agents = [(spec.role, spec.capabilities) for spec in team.members()]
    return roster(agents, {c: skills.get(c).actions for c in skills}, {r: grants(policy, r)[0] for r, _ in agents})


def task(id: str, role: str, capability: str, after: list[str] | None = None, **more: Any) -> dict[str, Any]:
    """A plan task as the model writes it."""
    return {"id": id, "title": more.get("title", f"{id} for the feature"), "role": role, "capability": capability,
            "instructions": more.get("instructions", f"Do {id}."), "acceptance": more.get("acceptance", []),
            "files": more.get("files", []), "estimate_minutes": more.get("minutes", 10),
            "estimate_tokens": more.get("tokens", 20_000), "depends_on": after or []}


def jwt_answer() -> dict[str, Any]:
    """The seed's Example 1 as a planner's answer."""
    return {"summary": "Password hashing and JWT issue/verify in accounts_service.auth, tested, documented, shipped.",
            "phases": [
                {"name": "architecture", "tasks": [task("design", "architect", "design.write",
                                                        files=["src/accounts_service/app.py"])]},
                {"name": "implementation", "tasks": [task(
                    "code-auth", "coder", "code.write", ["design"], files=["src/accounts_service/auth.py"],
                    acceptance=["passwords are hashed with a salt", "tokens are HS256 JWTs that expire"])]},
                {"name": "testing", "tasks": [task("test-auth", "tester", "test.write", ["code-auth"],
                                                   files=["tests/test_auth.py"])]},
                {"name": "documentation", "tasks": [task("docs-auth", "documenter", "docs.write", ["test-auth"])]},
                {"name": "deployment", "tasks": [task("ship", "deployer", "ci.deploy", ["docs-auth"])]},
            ]}


def jwt_plan() -> Plan:
    """:func:`jwt_answer` as the plan the log records."""
    return PlanAnswer.model_validate(jwt_answer()).plan()


def feature(request_id: str = "r-feature", *, plan_only: bool = False, confirm: bool = False, revisions: int = 1,
            budget: Budget | None = None) -> FeatureRequested:
    """A feature request over a tree at :data:`START`, with the example roster and the CI pipeline planned."""
    checkout = Checkout(f"requests/{request_id}", "/src/accounts-service", START, START, ["src/app.py"])
    _, pipeline = plan_pipeline(request_id, checkout, PipelineConfig(), "high")
    return FeatureRequested(request_id=request_id, instruction=REQUEST, repository=checkout.source,
                            tree=checkout.path, commit=START, planner_task=f"{request_id}-plan", plan_only=plan_only,
                            confirm=confirm, revisions=revisions, team=example_roster().model_dump(),
                            budget=budget or load_policy(POLICY).budget_for("request"), pipeline=pipeline)


def plan_result(answer: dict[str, Any], problems: list[str] | None = None) -> dict[str, Any]:
    """What the planner's task records for ``answer``."""
    plan = PlanAnswer.model_validate(answer).plan()
    return {"plan": msgspec.to_builtins(plan), "problems": problems or [], "repaired": [], "model": "openai:planner",
            "calls": 1, "cost": 0.01, "tokens": 1000}
