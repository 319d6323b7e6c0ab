"""What agents' tools did to a repository, beside the gate's own record (``action.*`` in the warrant's stream).

All in ``warrant-<id>``, after the ``action.completed`` of the action that did it.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from events.catalogue.fields import Count, Id, Seconds, Text
from events.registry import Event, event_type

Digest = Annotated[str, Meta(min_length=64, max_length=64)]
Path = Annotated[str, Meta(min_length=1, max_length=4096)]


@event_type("file.changed")
class FileChanged(Event, kw_only=True):
    """A file was written or patched: its SHA-256 before (None: it was new) and after (None: it was removed)."""

    warrant_id: Id
    key: Id
    path: Path
    before: Digest | None = None
    after: Digest | None = None


@event_type("git.committed")
class GitCommitted(Event, kw_only=True):
    """A commit was made: its id, branch, author and the files it changed."""

    warrant_id: Id
    key: Id
    commit: Annotated[str, Meta(min_length=7, max_length=64)]
    branch: Text
    author: Text
    message: Text
    files: list[Path] = []


@event_type("tests.reported")
class TestsReported(Event, kw_only=True):
    """What a test run found, from its JUnit XML: counts, the failing tests, and the report's digest."""

    warrant_id: Id
    key: Id
    passed: Count
    failed: Count
    errors: Count
    skipped: Count
    duration_s: Seconds
    failures: list[Text] = []
    report_digest: Digest | None = None
