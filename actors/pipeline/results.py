"""What each step of the pipeline hands on: one typed result per skill, stored in the log and read back as that type.

A step's skill returns one of these Structs; the agent stores it as plain data
(``msgspec.to_builtins``) in the task's ``task.completed``. Whoever needs it again — a later step
(:meth:`actors.tools.ci.CiTools.upstream`), the docs step, the report (:mod:`cluster.pipeline`) —
reads it back as the same type with :func:`read`, the type found by :func:`result_type`. So a
field renamed here is a type error where it is used, not a missing key three steps later, and a
recorded result that does not fit its type is refused by task, type and field path
(:class:`ResultMismatch`).

Every result is plain data: ``msgspec.convert(msgspec.to_builtins(r), type(r)) == r``. Fields added
later have defaults, so results recorded before them still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import Struct

from actors.pipeline.plan import STEPS
from actors.skills import PermanentFailure
from events.catalogue import Artefact, BuildReported, Finding, ReviewReported
from events.catalogue.fields import Count
from events.catalogue.work import SEVERITIES, Digest, Severity


def severity(name: str) -> Severity:
    """``name`` as a review severity; :class:`ValueError` naming the severities if it is not one."""
    for known in SEVERITIES:
        if name == known:
            return known
    raise ValueError(f"{name!r} is not a review severity; use one of {', '.join(SEVERITIES)}")


def at_least(found: Severity, threshold: Severity) -> bool:
    """Whether ``found`` is ``threshold`` or more severe."""
    return SEVERITIES.index(found) >= SEVERITIES.index(threshold)


class ResultMismatch(PermanentFailure):
    """A recorded result does not fit the type its reader expects: a field missing, or of another type."""


class StepResult(Struct, frozen=True, kw_only=True):
    """What a step hands on; every step's result is one of its subclasses."""


class SetupResult(StepResult, frozen=True, kw_only=True):
    """``setup``: the request's own Python environment, with the project and its test dependencies installed."""

    python: str | None = None
    """Its interpreter; None when the repository asks for the council's own environment."""
    installed: list[str] = []
    """What was installed: pip's requirement arguments."""
    isolated: bool = True
    """Whether the project's build backend came from the package index (else the council's, already installed)."""
    reason: str = ""


class ChangesResult(StepResult, frozen=True, kw_only=True):
    """``changes``: the files that differ between the base and HEAD (every tracked file without a base)."""

    base: str | None
    """The commit compared with; None when there is none (a snapshot, a first commit)."""
    head: str | None
    files: list[str] = []
    """The first 5,000 changed files."""
    count: Count
    """How many files changed, all of them."""


class ImpactResult(StepResult, frozen=True, kw_only=True):
    """``impact``: the tests the changes reach, or every test (``run_all``) and why."""

    modules: list[str] = []
    tests: list[str] = []
    run_all: bool
    reason: str = ""
    changed: Count = 0
    """How many files changed."""


class TestResult(StepResult, frozen=True, kw_only=True):
    """``test``: the counts of a test run, its failing tests and its line coverage."""

    __test__ = False  # a result, not a test class for pytest to collect

    passed: Count
    failed: Count
    errors: Count
    skipped: Count
    failures: list[str] = []
    details: dict[str, str] = {}
    """Per failing test (the first 20): its failure message and the tail of pytest's text, secrets scrubbed."""
    ok: bool
    """No test failed or errored and at least one passed (or no test was reached, so none ran)."""
    coverage_total: float | None = None
    """Percent of lines covered, when the run measured coverage."""
    ran: list[str] = []
    """What pytest was given: the tests the change reaches, or the test directory."""
    reason: str = ""
    """Why no test ran, if none did."""

    def summary(self) -> str:
        """``5 passed, 0 failed, 0 skipped; line coverage 93.0%`` (coverage only when measured)."""
        coverage = f"; line coverage {self.coverage_total:.1f}%" if self.coverage_total is not None else ""
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped{coverage}"


class ReviewResult(StepResult, frozen=True, kw_only=True):
    """``review``: what ruff and bandit found, counted by severity, and the commit of ruff's safe fixes."""

    counts: dict[Severity, Count] = {}
    findings: Count
    """How many findings there were, all of them."""
    threshold: Severity
    """The severity at or above which a finding stops the pipeline."""
    blocking: list[Finding] = []
    """The first 50 findings at or above the threshold, most severe first."""
    top: list[Finding] = []
    """The 10 most severe findings."""
    fix_commit: str | None = None
    """The commit of ruff's safe automatic fixes, if there were any."""
    known: Count = 0
    """How many findings were there before the change (they stop the pipeline only if the policy says so)."""
    baseline: str = ""
    """What the findings were compared with (``the base <commit>``, a baseline file); empty: nothing, all are new."""
    stops: Count | None = None
    """How many findings stop the pipeline; None in a result recorded before findings were compared."""

    @classmethod
    def reported(cls, event: ReviewReported) -> ReviewResult:
        """The result a ``review.reported`` event describes (the same on a first run and on a replay)."""
        stopping = [f for f in event.findings if at_least(f.severity, event.threshold)
                    and (event.block_known or not f.known)]
        return cls(counts=dict(event.counts), findings=sum(event.counts.values()), threshold=event.threshold,
                   blocking=[_short(f) for f in stopping[:50]], top=[_short(f) for f in event.findings[:10]],
                   fix_commit=event.fix_commit, known=event.known, baseline=event.baseline, stops=event.blocking)

    def stopping(self) -> int:
        """How many findings stop the pipeline: at or above the threshold, and added by the change (unless the policy
        counts those there before too)."""
        if self.stops is not None:
            return self.stops
        return sum(n for s, n in self.counts.items() if at_least(s, self.threshold))

    def summary(self) -> str:
        """The counts, most severe first (``1 high, 2 low``), or ``no findings``; and how many the change added."""
        counts = ", ".join(f"{self.counts[s]} {s}" for s in reversed(SEVERITIES) if self.counts.get(s))
        if not counts:
            return "no findings"
        if self.stops is None:  # recorded before findings were compared
            return counts
        if self.baseline:
            return f"{counts} ({self.findings - self.known} new, {self.known} there before: {self.baseline})"
        return f"{counts} (no base or baseline to compare with: every finding counts as new)"


