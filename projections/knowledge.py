"""The knowledge base: the current entries, folded from the log, and ranked search over them.

:class:`KnowledgeBase` folds ``knowledge.added``, ``knowledge.revised`` and ``knowledge.retired``
(``events.catalogue.knowledge``) into the entries that hold now, each with its revision, where it
came from and the position of its last event; a retired entry leaves every answer but stays in
the log. Search is the code index's (:class:`projections.code_search.CodeIndex`: SQLite FTS5
with BM25 over words and a trigram index for parts of words, offline), over each entry's title,
tags and body. :meth:`KnowledgeBase.relevant` chooses what an agent puts before its model: the
entries of the kinds it asks for that a query's salient words find, best first, while they fit a
budget of tokens. People's ratings of requests (``feedback.given``) weigh the lessons drawn from
them, in search and so in what agents are shown: a lesson of a request rated good comes before
the other matches, one of a request rated bad after them (within each, the ranking decides).
Nothing here imports Ray.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import msgspec

from events import RecordedEvent
from events.catalogue import FeedbackGiven, KnowledgeAdded, KnowledgeRetired, KnowledgeRevised
from projections.code_search import SNIPPET_LINES, CodeIndex, Hit
from projections.semantic import NOISE, Embedder, alike, fuse, similarities

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


class Source(Protocol):
    """What reads the log in order (an ``EventStore``, or the store actor's client)."""

    def read_all(self, from_position: int = 1, limit: int | None = 1000,
                 types: Sequence[str] | None = None) -> list[RecordedEvent]: ...

    def head(self) -> int: ...


PAGE = 1000
"""Events read at a time by :meth:`KnowledgeBase.advance`."""

_COMMON = """
a about after all also an and any are as at be been before but by can could do does each for from has have how if
in into is it its let make may more most must new no not now of on one only or other our out over should so some
such than that the their them then there these they this those to too under up use used uses using want was way we
were what when where which while who why will with without would you your add adds change changes file files code
task tasks please need needs
"""
COMMON_WORDS = frozenset(_COMMON.split())
"""Words too common to tell one entry from another; a query is searched without them."""
_WORD = re.compile(r"[A-Za-z0-9_]+")


def salient(query: str) -> str:
    """The words of ``query`` that can tell entries apart: three characters or more, not a :data:`COMMON_WORDS`
    word, each once, in order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query):
        if len(word) >= 3 and word.lower() not in COMMON_WORDS:
            seen.setdefault(word, None)
    return " ".join(seen)


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
        """The position of the last knowledge event folded."""
        self.read_to = 0
        """The log position :meth:`advance` has read up to (every knowledge event up to it is folded)."""

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

    def advance(self, source: Source) -> int:
        """Fold the knowledge events appended since the last call; how many were folded.

        The head is read first: positions become visible in order, so every knowledge event up to it is read below.
        """
        head = source.head()
        folded = 0
        while True:
            events = source.read_all(self.read_to + 1, PAGE, TYPES)
            for event in events:
                self.evolve(event)
            folded += len(events)
            if len(events) < PAGE:
                break
            self.read_to = events[-1].position
        self.read_to = max(self.read_to, head, self.position)
        return folded

    def relevant(self, query: str, kinds: Iterable[str], budget: int, count: Callable[[str], int],
                 limit: int = 20) -> list[Entry]:
        """The entries of ``kinds`` the salient words of ``query`` find (:func:`salient`), best first, while they fit
        ``budget`` tokens as ``count`` counts an entry's title and body (an entry that does not fit is passed over
        for a smaller one); [] when nothing matches or the budget is 0."""
        words = salient(query)
        if budget <= 0 or not words:
            return []
        chosen: list[Entry] = []
        spent = 0
        for found in self.search(words, limit, kinds=kinds):
            cost = count(found.entry.title + found.entry.body) + 20
            if spent + cost <= budget:
                chosen.append(found.entry)
                spent += cost
        return chosen

    def search(self, query: str, limit: int = 10, *, kinds: Iterable[str] = (),
               meaning: Embedder | None = None) -> list[Found]:
        """The entries that match ``query`` best first (of ``kinds`` only, if given); [] for a query with no
        words. With ``meaning`` (:mod:`projections.semantic`), entries alike in meaning are found too, even without a
        word in common: both rankings are fused, and an entry found only by meaning shows its opening lines. Lessons
        are weighed by their request's rating (see the module)."""
        wanted = set(kinds)
        chosen = {e.entry_id: e for e in self.entries.values() if not wanted or e.kind in wanted}
        with CodeIndex() as index:
            for entry in chosen.values():
                index.add(entry.entry_id, entry.text())
            found: dict[str, Found] = {}
            for hit in index.search(query, 5 * limit):
                if hit.path not in found:  # an entry's best chunk stands for it
                    found[hit.path] = Found(self.entries[hit.path], hit)
        if meaning is None:
            return self._weighed(list(found.values()))[:limit]
        similarity = similarities(meaning, query, {k: e.text() for k, e in chosen.items()})
        order = fuse([key for key in found if similarity.get(key, 0.0) >= NOISE], alike(similarity))
        fused = [found.get(key) or Found(chosen[key], Hit(path=key, line=1, snippet=_opening(chosen[key]),
                                                           score=similarity[key])) for key in order]
        return self._weighed(fused)[:limit]

    def _weighed(self, ranked: list[Found]) -> list[Found]:
        """``ranked`` with lessons of requests rated good first and rated bad last (stable: the ranking within)."""
        return sorted(ranked, key=lambda f: -self.weight(f.entry))


def _opening(entry: Entry) -> str:
    """The first few lines of an entry's body: what a hit found by meaning alone shows."""
    return "\n".join(entry.body.strip().splitlines()[:SNIPPET_LINES])
