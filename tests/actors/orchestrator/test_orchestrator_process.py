"""The orchestrator over a real log, run by the real follower, its phase warrants signed by the real council
authority: a request from proposal to adoption to its end, each decision once, revisions after failures, a
question to a person, and a restarted orchestrator that repeats nothing."""

from __future__ import annotations

import copy
from pathlib import Path

import msgspec
import pytest
from governance_support import Council, make_council
from orchestrator_support import POLICY, feature, jwt_answer, plan_result, task

from actors.follow import Follower
from actors.orchestrator.process import OrchestratorProcess
from events import streams
from events.catalogue import (
    AlertRaised,
    Budget,
    BudgetAllocated,
    FeatureRequested,
    ModelCallCompleted,
    OrchestratorAnswered,
    OrchestratorDecided,
    PhaseGrant,
    PipelinePlanned,
    PlanAdopted,
    PlanConfirmed,
    PlanProposed,
    PlanRejected,
    PlanRevised,
    RequestFinished,
    RequestSubmitted,
    TaskCancelled,
    TaskCompleted,
    TaskDeadLettered,
    TaskSpec,
    VoteProposed,
    WarrantIssued,
)
from governance import motions, warrant
from governance.errors import WarrantError


@pytest.fixture
def council(tmp_path: Path) -> Council:
    found = make_council(tmp_path)
    found.adopt(POLICY.read_text())
    return found


def orchestrator(council: Council, request_id: str) -> OrchestratorProcess:
    def sign(rid: str, grants: list[PhaseGrant]) -> list[WarrantIssued]:
        authority = council.fold()
        return [warrant.issue(council.key, authority.phase_warrant(rid, g, issuer=council.key.public.fingerprint,
                                                                   now=council.clock())) for g in grants]

    def propose(rid: str, amounts: str, subject: str, vote_id: str) -> VoteProposed | str:
        intent = motions.propose_budget_vote(council.fold(), {rid: f"{rid}:{amounts}", "keep": ""},
                                             council.key.public.fingerprint, council.clock(), subject=subject,
                                             motion_id=vote_id)
        proposal = intent.events[0]
        assert isinstance(proposal, VoteProposed)
        return proposal

    return OrchestratorProcess(request_id, sign, propose)


def submit(council: Council, wanted: FeatureRequested) -> None:
    spec = TaskSpec(task_id=wanted.planner_task, capability="plan.write", inputs={"instruction": wanted.instruction})
    council.store.append(streams.request(wanted.request_id), [RequestSubmitted(request_id=wanted.request_id),
                                                              wanted])
    council.store.append(streams.task(wanted.planner_task),
                         [spec.submitted(wanted.planner_task, wanted.request_id, 2)])


def step(council: Council, process: OrchestratorProcess) -> list[str]:
    """One round; the types it appended."""
    before = council.store.head()
    Follower(process, council.store).step(council.clock())
    return [e.type for e in council.store.read_all(before + 1, None)]


def settle(council: Council, process: OrchestratorProcess, rounds: int = 6) -> list[str]:
    """Rounds until one appends nothing; every type appended."""
    out: list[str] = []
    for _ in range(rounds):
        made = step(council, process)
        if not made:
            return out
        out += made
    raise AssertionError(f"still deciding after {rounds} rounds: {out}")


def complete(council: Council, task_id: str, result: dict[str, object] | None = None) -> None:
    council.store.append(streams.task(task_id), [TaskCompleted(task_id=task_id, agent_id="a-1", attempt=1,
                                                               result=result or {})])


def fail(council: Council, task_id: str, kind: str = "permanent", error: str = "tests still fail") -> None:
    council.store.append(streams.task(task_id), [TaskDeadLettered(task_id=task_id, attempts=1, last_error=error,
                                                                  kind=kind)])  # type: ignore[arg-type]


def request_events(council: Council, request_id: str) -> list[object]:
    return council.events(streams.request(request_id))


