"""The pipeline's step results are typed from the skill that makes them to the report that reads them: every result
round-trips through the log's plain data, a step reads an upstream result as its type (a result that does not fit is
refused by task, type and field path), the report and the changelog render from the types, and there is one severity
scale. No Ray, no git: a log in memory and tools that stand in for the gated ones."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import msgspec
import pytest
from governance_support import Council, make_council

from actors.pipeline import steps
from actors.pipeline.plan import STEPS, graph, task_id
from actors.pipeline.results import (
    RESULTS,
    SEVERITIES,
    BuildResult,
    ChangesResult,
    DocsResult,
    ImpactResult,
    Release,
    ResultMismatch,
    ReviewResult,
    SetupResult,
    SmokeResult,
    StepResult,
    TestResult,
    at_least,
    read,
    result_type,
    severity,
)
from actors.skills import PermanentFailure
from actors.tools.ci import CiTools
from actors.tools.workspace import Workspace
from cluster.report import Report, report
from cluster.settings import Settings
from events import streams
from events.catalogue import (
    Artefact,
    BuildReported,
    Finding,
    PipelinePlanned,
    ReviewReported,
    TaskAssigned,
    TaskCompleted,
    TaskRequeued,
    TaskStarted,
    TaskStatus,
    TaskSubmitted,
)
from events.catalogue.work import Severity
from projections.query import QueryResult

SHA = "a" * 64
WHEEL = Artefact(name="app-1.0-py3-none-any.whl", path="dist/app-1.0-py3-none-any.whl", sha256=SHA, size=1200)
SDIST = Artefact(name="app-1.0.tar.gz", path="dist/app-1.0.tar.gz", sha256="b" * 64, size=900)
FINDING = Finding(tool="bandit", rule="B602", severity="high", path="src/app/shell.py", line=5, message="shell=True")

EXAMPLES: dict[type[StepResult], list[StepResult]] = {
    SetupResult: [SetupResult(python="/w/environments/python/r-1/bin/python", installed=["-e", ".[test]"],
                              isolated=False),
                  SetupResult(reason="the repository asks for the council's own environment")],
    ChangesResult: [ChangesResult(base="b" * 40, head="c" * 40, files=["src/app.py"], count=1),
                    ChangesResult(base=None, head="c" * 40, count=0)],
    ImpactResult: [ImpactResult(modules=["app"], tests=["tests/test_app.py"], run_all=False, reason="", changed=2),
                   ImpactResult(run_all=True, reason="no base to compare with: every test runs")],
    TestResult: [TestResult(passed=5, failed=0, errors=0, skipped=1, ok=True, coverage_total=93.0, ran=["tests"]),
                 TestResult(passed=0, failed=0, errors=0, skipped=0, ok=True, reason="the change reaches no test")],
    ReviewResult: [ReviewResult(counts={"info": 0, "low": 2, "medium": 0, "high": 1, "critical": 0}, findings=3,
                                threshold="critical", blocking=[], top=[FINDING], fix_commit="d" * 40),
                   ReviewResult(findings=0, threshold="high")],
    BuildResult: [BuildResult(artefacts=[SDIST, WHEEL], reproducible=True, commit="e" * 40,
                              source_date_epoch=1700000000, provenance="dist/provenance.intoto.jsonl",
                              provenance_sha256="f" * 64, signer="0" * 32),
                  BuildResult(artefacts=[], reproducible=False, mismatches=["x.whl"], commit=None,
                              source_date_epoch=0)],
    Release: [Release(environment="staging", release="20260101T000000Z-aaaaaaaaaaaa", previous=None,
                      artefact=WHEEL.name, sha256=SHA, path="/w/environments/staging/current"),
              Release(environment="prod", release="r2", previous="r1", artefact=WHEEL.name, sha256=SHA)],
    SmokeResult: [SmokeResult(ran=True, release="r2", returncode=0, output="ok\n"),
                  SmokeResult(ran=False, reason="the repository names no smoke test ([tool.council.ci] smoke)")],
    DocsResult: [DocsResult(changelog="CHANGELOG.md", graph="docs/pipeline/r-1.md", commit="9" * 40)],
}


# ------------------------------------------------------------------------------------------- the types

def test_every_step_has_a_result_type_and_every_type_has_examples_here() -> None:
    assert {s.capability for s in STEPS} == set(RESULTS)
    assert {result_type(s.name) for s in STEPS} == set(EXAMPLES) == set(RESULTS.values())
    assert result_type("staging") is result_type("prod") is Release
    with pytest.raises(KeyError, match="'deploy' is not a step of the pipeline; the steps are changes, setup, impact"):
        result_type("deploy")


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda k: k.__name__)
def test_every_result_round_trips_through_the_plain_data_the_log_stores(kind: type[StepResult]) -> None:
    for example in EXAMPLES[kind]:
        data = msgspec.to_builtins(example)
        assert isinstance(data, dict) and msgspec.json.decode(msgspec.json.encode(data)) == data  # plain JSON
        assert msgspec.convert(data, kind) == example
        assert read(data, kind, "task t") == example
        assert read(msgspec.json.decode(msgspec.json.encode(data)), kind, "task t") == example


def test_a_result_recorded_with_fields_a_type_does_not_know_still_reads() -> None:
    """Results recorded by an older pipeline (``seconds``, ``output_digest``, ``already_done``…) are read, the extra
    fields ignored."""
    data = {**msgspec.to_builtins(EXAMPLES[BuildResult][0]), "seconds": 1.5, "output_digest": SHA, "already_done": True}
    assert read(data, BuildResult, "task t") == EXAMPLES[BuildResult][0]


@pytest.mark.parametrize(("change", "path"), [
    (lambda d: d.pop("reproducible"), "missing required field `reproducible`"),
    (lambda d: d["artefacts"][0].pop("sha256"), "missing required field `sha256` - at `$.artefacts[0]`"),
    (lambda d: d["artefacts"][1].update(sha256="not a digest"), "at `$.artefacts[1].sha256`"),
    (lambda d: d["artefacts"][0].update(size="1200"), "Expected `int`, got `str` - at `$.artefacts[0].size`"),
    (lambda d: d.update(artefacts={"name": "x"}), "Expected `array`, got `object` - at `$.artefacts`"),
])
def test_a_result_that_does_not_fit_is_refused_naming_the_field(change: Any, path: str) -> None:
    data = msgspec.to_builtins(EXAMPLES[BuildResult][0])
    change(data)
    with pytest.raises(ResultMismatch) as caught:
        read(data, BuildResult, "task r-1-build")
    assert isinstance(caught.value, PermanentFailure), "a result that does not fit is never retried"
    message = str(caught.value)
    assert message.startswith("task r-1-build recorded a result that is not a BuildResult: ")
    assert path in message and "start the run again" in message


def test_results_are_frozen() -> None:
    with pytest.raises(AttributeError):
        EXAMPLES[TestResult][0].passed = 6  # type: ignore[misc]


# ---------------------------------------------------------------------------------------- one severity scale

def test_the_severities_are_the_catalogues_in_order() -> None:
    assert SEVERITIES == get_args(Severity) == ("info", "low", "medium", "high", "critical")
    assert all(severity(s) == s for s in SEVERITIES)
    with pytest.raises(ValueError, match="'severe' is not a review severity; use one of info, low, medium"):
        severity("severe")
    proved = 0
    for i, found in enumerate(SEVERITIES):
        for j, threshold in enumerate(SEVERITIES):
            assert at_least(found, threshold) is (i >= j)
            proved += 1
    assert proved == 25


def test_a_review_result_is_made_from_its_event_with_blocking_findings_first() -> None:
    findings = [Finding(tool="bandit", rule=f"B{n}", severity="high", path="a.py", line=n, message="x" * 1000)
                for n in range(60)] + [Finding(tool="ruff", rule="F401", severity="medium", path="b.py", line=1)]
    event = ReviewReported(warrant_id="w", key="k", counts={"high": 60, "medium": 1}, findings=findings,
                           threshold="high", blocking=60, fix_commit="d" * 40)
    result = ReviewResult.reported(event)
    assert result.findings == 61 and result.stopping() == 60 and result.threshold == "high"
    assert len(result.blocking) == 50 and len(result.top) == 10 and result.fix_commit == "d" * 40
    assert {len(f.message) for f in result.blocking} == {300}, "messages are cut to 300 characters"
    assert result.summary() == "60 high, 1 medium (no base or baseline to compare with: every finding counts as new)"
    assert ReviewResult(counts={"low": 2, "critical": 1, "info": 0}, findings=3, threshold="high").summary() == (
        "1 critical, 2 low"), "most severe first, whatever order the log kept the counts in"
    assert ReviewResult.reported(msgspec.structs.replace(event, threshold="critical")).blocking == []
    assert ReviewResult(findings=0, threshold="high").summary() == "no findings"


def test_a_build_result_is_made_from_its_event_and_deploys_the_wheel() -> None:
    event = BuildReported(warrant_id="w", key="k", commit="e" * 40, source_date_epoch=1, artefacts=[SDIST, WHEEL],
                          reproducible=True, provenance="dist/provenance.intoto.jsonl", provenance_sha256=SHA,
                          signer="0" * 32)
    built = BuildResult.reported(event)
    assert built.artefacts == [SDIST, WHEEL] and built.commit == "e" * 40 and built.signer == "0" * 32
    assert built.deployable() == WHEEL
    assert msgspec.structs.replace(built, artefacts=[SDIST]).deployable() == SDIST
    assert msgspec.structs.replace(built, artefacts=[]).deployable() is None


# ------------------------------------------------------------------------------------------ upstream

@pytest.fixture
def council(tmp_path: Path) -> Council:
    return make_council(tmp_path)


def ci_tools(council: Council, task: str = "r-1-deploy") -> CiTools:
    return CiTools(council.gatekeeper("a1"), None, task, Workspace(council.home / "workspace"),
                   history=council.store.read_stream)


def completed(council: Council, task: str, result: dict[str, Any], capability: str = "ci.build") -> None:
    council.store.append(streams.task(task), [TaskSubmitted(task_id=task, capability=capability),
                                              TaskStarted(task_id=task, agent_id="a1", attempt=1),
                                              TaskCompleted(task_id=task, agent_id="a1", attempt=1, result=result)])


def test_upstream_reads_a_completed_tasks_result_as_its_type(council: Council) -> None:
    built = EXAMPLES[BuildResult][0]
    completed(council, "r-1-build", msgspec.to_builtins(built))
    assert ci_tools(council).upstream("r-1-build", BuildResult) == built
    assert ci_tools(council).status_of("r-1-build") is TaskStatus.COMPLETED


def test_upstream_reads_the_type_asked_for_and_refuses_a_result_of_another_step(council: Council) -> None:
    changes = EXAMPLES[ChangesResult][0]
    completed(council, "r-1-changes", msgspec.to_builtins(changes), capability="ci.changes")
    completed(council, "r-1-build", msgspec.to_builtins(EXAMPLES[BuildResult][0]))
    assert ci_tools(council).upstream("r-1-changes", ChangesResult) == changes
    with pytest.raises(ResultMismatch, match=r"task r-1-build .* not a ChangesResult"):
        ci_tools(council).upstream("r-1-build", ChangesResult)


def test_upstream_of_a_task_that_completed_twice_reads_its_last_result(council: Council) -> None:
    first, last = EXAMPLES[BuildResult][0], EXAMPLES[BuildResult][1]
    assert first != last
    completed(council, "r-1-build", msgspec.to_builtins(first))
    council.store.append(streams.task("r-1-build"), [  # requeued by a person and run again
        TaskRequeued(task_id="r-1-build", reason="again"),
        TaskStarted(task_id="r-1-build", agent_id="a1", attempt=2),
        TaskCompleted(task_id="r-1-build", agent_id="a1", attempt=2, result=msgspec.to_builtins(last))])
    assert ci_tools(council).upstream("r-1-build", BuildResult) == last


@pytest.mark.parametrize(("change", "path"), [
    (lambda d: d.pop("commit"), "missing required field `commit`"),
    (lambda d: d["artefacts"][0].update(sha256=12), "Expected `str`, got `int` - at `$.artefacts[0].sha256`"),
    (lambda d: d.update(reproducible="yes"), "Expected `bool`, got `str` - at `$.reproducible`"),
])
def test_upstream_refuses_a_result_that_lacks_a_field_or_has_one_of_another_type(council: Council, change: Any,
                                                                                 path: str) -> None:
    data = msgspec.to_builtins(EXAMPLES[BuildResult][0])
    change(data)
    completed(council, "r-1-build", data)
    with pytest.raises(PermanentFailure) as caught:
        ci_tools(council).upstream("r-1-build", BuildResult)
    assert "task r-1-build" in str(caught.value) and "BuildResult" in str(caught.value) and path in str(caught.value)


def test_upstream_of_a_task_that_has_not_completed_says_so(council: Council) -> None:
    council.store.append(streams.task("r-1-build"), [
        TaskSubmitted(task_id="r-1-build", capability="ci.build"),
        TaskAssigned(task_id="r-1-build", agent_id="a1", lease_id="l1", lease_expires_at=60.0, attempt=1),
        TaskStarted(task_id="r-1-build", agent_id="a1", attempt=1)])
    for task in ("r-1-build", "r-1-never"):
        with pytest.raises(PermanentFailure, match=f"task {task} has not completed"):
            ci_tools(council).upstream(task, BuildResult)
    assert ci_tools(council).status_of("r-1-build") is TaskStatus.RUNNING
    assert ci_tools(council).status_of("r-1-never") is None


# ---------------------------------------------------------------------- steps over tools that stand in

class StandIn:
    """Just enough of :class:`CiTools` for a step: upstream results by task, and canned answers of gated tools."""

    def __init__(self, upstream: dict[str, StepResult], **answers: dict[str, Any]) -> None:
        self.results, self.answers, self.environments = upstream, answers, None

    def upstream(self, task: str, kind: type[StepResult]) -> StepResult:
        return read(msgspec.to_builtins(self.results[task]), kind, f"task {task}")

    def run_tests(self, cwd: str, args: list[str], coverage: bool = False, python: str | None = None) -> dict[str, Any]:
        self.python = python
        return self.answers["run_tests"]

    def deploy(self, artifact: str, environment: str, health: list[str] | None = None) -> dict[str, Any]:
        return self.answers["deploy"]


def test_the_test_step_returns_a_typed_result_from_the_test_runs_answer() -> None:
    tools = StandIn({"r-1-impact": EXAMPLES[ImpactResult][1]},
                    run_tests={"passed": 5, "failed": 0, "errors": 0, "skipped": 0, "failures": [], "ok": True,
                               "coverage_total": 90.0, "already_done": True})
    result = steps.test({"impact": "r-1-impact", "tests": "tests"}, tools)
    assert result == TestResult(passed=5, failed=0, errors=0, skipped=0, ok=True, coverage_total=90.0, ran=["tests"])
    reached = StandIn({"r-1-impact": ImpactResult(run_all=False, changed=1)})
    assert steps.test({"impact": "r-1-impact"}, reached).reason == "the change reaches no test"
    own = StandIn({"r-1-impact": EXAMPLES[ImpactResult][1], "r-1-setup": EXAMPLES[SetupResult][0]},
                  run_tests=tools.answers["run_tests"])
    steps.test({"impact": "r-1-impact", "setup": "r-1-setup"}, own)
    assert own.python == "/w/environments/python/r-1/bin/python"  # the tests run in the request's environment


def test_the_deploy_step_releases_the_wheel_and_returns_its_manifest() -> None:
    manifest = {"release": "r2", "previous": "r1", "artifact": WHEEL.path, "sha256": SHA, "environment": "staging",
                "deployed_at": "2026-01-01T00:00:00Z", "path": "/w/environments/staging/current"}
    tools = StandIn({"r-1-build": EXAMPLES[BuildResult][0]}, deploy=manifest)
    release = steps.deploy({"build": "r-1-build", "environment": "staging"}, tools)
    assert release == Release(environment="staging", release="r2", previous="r1", artefact=WHEEL.name, sha256=SHA,
                              path="/w/environments/staging/current")
    unbuilt = StandIn({"r-1-build": EXAMPLES[BuildResult][1]})
    with pytest.raises(PermanentFailure, match="no artefact to deploy"):
        steps.deploy({"build": "r-1-build", "environment": "staging"}, unbuilt)


def test_a_step_reading_a_result_of_another_shape_fails_for_good_naming_the_task() -> None:
    tools = StandIn({"r-1-build": EXAMPLES[ChangesResult][0]})
    with pytest.raises(ResultMismatch, match=r"task r-1-build .* not a BuildResult: .*`artefacts`"):
        steps.deploy({"build": "r-1-build", "environment": "staging"}, tools)


def test_a_review_threshold_that_is_not_a_severity_stops_the_review_before_it_acts() -> None:
    with pytest.raises(PermanentFailure, match="'severe' is not a review severity; use one of info, low"):
        steps.review({"threshold": "severe"}, StandIn({}))  # a stand-in with no review tools: nothing ran


def test_the_changelog_entry_is_written_from_typed_results() -> None:
    results: dict[str, StepResult] = {"changes": EXAMPLES[ChangesResult][0], "test": EXAMPLES[TestResult][0],
                                      "review": EXAMPLES[ReviewResult][0], "build": EXAMPLES[BuildResult][0],
                                      "staging": EXAMPLES[Release][0], "smoke": EXAMPLES[SmokeResult][0]}
    inputs = {"repository": "/src/app", "head": "c" * 40, "base": "b" * 40}
    entry = steps._changelog_entry("r-1", inputs, results, "abc1234 fix\n")
    lines = entry.splitlines()
    assert lines[0].endswith(" — pipeline r-1")
    assert lines[2:] == [
        f"- Source: `/src/app` at `{'c' * 12}`, compared with `{'b' * 12}`",
        "- Commits:", "  - abc1234 fix",
        "- Changed files: 1",
        "- Tests: 5 passed, 0 failed, 1 skipped; line coverage 93.0%",
        f"- Review: 1 high, 2 low; safe fixes in {'d' * 12}",
        f"- Artefact `{SDIST.name}` sha256 `{SDIST.sha256}`",
        f"- Artefact `{WHEEL.name}` sha256 `{WHEEL.sha256}`",
        f"- Reproducible: yes; provenance `dist/provenance.intoto.jsonl` signed by `{'0' * 32}`",
        "- Staging: release `20260101T000000Z-aaaaaaaaaaaa`, smoke test passed"]


# -------------------------------------------------------------------------------------------- the report

REQUEST = "r-0123456789ab"


def recorded_run(council: Council, results: dict[str, StepResult | dict[str, Any]]) -> SimpleNamespace:
    """A run whose steps in ``results`` completed with those results, as the log and the ``tasks`` read model hold
    it; a stand-in for the driver with just what :func:`report` reads."""
    ids = {s.name: task_id(REQUEST, s.name) for s in STEPS}
    council.store.append(streams.request(REQUEST), [PipelinePlanned(
        request_id=REQUEST, repository="/src/app", tree=f"requests/{REQUEST}", commit="c" * 40, steps=graph(ids))])
    rows = []
    for s in STEPS:
        if s.name in results:
            found = results[s.name]
            completed(council, ids[s.name], found if isinstance(found, dict) else msgspec.to_builtins(found),
                      s.capability)
            rows.append((ids[s.name], "completed", "agent-1", 0.25, None))
        else:
            rows.append((ids[s.name], "submitted", None, None, None))
    return SimpleNamespace(
        store=council.store, settings=Settings(workspace="/w"),
        sql=lambda query: QueryResult(["task_id", "status", "agent_id", "duration_s", "last_error"], rows)
        if "FROM tasks" in query else QueryResult(["agent_id", "calls", "input", "output", "cost"], []))


def test_the_report_reads_each_completed_steps_result_as_its_type_and_renders_them(council: Council) -> None:
    results: dict[str, StepResult | dict[str, Any]] = {
        "changes": EXAMPLES[ChangesResult][0], "setup": EXAMPLES[SetupResult][0], "impact": EXAMPLES[ImpactResult][0],
        "test": EXAMPLES[TestResult][0], "review": EXAMPLES[ReviewResult][0], "build": EXAMPLES[BuildResult][0],
        "staging": EXAMPLES[Release][0], "smoke": EXAMPLES[SmokeResult][0], "docs": EXAMPLES[DocsResult][0]}
    found = report(recorded_run(council, results), REQUEST)
    assert found.results == results and found.errors == {} and found.outcome == "running"
    assert [s["status"] for s in found.steps] == [TaskStatus.COMPLETED] * 9 + [TaskStatus.SUBMITTED]
    text = found.text()
    tree = f"/w/requests/{REQUEST}"
    for line in [f"pipeline {REQUEST}: running", f"  tree: {tree}",
                 "  build    completed          agent-1       0.2 s",
                 "environment: /w/environments/python/r-1/bin/python (installed -e .[test]; the build backend the "
                 "council's)",
                 "tests: 5 passed, 0 failed, 1 skipped; line coverage 93.0% (ran tests)",
                 f"review: 1 high, 2 low; blocks at critical; safe fixes committed as {'d' * 12}",
                 f"build: reproducible (two builds compared byte for byte) at commit {'e' * 12}",
                 f"  {SDIST.sha256}  {SDIST.name}", f"  {WHEEL.sha256}  {WHEEL.name}",
                 f"  provenance: {tree}/dist/provenance.intoto.jsonl (in-toto SLSA v1, DSSE, signed by {'0' * 32})",
                 "staging: /w/environments/staging/current → release 20260101T000000Z-aaaaaaaaaaaa "
                 f"({WHEEL.name})",
                 f"docs: {tree}/CHANGELOG.md, {tree}/docs/pipeline/r-1.md"]:
        assert line in text.splitlines(), (line, text)


def test_a_result_the_report_cannot_read_is_named_not_raised(council: Council) -> None:
    broken = {**msgspec.to_builtins(EXAMPLES[BuildResult][0]), "reproducible": "yes"}
    found = report(recorded_run(council, {"test": EXAMPLES[TestResult][0], "build": broken}),
                   REQUEST)
    assert set(found.results) == {"test"} and found.outcome == "running"
    assert f"task {task_id(REQUEST, 'build')}" in found.errors["build"] and "`$.reproducible`" in found.errors["build"]
    assert "\nbuild: " not in found.text() and "\n  ! build: task " in found.text()


def test_a_step_that_failed_unexpectedly_shows_where_in_the_report() -> None:
    trace = "Traceback (most recent call last):\n" + "".join(f'  File "f{i}.py", line {i}\n' for i in range(20))
    found = Report("r-1", errors={"test": "KeyError: 'impact'", "build": "dependency r-1-test was dead-lettered"},
                   tracebacks={"test": trace + "KeyError: 'impact'\n"})
    lines = found.text().splitlines()
    at = lines.index("  ! test: KeyError: 'impact'")
    frames = [f'        File "f{i}.py", line {i}' for i in range(9, 20)]
    assert lines[at + 1:at + 13] == [*frames, "      KeyError: 'impact'"]
    assert lines[at + 13] == "  ! build: dependency r-1-test was dead-lettered"


def test_a_report_without_results_renders_its_steps_only() -> None:
    text = Report("r-1", steps=[{"step": "changes", "task_id": "r-1-changes", "status": TaskStatus.QUEUED}]).text()
    assert text.splitlines()[:5] == ["pipeline r-1: running", "  tree: ", "", "steps:",
                                     "  changes  queued                           "]
    assert Report("r-1").staging is None