class BuildResult(StepResult, frozen=True, kw_only=True):
    """``build``: the artefacts and their digests, whether two builds were byte-identical, and the signed provenance."""

    artefacts: list[Artefact]
    reproducible: bool
    mismatches: list[str] = []
    """The artefacts that differed between the two builds."""
    commit: str | None
    """The commit built."""
    source_date_epoch: Count
    provenance: str | None = None
    """Where the signed provenance is, relative to the request's tree."""
    provenance_sha256: Digest | None = None
    signer: str | None = None
    """The fingerprint of the key that signed the provenance."""

    @classmethod
    def reported(cls, event: BuildReported) -> BuildResult:
        """The result a ``build.reported`` event describes (the same on a first run and on a replay)."""
        return cls(artefacts=list(event.artefacts), reproducible=event.reproducible, mismatches=list(event.mismatches),
                   commit=event.commit, source_date_epoch=event.source_date_epoch, provenance=event.provenance,
                   provenance_sha256=event.provenance_sha256, signer=event.signer)

    def deployable(self) -> Artefact | None:
        """What a deploy releases: the wheel, else the first artefact; None if there is none."""
        wheels = [a for a in self.artefacts if a.name.endswith(".whl")]
        return next(iter(wheels or self.artefacts), None)


class Release(StepResult, frozen=True, kw_only=True):
    """``staging``, ``prod``: a deploy's manifest — the release now live in an environment."""

    environment: str
    release: str
    previous: str | None = None
    """The release that was live before, if any."""
    artefact: str
    """The file name of the artefact released."""
    sha256: Digest
    path: str | None = None
    """The environment's ``current`` link."""


class SmokeResult(StepResult, frozen=True, kw_only=True):
    """``smoke``: the smoke test run in the release live in staging, or why none ran."""

    ran: bool
    release: str | None = None
    returncode: int = 0
    output: str = ""
    """The last 500 characters of its output."""
    reason: str = ""
    """Why none ran, if none did."""


class DocsResult(StepResult, frozen=True, kw_only=True):
    """``docs``: the changelog and the task graph written, and the commit that holds them."""

    changelog: str
    graph: str
    commit: str | None = None


RESULTS: Mapping[str, type[StepResult]] = {
    "ci.setup": SetupResult, "ci.changes": ChangesResult, "ci.impact": ImpactResult, "ci.test": TestResult,
    "ci.review": ReviewResult, "ci.build": BuildResult, "ci.deploy": Release, "ci.smoke": SmokeResult,
    "ci.docs": DocsResult,
}
"""Capability → the type of the result its skill returns."""

R = TypeVar("R", bound=StepResult)


def result_type(step: str) -> type[StepResult]:
    """The type of the result step ``step`` (a name in :data:`actors.pipeline.plan.STEPS`) hands on.

    :class:`KeyError` naming the steps for a name that is not one.
    """
    for s in STEPS:
        if s.name == step:
            return RESULTS[s.capability]
    raise KeyError(f"{step!r} is not a step of the pipeline; the steps are {', '.join(s.name for s in STEPS)}")


def read(result: Mapping[str, Any], kind: type[R], source: str) -> R:
    """``result`` (plain data, as the log stores it) as a ``kind``.

    :class:`ResultMismatch` if it does not fit — a field missing or of another type — naming
    ``source`` (like ``task r-1-build``), the type, and msgspec's path to the field
    (``at `$.artefacts[0].sha256```). Fields ``kind`` does not know are ignored.
    """
    try:
        return msgspec.convert(result, kind)
    except msgspec.ValidationError as exc:
        raise ResultMismatch(f"{source} recorded a result that is not a {kind.__name__}: {exc}; the step that made it "
                             "and the one reading it disagree on its shape: run both from the same version of the "
                             "pipeline (start the run again)") from None


def pick(results: Mapping[str, StepResult], step: str, kind: type[R]) -> R | None:
    """The result of ``step`` among ``results`` if there is one of type ``kind``, else None."""
    found = results.get(step)
    return found if isinstance(found, kind) else None


def _short(finding: Finding) -> Finding:
    """A finding with its message cut to 300 characters, as results carry them."""
    return finding if len(finding.message) <= 300 else msgspec.structs.replace(finding, message=finding.message[:300])