def test_a_request_goes_from_its_plan_to_the_end_each_decision_once(council: Council) -> None:
    submit(council, feature("r-a"))
    process = orchestrator(council, "r-a")
    assert step(council, process) == []  # nothing to decide while the planner works
    complete(council, "r-a-plan", plan_result(jwt_answer()))
    assert step(council, process) == ["plan.proposed"]
    made = step(council, process)
    assert made[:2] == ["plan.adopted", "pipeline.planned"]
    assert made.count("warrant.issued") == 4 and made.count("task.submitted") == 4 + 10
    adopted = next(e for e in request_events(council, "r-a") if isinstance(e, PlanAdopted))
    planned = next(e for e in request_events(council, "r-a") if isinstance(e, PipelinePlanned))
    assert [s.step for s in planned.steps][:4] == ["design", "code-auth", "test-auth", "docs-auth"]
    assert settle(council, process) == []
    assert settle(council, orchestrator(council, "r-a")) == []  # a restarted orchestrator adopts nothing twice
    for tid in [*adopted.tasks.values(), *adopted.pipeline]:
        complete(council, tid)
    assert step(council, process) == ["request.finished"]
    finished = request_events(council, "r-a")[-1]
    assert isinstance(finished, RequestFinished) and finished.outcome == "completed"
    assert settle(council, orchestrator(council, "r-a")) == []


def test_a_task_of_a_phase_works_under_a_child_of_its_phase_warrant_narrowed_to_it(council: Council) -> None:
    submit(council, feature("r-w"))
    process = orchestrator(council, "r-w")
    complete(council, "r-w-plan", plan_result(jwt_answer()))
    settle(council, process)
    authority = council.fold()
    child = authority.warrant_for(task_id="r-w-design", agent_id="architect-1", role="architect", request_id="r-w",
                                  issuer=council.key.public.fingerprint, now=council.clock(), warrant_id="w-child")
    assert child.parent_id is not None and child.parent_id.startswith("wp-")
    assert set(child.actions) == {"file.read", "file.write", "git.commit", "llm.call"}
    assert "deploy" not in child.actions
    issued = warrant.issue(council.key, child)
    parent = authority.warrants[child.parent_id].issued
    chain = warrant.verify_chain(issued, lambda wid: parent if wid == child.parent_id else None, council.key.public,
                                 council.clock())
    assert [w.warrant_id for w in chain] == ["w-child", child.parent_id]  # signed, and narrower than its parent
    with pytest.raises(WarrantError, match="cannot take it"):
        authority.warrant_for(task_id="r-w-design", agent_id="coder-1", role="coder", request_id="r-w",
                              issuer=council.key.public.fingerprint, now=council.clock(), warrant_id="w-other")


def test_only_a_plan_was_asked_for(council: Council) -> None:
    submit(council, feature("r-p", plan_only=True))
    process = orchestrator(council, "r-p")
    complete(council, "r-p-plan", plan_result(jwt_answer()))
    assert settle(council, process) == ["plan.proposed", "request.finished"]
    assert isinstance(request_events(council, "r-p")[-1], RequestFinished)
    assert not any(isinstance(e, PlanAdopted) for e in request_events(council, "r-p"))


def test_a_plan_that_waits_for_a_person_starts_once_confirmed(council: Council) -> None:
    submit(council, feature("r-c", confirm=True))
    process = orchestrator(council, "r-c")
    complete(council, "r-c-plan", plan_result(jwt_answer()))
    assert settle(council, process) == ["plan.proposed"]
    council.store.append(streams.request("r-c"), [PlanConfirmed(request_id="r-c", revision=0, by="alice")])
    assert settle(council, process)[0] == "plan.adopted"


def test_a_plan_with_problems_stops_the_request_with_them(council: Council) -> None:
    submit(council, feature("r-bad"))
    process = orchestrator(council, "r-bad")
    complete(council, "r-bad-plan", plan_result(jwt_answer(), ["task 'x': role 'wizard' is not in the team"]))
    assert settle(council, process) == ["plan.rejected", "request.finished"]
    rejected, finished = request_events(council, "r-bad")[-2:]
    assert isinstance(rejected, PlanRejected) and rejected.problems == ["task 'x': role 'wizard' is not in the team"]
    assert isinstance(finished, RequestFinished) and finished.outcome == "stopped"
    assert "role 'wizard' is not in the team" in finished.reason


def test_planning_that_fails_for_good_stops_the_request(council: Council) -> None:
    submit(council, feature("r-pf"))
    fail(council, "r-pf-plan", "denied", "plan.approve denied: no rule allows it")
    assert settle(council, orchestrator(council, "r-pf")) == ["plan.rejected", "request.finished"]


