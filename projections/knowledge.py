"""The knowledge base: the current entries, folded from the log, and ranked search over them.

:class:`KnowledgeBase` folds ``knowledge.added``, ``knowledge.revised`` and ``knowledge.retired``
(``events.catalogue.knowledge``) into the entries that hold now, each with its revision, where it
came from and the position of its last event; a retired entry leaves every answer but stays in
the log. Search is the code index's (:class:`projections.code_search.CodeIndex`: SQLite FTS5
with BM25 over words and a trigram index for parts of words, offline), over each entry's title,
tags and body. People's ratings of requests (``feedback.given``) weigh the lessons drawn from
them: a lesson of a request rated good comes before the other matches, one of a request rated
bad after them (within each, BM25 decides). Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from events import RecordedEvent
from events.catalogue import FeedbackGiven, KnowledgeAdded, KnowledgeRetired, KnowledgeRevised
from projections.code_search import CodeIndex, Hit

TYPES = tuple(cls.type_name for cls in (KnowledgeAdded, KnowledgeRevised, KnowledgeRetired, FeedbackGiven))
"""The event types the knowledge base folds."""
WEIGHT = {"good": 1, "bad": -1}
"""How a request's rating weighs the lessons drawn from it (unrated: 0)."""


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry as it stands: its text, where it came from, its revision (1: as added) and its last position."""

    entry_id: str
    kind: str
    title: str
    body: str
    tags: list[str]
    source: str
    origin: str
    evidence: list[int]
    revision: int
    position: int

    def text(self) -> str:
        """What search reads: the title, the tags, the body."""
        return f"{self.title}\n{' '.join(self.tags)}\n{self.body}"


class Found(msgspec.Struct, frozen=True):
    """A search hit: the entry and where in its text the query matched."""

    entry: Entry
    hit: Hit


class KnowledgeBase:
    """The current entries (see the module)."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.retired: dict[str, KnowledgeRetired] = {}
        self.versions: dict[str, int] = {}
        """Entry id → its stream's version (a revision is appended at it)."""
        self._texts: dict[str, int] = {}
        """Entry id → how many texts it has had (its revision)."""
        self.ratings: dict[str, FeedbackGiven] = {}
        """Request id → its latest rating."""
        self.position = 0

    @classmethod
    def of(cls, events: Iterable[RecordedEvent]) -> KnowledgeBase:
        """The knowledge base folded from ``events`` (in log order)."""
        base = cls()
        for event in events:
            base.evolve(event)
        return base

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event (other types are passed over)."""
        p = event.payload
        if isinstance(p, KnowledgeAdded | KnowledgeRevised):
            self._texts[p.entry_id] = self._texts.get(p.entry_id, 0) + 1  # a retired entry brought back counts on
            self.entries[p.entry_id] = Entry(
                entry_id=p.entry_id, kind=p.kind, title=p.title, body=p.body, tags=list(p.tags), source=p.source,
                origin=p.origin, evidence=list(p.evidence), position=event.position, revision=self._texts[p.entry_id])
            self.retired.pop(p.entry_id, None)
        elif isinstance(p, KnowledgeRetired):
            self.entries.pop(p.entry_id, None)
            self.retired[p.entry_id] = p
        elif isinstance(p, FeedbackGiven):
            self.ratings[p.request_id] = p
            self.position = max(self.position, event.position)
            return
        else:
            return
        self.versions[p.entry_id] = event.stream_version
        self.position = max(self.position, event.position)

    def rating(self, entry: Entry) -> FeedbackGiven | None:
        """How people rated the request a lesson was drawn from (None: another kind, or not rated)."""
        return self.ratings.get(entry.origin) if entry.kind == "lesson" else None

    def weight(self, entry: Entry) -> int:
        """1 for a lesson of a request rated good, -1 rated bad, else 0."""
        rated = self.rating(entry)
        return 0 if rated is None else WEIGHT[rated.rating]

    def search(self, query: str, limit: int = 10, *, kinds: Iterable[str] = ()) -> list[Found]:
        """The entries that match ``query`` best first (of ``kinds`` only, if given), lessons weighed by their
        request's rating (see the module); [] for a query with no words."""
        wanted = set(kinds)
        with CodeIndex() as index:
            for entry in self.entries.values():
                if not wanted or entry.kind in wanted:
                    index.add(entry.entry_id, entry.text())
            found: dict[str, Found] = {}
            for hit in index.search(query, 5 * limit):
                if hit.path not in found:  # an entry's best chunk stands for it
                    found[hit.path] = Found(self.entries[hit.path], hit)
            ranked = sorted(found.values(), key=lambda f: -self.weight(f.entry))  # stable: BM25 within a weight
            return ranked[:limit]
