"""The learner over a real log, run by the real follower: a lesson for every finished request and task (with its
evidence), strategies when evidence crosses a threshold and not before, only on new evidence after a revert, nothing
recorded twice — not by a restarted learner, nor after an append that failed."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from actors.follow import Follower
from cluster.learning import revert
from events import AppendResult, CouncilError, EventStore, Intent, RecordedEvent, open_store, streams
from events.catalogue import (
    EditApplied,
    EditMalformed,
    FailureKind,
    FeatureRequested,
    KnowledgeAdded,
    ModelCallCompleted,
    RequestFinished,
    RequestSubmitted,
    StrategyChanged,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskRequeued,
    TaskSubmitted,
    WarrantIssued,
)
from events.catalogue import (
    TestsReported as Reported,
)
from events.errors import StoreUnavailable
from monitoring.learner import Learner, LearnerSettings
from projections.strategies import StrategyBook

SLOPPY, STEADY = "openai:gpt-sloppy", "openai:gpt-steady"
DIGEST = "0" * 64


def submit(log: EventStore, task_id: str, capability: str = "code.write", request_id: str | None = None,
           depends_on: Sequence[str] = ()) -> None:
    log.append(streams.task(task_id), [TaskSubmitted(task_id=task_id, capability=capability, request_id=request_id,
                                                     depends_on=list(depends_on))])


def attempt(log: EventStore, task_id: str, n: int = 1) -> None:
    log.append(streams.task(task_id), [TaskAssigned(task_id=task_id, agent_id="a-1", lease_id=f"l{n}",
                                                    lease_expires_at=1.0, attempt=n)])


def complete(log: EventStore, task_id: str, n: int = 1) -> None:
    log.append(streams.task(task_id), [TaskCompleted(task_id=task_id, agent_id="a-1", attempt=n)])


def fail_for_good(log: EventStore, task_id: str, kind: FailureKind, error: str, attempts: int = 1) -> None:
    for n in range(1, attempts + 1):
        attempt(log, task_id, n)
        log.append(streams.task(task_id), [TaskFailed(task_id=task_id, agent_id="a-1", attempt=n, error=error,
                                                      kind=kind)])
    log.append(streams.task(task_id), [TaskDeadLettered(task_id=task_id, attempts=attempts, last_error=error,
                                                        kind=kind)])


def edits(log: EventStore, task_id: str, model: str, refused: int, applied: bool = True) -> None:
    stream = streams.model_calls(task_id)
    for r in range(1, refused + 1):
        log.append(stream, [ModelCallCompleted(task_id=task_id, key=f"k{r}", digest=DIGEST, provider="openai",
                                               model=model, input_tokens=100, output_tokens=50, cost=0.0,
                                               latency_s=0.1, finish="stop"),
                            EditMalformed(task_id=task_id, agent_id="a-1", key=f"k{r}", model=model, round=r,
                                          refusal="does-not-apply", error="no match")])
    if applied:
        log.append(stream, [ModelCallCompleted(task_id=task_id, key="ok", digest=DIGEST, provider="openai",
                                               model=model, input_tokens=100, output_tokens=50, cost=0.0,
                                               latency_s=0.1, finish="stop"),
                            EditApplied(task_id=task_id, agent_id="a-1", key="ok", model=model, round=refused + 1,
                                        blocks=1, files=["src/app.py"])])


def expire(log: EventStore, task_id: str, n: int, ran_out: bool = True) -> None:
    attempt(log, task_id, n)
    log.append(streams.task(task_id), [TaskLeaseExpired(task_id=task_id, agent_id="a-1", lease_id=f"l{n}",
                                                        attempt=n, reason="no heartbeat", ran_out=ran_out)])


def run(learner: Learner, log: EventStore) -> list[RecordedEvent]:
    """One round of the follower; what it appended."""
    before = log.head()
    Follower(learner, log).step(time.time())
    return log.read_all(before + 1, None)


def learner(**settings: object) -> Learner:
    return Learner(LearnerSettings.model_validate(settings), fallback={SLOPPY: [STEADY]}, lease=60.0)


def lessons(events: Sequence[RecordedEvent]) -> dict[str, KnowledgeAdded]:
    return {e.payload.entry_id: e.payload for e in events if isinstance(e.payload, KnowledgeAdded)}


def strategies(events: Sequence[RecordedEvent]) -> list[StrategyChanged]:
    return [e.payload for e in events if isinstance(e.payload, StrategyChanged)]


# -- lessons ---------------------------------------------------------------------------------------


def test_a_finished_request_gives_one_lesson_with_its_plan_shape_what_worked_and_what_failed() -> None:
    log = open_store("memory://")
    log.append(streams.request("r-1"), [RequestSubmitted(request_id="r-1", title="Add login")])
    submit(log, "r-1-design", "design.write", "r-1")
    submit(log, "r-1-code", "code.write", "r-1", ["r-1-design"])
    submit(log, "r-1-test", "ci.test", "r-1", ["r-1-code"])
    attempt(log, "r-1-design")
    complete(log, "r-1-design")
    attempt(log, "r-1-code")
    edits(log, "r-1-code", STEADY, refused=0)
    complete(log, "r-1-code")
    fail_for_good(log, "r-1-test", "permanent", "PermanentFailure: 2 tests failed: test_login", attempts=1)
    the = learner()
    found = lessons(run(the, log))
    assert list(found) == ["lesson-task-r-1-test-4", "lesson-request-r-1"]
    lesson = found["lesson-request-r-1"]
    assert lesson.kind == "lesson" and lesson.origin == "r-1" and lesson.source == "failure"
    assert "## Plan shape\n- design (design.write)\n- code (code.write) after design\n- test (ci.test) after code" \
        in lesson.body
    assert "r-1-code: the edits of openai:gpt-steady applied the first time (src/app.py" in lesson.body
    assert "r-1-test: permanent: it cannot succeed as asked" in lesson.body  # the detector's own words
    assert "2 tests failed" in lesson.body
    claims = (TaskSubmitted, TaskCompleted, EditApplied, TaskFailed, TaskDeadLettered)
    assert lesson.evidence == [e.position for e in log.read_all(1, None) if isinstance(e.payload, claims)]
    failure = found["lesson-task-r-1-test-4"]
    assert failure.source == "failure" and "permanent" in failure.tags
    assert run(the, log) == [] and run(learner(), log) == []  # nothing twice, not even by a restarted learner


def test_an_orchestrated_request_is_learned_when_it_finishes_not_when_its_tasks_settle() -> None:
    log = open_store("memory://")
    log.append(streams.request("r-2"), [FeatureRequested(request_id="r-2", instruction="Add a health endpoint",
                                                         repository="svc", tree="requests/r-2", commit="abc",
                                                         planner_task="r-2-plan")])
    submit(log, "r-2-code", "code.write", "r-2")
    attempt(log, "r-2-code")
    complete(log, "r-2-code")
    the = learner()
    assert lessons(run(the, log)) == {}
    log.append(streams.request("r-2"), [RequestFinished(request_id="r-2", outcome="completed", elapsed_s=12.5)])
    found = lessons(run(the, log))
    assert list(found) == ["lesson-request-r-2"]
    assert found["lesson-request-r-2"].title == "Add a health endpoint: completed"
    assert "completed in 12.5 s: 1 task(s), 1 attempt(s)" in found["lesson-request-r-2"].body


def test_a_task_outside_any_request_gives_its_own_lesson_and_a_fix_after_refusals_is_what_worked() -> None:
    log = open_store("memory://")
    submit(log, "t-1")
    attempt(log, "t-1")
    edits(log, "t-1", SLOPPY, refused=2)
    complete(log, "t-1")
    found = lessons(run(learner(), log))
    body = found["lesson-task-t-1-3"].body
    assert "edits refused as does-not-apply were fixed in round 3 by openai:gpt-sloppy" in body
    assert "300 model tokens" in body.replace(",", "") or "450 model tokens" in body


def test_a_dead_letter_by_a_dependency_is_not_a_failure_lesson_of_its_own() -> None:
    log = open_store("memory://")
    submit(log, "t-a")
    fail_for_good(log, "t-a", "transient", "TimeoutError: slow", attempts=3)
    submit(log, "t-b", depends_on=["t-a"])
    log.append(streams.task("t-b"), [TaskDeadLettered(task_id="t-b", attempts=0, last_error="dependency t-a was "
                                                      "dead-lettered", kind="transient", dependency="t-a")])
    found = lessons(run(learner(), log))
    assert "all 3 attempts failed the same way" in found["lesson-task-t-a-8"].body  # the detector's judgement
    assert "it never ran: the task it depends on, t-a, failed for good" in found["lesson-task-t-b-2"].body


def test_a_task_requeued_and_settled_again_gives_a_second_lesson() -> None:
    log = open_store("memory://")
    submit(log, "t-r")
    fail_for_good(log, "t-r", "permanent", "nope")
    the = learner()
    assert list(lessons(run(the, log))) == ["lesson-task-t-r-4"]
    log.append(streams.task("t-r"), [TaskRequeued(task_id="t-r", reason="try again")])
    attempt(log, "t-r", 2)
    complete(log, "t-r", 2)
    assert list(lessons(run(the, log))) == ["lesson-task-t-r-7"]


def test_no_lessons_when_the_settings_say_so() -> None:
    log = open_store("memory://")
    submit(log, "t-q")
    attempt(log, "t-q")
    complete(log, "t-q")
    assert run(learner(lessons=False), log) == []


# -- strategies ------------------------------------------------------------------------------------


def test_a_model_whose_edits_keep_being_refused_is_swapped_at_the_threshold_not_before() -> None:
    log = open_store("memory://")
    the = learner(malformed_after=3)
    submit(log, "t-1")
    edits(log, "t-1", SLOPPY, refused=2)
    assert strategies(run(the, log)) == []  # 2 of 3 answers refused: under the threshold of 3
    submit(log, "t-2")
    edits(log, "t-2", SLOPPY, refused=2)
    (swap,) = strategies(run(the, log))
    assert (swap.kind, swap.subject, swap.model, swap.value) == ("model-swap", "code.write", SLOPPY, STEADY)
    assert swap.strategy_id == f"model-swap:code.write:{SLOPPY}#1"
    refusals = [e.position for e in log.read_all(1, None) if isinstance(e.payload, EditMalformed)]
    assert swap.evidence == refusals and "4 of 6 answers" in swap.reason
    assert run(the, log) == [] and run(learner(malformed_after=3), log) == []  # once, even after a restart


def test_a_model_mostly_applying_is_not_swapped_and_one_without_a_fallback_never_is() -> None:
    log = open_store("memory://")
    the = learner(malformed_after=2, malformed_share=0.5)
    for n in range(4):
        submit(log, f"ok-{n}")
        edits(log, f"ok-{n}", SLOPPY, refused=1 if n < 2 else 0)  # 2 refused of 6 answers: a third
    assert strategies(run(the, log)) == []
    for n in range(3):
        submit(log, f"lone-{n}")
        edits(log, f"lone-{n}", "openai:gpt-alone", refused=3, applied=False)
    assert strategies(run(the, log)) == []  # nothing in its fallback chain to swap it for


def test_a_capability_whose_leases_keep_expiring_gets_longer_leases_up_to_the_longest() -> None:
    log = open_store("memory://")
    the = learner(lease_after=2, lease_factor=2.0, longest_lease=200.0)
    submit(log, "slow-1", "ci.build")
    expire(log, "slow-1", 1)
    assert strategies(run(the, log)) == []
    expire(log, "slow-1", 2)
    (first,) = strategies(run(the, log))
    assert (first.kind, first.subject, first.value) == ("lease", "ci.build", "120")
    assert first.strategy_id == "lease:ci.build#1"
    expire(log, "slow-1", 3)
    assert strategies(run(the, log)) == []  # the expiries before the strategy were weighed already
    expire(log, "slow-1", 4)
    (second,) = strategies(run(the, log))
    assert (second.value, second.strategy_id) == ("200", "lease:ci.build#2")  # 240 capped at the longest
    expire(log, "slow-1", 5)
    expire(log, "slow-1", 6)
    assert strategies(run(the, log)) == []  # at the longest already
    assert StrategyBook.of(log.read_stream(streams.STRATEGIES)).leases() == {"ci.build": 200.0}


def test_leases_taken_back_from_holders_that_died_or_fell_silent_are_no_evidence() -> None:
    log = open_store("memory://")
    submit(log, "lost", "ci.build")
    for n in range(1, 5):
        expire(log, "lost", n, ran_out=False)
    assert strategies(run(learner(lease_after=2), log)) == []


def test_a_test_that_fails_then_passes_with_no_edit_between_is_recognised_as_flaky() -> None:
    log = open_store("memory://")
    the = learner(flaky_after=2)
    test = "tests.test_clock::test_timeout"
    for n in range(3):
        task = f"t-{n}"
        submit(log, task, "ci.test")
        log.append(streams.warrant(f"w-{n}"), [WarrantIssued(warrant_id=f"w-{n}", holder="tester-1", task_id=task,
                                                              warrant=b"w", signature=b"s" * 64, issuer="f" * 64)])
        for key, failing in (("k1", [test]), ("k2", [])):
            log.append(streams.warrant(f"w-{n}"), [Reported(warrant_id=f"w-{n}", key=key, passed=9,
                                                                  failed=len(failing), errors=0, skipped=0,
                                                                  duration_s=1.0, failures=failing)])
        if n == 0:
            assert strategies(run(the, log)) == []  # once may be a fix that landed elsewhere
    (flaky,) = strategies(run(the, log))
    assert (flaky.kind, flaky.subject, flaky.value) == ("flaky-retry", test, "1")
    assert StrategyBook.of(log.read_stream(streams.STRATEGIES)).flaky() == {test}


def test_a_test_fixed_by_an_edit_between_its_runs_is_not_flaky() -> None:
    log = open_store("memory://")
    the = learner(flaky_after=1)
    submit(log, "t-f", "code.test")
    log.append(streams.warrant("w-f"), [WarrantIssued(warrant_id="w-f", holder="coder-1", task_id="t-f",
                                                       warrant=b"w", signature=b"s" * 64, issuer="f" * 64)])
    log.append(streams.warrant("w-f"), [Reported(warrant_id="w-f", key="k1", passed=1, failed=1, errors=0,
                                                       skipped=0, duration_s=1.0, failures=["t::a"])])
    edits(log, "t-f", STEADY, refused=0)
    log.append(streams.warrant("w-f"), [Reported(warrant_id="w-f", key="k2", passed=2, failed=0, errors=0,
                                                       skipped=0, duration_s=1.0)])
    assert strategies(run(the, log)) == []


def test_a_reverted_strategy_comes_back_only_on_evidence_recorded_after_the_revert() -> None:
    log = open_store("memory://")
    the = learner(lease_after=2)
    submit(log, "slow", "ci.build")
    expire(log, "slow", 1)
    expire(log, "slow", 2)
    (first,) = strategies(run(the, log))
    log.append_many([revert(log, first.strategy_id, "alice", "the build was slow because of the mirror")])
    assert StrategyBook.of(log.read_stream(streams.STRATEGIES)).leases() == {}
    assert strategies(run(the, log)) == []  # the same evidence does not bring it back
    expire(log, "slow", 3)
    assert strategies(run(the, log)) == []
    expire(log, "slow", 4)
    (again,) = strategies(run(the, log))
    assert (again.strategy_id, again.value) == ("lease:ci.build#2", "120")  # from the dispatcher's lease again


def test_a_revert_between_deciding_and_appending_makes_the_learner_decide_again() -> None:
    log = open_store("memory://")
    the = learner(lease_after=1)
    submit(log, "slow", "ci.build")
    expire(log, "slow", 1)
    (first,) = strategies(run(the, log))
    submit(log, "other", "ci.deploy")
    expire(log, "other", 1)
    Follower(the, log).catch_up()
    decided = the.decide(time.time())  # a lease for ci.deploy, at the strategies stream's version...
    log.append_many([revert(log, first.strategy_id, "bob", "no")])  # ...which a person moves meanwhile
    assert [type(r).__name__ for r in log.append_many(decided)] == ["ConcurrencyError"]
    (again,) = strategies(run(the, log))
    assert again.subject == "ci.deploy"


class Flaky:
    """A log whose appends fail while ``down``; reads go through."""

    def __init__(self, log: EventStore) -> None:
        self.log, self.down = log, True

    def __getattr__(self, name: str) -> object:
        return getattr(self.log, name)

    def append_many(self, requests: Sequence[Intent]) -> list[AppendResult | CouncilError]:
        if self.down:
            raise StoreUnavailable("the store is away")
        return self.log.append_many(requests)


def test_a_round_whose_append_failed_is_decided_again_and_recorded_once() -> None:
    log = open_store("memory://")
    submit(log, "t-1")
    attempt(log, "t-1")
    complete(log, "t-1")
    away = Flaky(log)
    the = learner()
    follower = Follower(the, away)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        follower.step()
    away.down = False
    assert follower.step() == (1, 0)
    assert follower.step() == (0, 0)
    assert len(lessons(log.read_all(1, None))) == 1


def test_the_learner_is_booted_with_the_error_detector_and_given_the_fallbacks_and_the_lease() -> None:
    from actors import names
    from cluster.system import Keys, System, plan

    models = {"default": SLOPPY, "fallback": {SLOPPY: [STEADY]}}
    specs = {s.name: s for s in plan(System(store="sqlite:///x.db", health={}, models=models,
                                            dispatch={"lease": 90.0}, learning={"lease_after": 5}), Keys(), None)}
    assert specs[names.LEARNER].args == ("sqlite:///x.db", {"lease_after": 5}, models, {"lease": 90.0})
    assert names.LEARNER not in {s.name for s in plan(System(store="sqlite:///x.db"), Keys(), None)}


def test_tests_that_pass_after_an_edit_are_a_fix_that_worked() -> None:
    log = open_store("memory://")
    submit(log, "t-fix", "code.test")
    log.append(streams.warrant("w-x"), [WarrantIssued(warrant_id="w-x", holder="coder-1", task_id="t-fix",
                                                       warrant=b"w", signature=b"s" * 64, issuer="f" * 64)])
    attempt(log, "t-fix")
    log.append(streams.warrant("w-x"), [Reported(warrant_id="w-x", key="k1", passed=3, failed=1, errors=0, skipped=0,
                                                 duration_s=1.0, failures=["tests.test_a::test_b"])])
    edits(log, "t-fix", STEADY, refused=0)
    log.append(streams.warrant("w-x"), [Reported(warrant_id="w-x", key="k2", passed=4, failed=0, errors=0, skipped=0,
                                                 duration_s=1.0)])
    complete(log, "t-fix")
    (body,) = [lesson.body for lesson in lessons(run(learner(), log)).values()]
    assert "the tests that failed (tests.test_a::test_b) passed at position" in body
    assert "after the edits in between" in body


def test_events_of_tasks_and_requests_it_never_saw_submitted_are_passed_over() -> None:
    log = open_store("memory://")
    complete(log, "ghost")  # its submission is before the log began (or in another log)
    log.append(streams.model_calls("ghost"), [EditMalformed(task_id="ghost", agent_id="a", key="k", model=SLOPPY,
                                                            round=1, refusal="unreadable", error="?")])
    log.append(streams.request("r-x"), [RequestFinished(request_id="r-x", outcome="stopped", reason="no plan")])
    found = lessons(run(learner(malformed_after=1), log))
    assert list(found) == ["lesson-request-r-x"]  # a request that finished with no task still says why
    assert "Why: no plan" in found["lesson-request-r-x"].body and "- no task" in found["lesson-request-r-x"].body
    assert strategies(log.read_all(1, None)) == []  # a refusal of a task never seen is no evidence


def test_bad_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="lease_factor"):
        LearnerSettings(lease_factor=1.0)
    with pytest.raises(ValueError, match="extra"):
        LearnerSettings.model_validate({"malformed_afterr": 3})


def test_the_lesson_of_a_request_of_very_many_tasks_fits_an_event() -> None:
    log = open_store("memory://")
    log.append(streams.request("r-big"), [RequestSubmitted(request_id="r-big", title="big")])
    for n in range(1500):
        submit(log, f"r-big-task-with-a-long-name-{n:05d}", "code.write", "r-big")
        attempt(log, f"r-big-task-with-a-long-name-{n:05d}")
        complete(log, f"r-big-task-with-a-long-name-{n:05d}")
    found = lessons(run(learner(), log))
    body = found["lesson-request-r-big"].body
    assert len(body) <= 60_000 and body.endswith("- … (cut: too long)")
    assert len(found["lesson-request-r-big"].evidence) == 200


def test_a_team_files_learning_table_sets_the_thresholds_and_a_wrong_field_is_named() -> None:
    from cluster.system import System
    from cluster.team import TeamError, parse_team

    agents = '[[agents]]\nname = "w"\nrole = "worker"\ncapabilities = ["echo"]\n'
    team = parse_team(agents + "\n[learning]\nmalformed_after = 5\nlease_factor = 3.0\n")
    assert System.of("sqlite:///x.db", team).learning == {"malformed_after": 5, "lease_factor": 3.0}
    assert System.of("sqlite:///x.db", parse_team(agents)).learning == {}
    with pytest.raises(TeamError, match=r"line 7: \[learning\] field \"lease_after\": must be at least 1"):
        parse_team(agents + "\n[learning]\nlease_after = 0\n")