def test_a_task_failing_for_good_revises_the_plan_then_asks_a_person(council: Council) -> None:
    submit(council, feature("r-r", revisions=1))
    process = orchestrator(council, "r-r")
    complete(council, "r-r-plan", plan_result(jwt_answer()))
    settle(council, process)
    for tid in ("r-r-design", "r-r-code-auth"):
        complete(council, tid)
    fail(council, "r-r-test-auth", "transient", "connection reset")
    assert settle(council, process) == []  # the dispatcher and the error detector handle what may pass
    fail(council, "r-r-test-auth")
    made = settle(council, process)
    assert made == ["orchestrator.decided", "task.submitted"]  # the decision, then the revision's planning task
    decided = next(e for e in request_events(council, "r-r") if isinstance(e, OrchestratorDecided))
    assert decided.decision == "revise" and "tests still fail" in decided.reason
    revising = council.events(streams.task("r-r-r1-plan"))[0]
    assert revising.inputs["done"] == {"design": "design.write", "code-auth": "code.write"}
    assert "tests still fail" in revising.inputs["failure"] and revising.inputs["revision"] == 1
    fixed = copy.deepcopy(jwt_answer())
    fixed["phases"] = [{"name": "testing", "tasks": [task("test-auth-2", "tester", "test.write", ["code-auth"])]},
                       {"name": "documentation", "tasks": [task("docs-auth", "documenter", "docs.write",
                                                                ["test-auth-2"])]}]
    complete(council, "r-r-r1-plan", plan_result(fixed))
    made = settle(council, process)
    assert made[:2] == ["plan.revised", "pipeline.planned"] and "task.cancelled" in made
    revised = next(e for e in request_events(council, "r-r") if isinstance(e, PlanRevised))
    assert revised.tasks == {"test-auth-2": "r-r-r1-test-auth-2", "docs-auth": "r-r-r1-docs-auth"}
    assert "r-r-docs-auth" in revised.cancelled
    assert isinstance(council.events(streams.task("r-r-docs-auth"))[-1], TaskCancelled)
    assert council.events(streams.task("r-r-r1-test-auth-2"))[0].depends_on == ["r-r-code-auth"]  # on done work
    fail(council, "r-r-r1-test-auth-2")
    assert settle(council, process) == ["orchestrator.decided"]  # no revision left: a question for a person
    asked = request_events(council, "r-r")[-1]
    assert isinstance(asked, OrchestratorDecided) and asked.decision == "ask"
    assert "council answer r-r" in asked.question
    council.store.append(streams.request("r-r"), [OrchestratorAnswered(request_id="r-r", by="alice",
                                                                       answer="skip the flaky token test")])
    assert settle(council, process) == ["task.submitted"]
    again = council.events(streams.task("r-r-r2-plan"))[0]
    assert again.inputs["answer"] == "skip the flaky token test"
    assert settle(council, orchestrator(council, "r-r")) == []  # restarted: nothing twice


def test_a_person_cancelling_the_plans_tasks_stops_the_request(council: Council) -> None:
    submit(council, feature("r-x"))
    process = orchestrator(council, "r-x")
    complete(council, "r-x-plan", plan_result(jwt_answer()))
    settle(council, process)
    council.store.append(streams.task("r-x-design"), [TaskCancelled(task_id="r-x-design", reason="not now")])
    assert settle(council, process) == ["request.finished"]
    finished = request_events(council, "r-x")[-1]
    assert isinstance(finished, RequestFinished) and finished.outcome == "stopped"


def test_two_incarnations_deciding_at_once_record_the_decision_once(council: Council) -> None:
    submit(council, feature("r-race"))
    first, second = orchestrator(council, "r-race"), orchestrator(council, "r-race")
    complete(council, "r-race-plan", plan_result(jwt_answer()))
    Follower(first, council.store).catch_up()
    Follower(second, council.store).catch_up()
    intents = list(first.decide(council.clock())), list(second.decide(council.clock()))
    for decided in intents:  # the second is the same event (its id is the decision's): the log keeps one
        council.store.append_many(decided)
    proposals = [e for e in request_events(council, "r-race") if isinstance(e, PlanProposed)]
    assert len(proposals) == 1 and msgspec.to_builtins(proposals[0].plan)["phases"][0]["name"] == "architecture"


def spend(council: Council, task_id: str, tokens: int, n: int) -> None:
    council.store.append(streams.model_calls(task_id), [ModelCallCompleted(
        task_id=task_id, key=f"{task_id}:{n}", digest="0" * 64, provider="openai", model="gpt", input_tokens=tokens,
        output_tokens=0, cost=0.0, latency_s=0.1, finish="stop")])


