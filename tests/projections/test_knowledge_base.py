"""The knowledge base folded from a real log: entries added, revised and retired, each with its source and revision;
ranked search over the current ones, whole words and parts of words, and never a retired entry."""

from __future__ import annotations

from events import open_store, streams
from events.catalogue import KnowledgeAdded, KnowledgeRetired, KnowledgeRevised
from projections.knowledge import TYPES, KnowledgeBase


def entry(entry_id: str, title: str, body: str, kind: str = "pattern", **more: object) -> KnowledgeAdded:
    return KnowledgeAdded(entry_id=entry_id, kind=kind, title=title, body=body,  # type: ignore[arg-type]
                          source="person", origin="alice", **more)  # type: ignore[arg-type]


def test_entries_are_folded_revised_and_retired_with_their_sources() -> None:
    log = open_store("memory://")
    log.append(streams.knowledge("hashing"), [entry("hashing", "Hash passwords with PBKDF2",
                                                    "Use hashlib.pbkdf2_hmac with 600,000 iterations.",
                                                    tags=["auth"], evidence=[3])])
    log.append(streams.knowledge("clock"), [entry("clock", "Inject the clock", "Tests pass `now`.", kind="lesson")])
    log.append(streams.knowledge("hashing"), [KnowledgeRevised(
        entry_id="hashing", kind="pattern", title="Hash passwords with PBKDF2-SHA256", body="At least 600,000.",
        tags=["auth", "passwords"], source="review", origin="r-1", reason="the review asked for the algorithm")])
    log.append(streams.knowledge("clock"), [KnowledgeRetired(entry_id="clock", reason="wrong", by="bob")])
    base = KnowledgeBase.of(log.read_all(1, None, list(TYPES)))
    assert list(base.entries) == ["hashing"] and list(base.retired) == ["clock"]
    hashing = base.entries["hashing"]
    assert (hashing.revision, hashing.source, hashing.origin, hashing.tags) == (2, "review", "r-1",
                                                                               ["auth", "passwords"])
    assert base.versions == {"hashing": 2, "clock": 2} and base.position == 4


def test_search_ranks_current_entries_by_words_and_parts_of_words_and_leaves_retired_ones_out() -> None:
    log = open_store("memory://")
    for e in (entry("hashing", "Hash passwords with PBKDF2", "hashlib.pbkdf2_hmac, a 16-byte salt, compare_digest"),
              entry("tokens", "Sign tokens with HS256", "issue_token and verify_token; refuse alg none"),
              entry("sql", "Parameterised SQL only", "never format user input into SQL", kind="practice"),
              entry("gone", "Passwords in plain text", "a lesson that no longer holds", kind="lesson")):
        log.append(streams.knowledge(e.entry_id), [e])
    log.append(streams.knowledge("gone"), [KnowledgeRetired(entry_id="gone", reason="never true", by="carol")])
    base = KnowledgeBase.of(log.read_all(1, None, list(TYPES)))
    found = base.search("password hashing")
    assert [f.entry.entry_id for f in found] == ["hashing"]  # the retired entry about passwords is not an answer
    assert [f.entry.entry_id for f in base.search("verify_tok")] == ["tokens"]  # a part of an identifier
    assert [f.entry.entry_id for f in base.search("sql", kinds=["pattern"])] == []
    assert [f.entry.entry_id for f in base.search("sql", kinds=["practice"])] == ["sql"]
    assert base.search("NEAR(\"x\" *) OR -") == [] and base.search("   ") == []  # FTS5 syntax is only text
    assert len(base.search("a", limit=1)) <= 1
