"""What agents' tools did to a repository, beside the gate's own record (``action.*`` in the warrant's stream).

All in ``warrant-<id>``, after the ``action.completed`` of the action that did it.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from msgspec import Meta, Struct

from events.catalogue.fields import Count, Id, Seconds, Text
from events.registry import Event, event_type

Digest = Annotated[str, Meta(min_length=64, max_length=64)]
Path = Annotated[str, Meta(min_length=1, max_length=4096)]
Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
"""Review severities, least severe first: the one scale the review, the pipeline and its policy setting use."""


@event_type("file.changed")
class FileChanged(Event, frozen=True, kw_only=True):
    """A file was written or patched: its SHA-256 before (None: it was new) and after (None: it was removed)."""

    warrant_id: Id
    key: Id
    path: Path
    before: Digest | None = None
    after: Digest | None = None


@event_type("git.committed")
class GitCommitted(Event, frozen=True, kw_only=True):
    """A commit was made: its id, branch, author and the files it changed."""

    warrant_id: Id
    key: Id
    commit: Annotated[str, Meta(min_length=7, max_length=64)]
    branch: Text
    author: Text
    message: Text
    files: list[Path] = []


@event_type("tree.read")
class TreeRead(Event, frozen=True, kw_only=True):
    """What an agent read of a tree, kept so that every later attempt of its task sees the same: the files' texts as
    one blob (path → text, canonical MessagePack), named by its SHA-256."""

    warrant_id: Id
    key: Id
    root: Path
    files: Count
    blob: Digest


@event_type("tests.reported")
class TestsReported(Event, frozen=True, kw_only=True):
    """What a test run found, from its JUnit XML: counts, the failing tests, and the report's digest."""

    warrant_id: Id
    key: Id
    passed: Count
    failed: Count
    errors: Count
    skipped: Count
    duration_s: Seconds
    failures: list[Text] = []
    details: dict[Text, Text] = {}
    """Per failing test (at most 20): its failure message and the tail of what pytest said of it, secrets scrubbed."""
    report_digest: Digest | None = None
    coverage: dict[Path, Annotated[float, Meta(ge=0, le=100)]] = {}
    """Percent of lines covered per file (relative to the tested directory), when the run measured coverage."""
    coverage_total: Annotated[float, Meta(ge=0, le=100)] | None = None
    retried: list[Text] = []
    """Recognised flaky tests (a ``flaky-retry`` strategy) whose failure had the run done once more: this is the
    second run."""


class Finding(Struct, frozen=True, kw_only=True):
    """One review finding: which tool and rule, how severe, where, and what it says."""

    tool: Annotated[str, Meta(max_length=40)]
    rule: Annotated[str, Meta(max_length=80)]
    severity: Severity
    path: Path
    line: Count = 0
    message: Text = ""
    known: bool = False
    """It was there before the change (in the base revision, or the repository's review baseline)."""
    kind: Annotated[str, Meta(max_length=40)] = ""
    """What sort of problem: security, performance, smell, naming, documentation, tests (a model's review), or the
    linter's own category."""
    suggestion: Text = ""
    """What to do about it, in words."""
    fixable: bool = False
    """Whether it can be fixed automatically (and was offered to the reviewer's own commit)."""


@event_type("review.reported")
class ReviewReported(Event, frozen=True, kw_only=True):
    """What static review (ruff, bandit) found, counted by severity; ``blocking`` are those at or above the
    threshold."""

    warrant_id: Id
    key: Id
    counts: dict[Severity, Count] = {}
    findings: list[Finding] = []
    """The first 200 findings, most severe first."""
    threshold: Severity = "high"
    blocking: Count = 0
    """How many findings stop the pipeline: those at or above the threshold that the change added (all of them
    at or above it when ``block_known``)."""
    fix_commit: Annotated[str, Meta(max_length=64)] | None = None
    """The commit of ruff's safe automatic fixes, made separately, if there were any."""
    baseline: Text = ""
    """What the findings were compared with (``the base <commit>``, a baseline file); empty: nothing, all are new."""
    known: Count = 0
    """How many findings were there before the change."""
    block_known: bool = False
    """Whether findings there before the change stop the pipeline too (the policy's ``review_block_known``)."""


class Artefact(Struct, frozen=True, kw_only=True):
    """A built file and its SHA-256."""

    name: Path
    path: Path
    sha256: Digest
    size: Count


@event_type("build.reported")
class BuildReported(Event, frozen=True, kw_only=True):
    """A build with its evidence: the artefacts' digests, whether a second build was byte-identical, signed
    provenance."""

    warrant_id: Id
    key: Id
    commit: Annotated[str, Meta(max_length=64)] | None
    source_date_epoch: Count
    artefacts: list[Artefact] = []
    reproducible: bool
    mismatches: list[Text] = []
    provenance: Path | None = None
    provenance_sha256: Digest | None = None
    signer: Annotated[str, Meta(max_length=64)] | None = None
    """The fingerprint of the key that signed the provenance."""


@event_type("release.deployed")
class ReleaseDeployed(Event, frozen=True, kw_only=True):
    """A release went live in an environment (``outcome`` "live"), or failed its health check and was rolled back."""

    warrant_id: Id
    key: Id
    environment: Annotated[str, Meta(max_length=40)]
    release: Text
    artefact: Path
    sha256: Digest
    previous: Text | None = None
    outcome: Literal["live", "rolled_back"] = "live"
    detail: Text = ""
