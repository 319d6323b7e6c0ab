"""Knowledge: what the council knows, each entry in a stream of its own (``knowledge-<entry_id>``).

::

    knowledge.added → knowledge.revised … → knowledge.retired

and, in a task's stream of model calls (``llm-<task>``), ``knowledge.consulted``: the entries an
agent put in front of its model for that task, as they stood at a log position.

An entry is a piece of project context, a code pattern, a practice or a lesson, with where it
came from (a person, a request, a review, a failure, a file imported) and the evidence for it (log
positions). The current entries are a fold of these events (``projections.knowledge``), so what
the council knows is as auditable and rebuildable as what it did.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from msgspec import Meta

from events.catalogue.fields import Count, Id, Text
from events.catalogue.governance import Digest
from events.registry import Event, event_type

KnowledgeKind = Literal["context", "pattern", "practice", "lesson"]
KINDS: tuple[KnowledgeKind, ...] = get_args(KnowledgeKind)
KnowledgeSource = Literal["person", "request", "review", "failure", "import"]
Tag = Annotated[str, Meta(min_length=1, max_length=64)]


@event_type("knowledge.added")
class KnowledgeAdded(Event, frozen=True, kw_only=True):
    """A new entry: its kind, title, body (Markdown), tags, source, who or what it came from, and the evidence."""

    entry_id: Id
    kind: KnowledgeKind
    title: Text
    body: Text
    tags: list[Tag] = []
    source: KnowledgeSource
    origin: Text = ""
    """Who or what it came from: a person's name, a request id, a file's path."""
    evidence: list[Count] = []
    """Log positions of the events it rests on."""


@event_type("knowledge.revised")
class KnowledgeRevised(Event, frozen=True, kw_only=True):
    """An entry's new text (the whole of it), and why it changed."""

    entry_id: Id
    kind: KnowledgeKind
    title: Text
    body: Text
    tags: list[Tag] = []
    source: KnowledgeSource
    origin: Text = ""
    evidence: list[Count] = []
    reason: Text = ""


@event_type("knowledge.retired")
class KnowledgeRetired(Event, frozen=True, kw_only=True):
    """An entry no longer holds; it stays in the log, and out of every answer."""

    entry_id: Id
    reason: Text
    by: Id


EntryRef = Annotated[str, Meta(min_length=3, max_length=260, pattern=r"^[^@\s]+@[1-9][0-9]*$")]
"""An entry as a call used it: ``<entry id>@<revision>``."""


@event_type("knowledge.consulted")
class KnowledgeConsulted(Event, frozen=True, kw_only=True):
    """What an agent recalled for a task's model calls: the query, the kinds asked for, the entries chosen (at their
    revisions) and the knowledge as of ``position``. A later attempt of the task recalls exactly these."""

    task_id: Id
    agent_id: Id
    request_id: Id | None = None
    name: Id
    """Which recall of the task this is (``plan``, ``code.write``…)."""
    query: Text
    kinds: list[KnowledgeKind]
    entries: list[EntryRef] = []
    position: Count
    """The last log position of the knowledge read: the entries are as they stood there."""
    tokens: Count = 0
    """The tokens the entries take in the prompt (the same conservative count the context uses)."""
    blob: Digest | None = None
    """The entries as recalled (a blob beside the log): what a later attempt puts in its prompt, unchanged."""