def test_the_orchestrator_asks_for_more_budget_before_the_request_runs_out_once_per_allocation(
        council: Council) -> None:
    submit(council, feature("r-b", budget=Budget(tokens=200_000, money=20.0)))
    process = orchestrator(council, "r-b")
    complete(council, "r-b-plan", plan_result(jwt_answer()))
    settle(council, process)
    spend(council, "r-b-design", 100_000, 1)
    assert settle(council, process) == []  # half spent: nothing to ask
    spend(council, "r-b-code-auth", 70_000, 2)  # 85%
    assert settle(council, process) == ["orchestrator.decided", "vote.proposed"]
    decided = request_events(council, "r-b")[-1]
    assert isinstance(decided, OrchestratorDecided) and decided.decision == "extend"
    assert "tokens 170,000.00 of 200,000.00" in decided.reason and "tokens=400000" in decided.reason
    vote = council.events(streams.vote("bv-r-b-1"))[0]
    assert isinstance(vote, VoteProposed) and vote.kind == "budget.allocate" and vote.options == ["r-b", "keep"]
    spend(council, "r-b-test-auth", 10_000, 3)
    assert settle(council, process) == []  # asked once for this allocation
    council.store.append(streams.budget("r-b"), [BudgetAllocated(request_id="r-b", budget=Budget(tokens=400_000),
                                                                 authority="vote bv-r-b-1")])
    assert settle(council, process) == []  # 180,000 of 400,000: enough
    spend(council, "r-b-test-auth", 150_000, 4)
    assert settle(council, process) == ["orchestrator.decided", "vote.proposed"]  # low again: the next allocation
    assert settle(council, orchestrator(council, "r-b")) == []


def test_a_revision_that_ships_runs_a_pipeline_of_its_own_and_the_request_ends_when_it_has(council: Council) -> None:
    submit(council, feature("r-s"))
    process = orchestrator(council, "r-s")
    complete(council, "r-s-plan", plan_result(jwt_answer()))
    settle(council, process)
    for tid in ("r-s-design", "r-s-code-auth"):
        complete(council, tid)
    fail(council, "r-s-test-auth")
    settle(council, process)
    again = {"summary": "", "phases": [
        {"name": "testing", "tasks": [task("test-auth-2", "tester", "test.write", ["code-auth"])]},
        {"name": "deployment", "tasks": [task("ship-2", "deployer", "ci.deploy", ["test-auth-2"])]}]}
    complete(council, "r-s-r1-plan", plan_result(again))
    settle(council, process)
    revised = next(e for e in request_events(council, "r-s") if isinstance(e, PlanRevised))
    assert revised.pipeline[0] == "r-s-r1-changes" and revised.pipeline[-1] == "r-s-r1-prod"
    planned = [e for e in request_events(council, "r-s") if isinstance(e, PipelinePlanned)][-1]
    assert {("design", "r-s-design"), ("code-auth", "r-s-code-auth"), ("test-auth-2", "r-s-r1-test-auth-2")} <= {
        (s.step, s.task_id) for s in planned.steps}
    assert planned.steps[-1].step == "prod"  # the report finds production by its name, whatever revision made it
    changes = council.events(streams.task("r-s-r1-changes"))[0]
    assert changes.depends_on == ["r-s-r1-test-auth-2"]
    impact = council.events(streams.task("r-s-r1-impact"))[0]
    assert impact.inputs["changes"] == "r-s-r1-changes"  # the renamed pipeline reads its own steps' results
    complete(council, "r-s-r1-test-auth-2")
    assert settle(council, process) == []  # the revision's pipeline has not run yet
    for tid in revised.pipeline:
        complete(council, tid)
    assert settle(council, process) == ["request.finished"]


def test_a_failure_the_error_detector_gave_up_on_is_answered_as_one_that_cannot_pass(council: Council) -> None:
    submit(council, feature("r-d"))
    process = orchestrator(council, "r-d")
    complete(council, "r-d-plan", plan_result(jwt_answer()))
    settle(council, process)
    fail(council, "r-d-design", "infrastructure", "the worker was lost")
    assert settle(council, process) == []  # the detector may still requeue it
    council.store.append("alerts", [AlertRaised(key="task:r-d-design", source="error-detector", task_id="r-d-design",
                                                summary="the worker was lost three times; a person must look")])
    assert settle(council, process) == ["orchestrator.decided", "task.submitted"]  # the decision, the replanning
    decided = request_events(council, "r-d")[-1]
    assert isinstance(decided, OrchestratorDecided) and decided.decision == "revise"
