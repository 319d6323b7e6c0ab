"""``knowledge/`` files: read whole or refused naming the file and what to change (nothing half-read); imported as
events (added, revised, unchanged, a retired id brought back); exported so that importing the export changes
nothing, whatever the entries' text holds; and the `council knowledge` commands on a log of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_support import council

from cluster.knowledge_files import KnowledgeFileError, changes, export, parse, read_directory
from events import open_store, streams
from events.catalogue import KnowledgeRetired, RequestSubmitted
from projections.knowledge import TYPES, KnowledgeBase

HASHING = '''+++
id = "pbkdf2"
kind = "pattern"
tags = ["auth", "passwords"]
+++
# Hash passwords with PBKDF2

Use `hashlib.pbkdf2_hmac("sha256", …)` with a 16-byte salt and 600,000 iterations.
'''
LESSON = '''+++
id = "inject-the-clock"
kind = "lesson"
+++

# Tests that read the clock are flaky

Pass `now` in.
'''


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def base_of(log: object) -> KnowledgeBase:
    return KnowledgeBase.of(log.read_all(1, None, list(TYPES)))  # type: ignore[attr-defined]


def apply(log: object, intents: list) -> None:  # type: ignore[type-arg]
    for result in log.append_many(intents):  # type: ignore[attr-defined]
        assert not isinstance(result, Exception), result


def test_a_directory_is_imported_then_changes_are_revisions_and_an_export_round_trips(tmp_path: Path) -> None:
    root = tree(tmp_path / "knowledge", {"patterns/pbkdf2.md": HASHING, "lessons/inject-the-clock.md": LESSON})
    log = open_store("memory://")
    intents, counted = changes(base_of(log), read_directory(root))
    assert counted == {"added": 2, "revised": 0, "unchanged": 0}
    apply(log, intents)
    base = base_of(log)
    assert base.entries["pbkdf2"].title == "Hash passwords with PBKDF2"
    assert base.entries["pbkdf2"].origin == "patterns/pbkdf2.md" and base.entries["pbkdf2"].source == "import"
    assert base.entries["inject-the-clock"].body == "Pass `now` in."
    assert changes(base, read_directory(root))[1] == {"added": 0, "revised": 0, "unchanged": 2}  # idempotent
    (root / "patterns" / "pbkdf2.md").write_text(HASHING.replace("600,000", "1,000,000"))
    intents, counted = changes(base, read_directory(root))
    assert counted["revised"] == 1
    apply(log, intents)
    assert base_of(log).entries["pbkdf2"].revision == 2
    out = tmp_path / "exported"
    written = export(base_of(log), out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["lessons/inject-the-clock.md",
                                                                      "patterns/pbkdf2.md"]
    assert changes(base_of(log), read_directory(out))[1] == {"added": 0, "revised": 0, "unchanged": 2}


def test_hostile_text_survives_a_round_trip_exactly(tmp_path: Path) -> None:
    log = open_store("memory://")
    title = 'Quotes " and \\ backslashes, +++ fences and \x1b escapes'
    body = "+++\nid = \"evil\"\n+++\n# not a title\n\u2028 and a tab\there"
    hostile = tree(tmp_path / "k", {"context/odd.md": f'+++\nid = "odd"\nkind = "context"\ntags = ["a\\"b"]\n'
                                                      f'origin = "x\\ny"\n+++\n# {title}\n\n{body}\n'})
    apply(log, changes(base_of(log), read_directory(hostile))[0])
    entry = base_of(log).entries["odd"]
    assert (entry.title, entry.body, entry.tags, entry.origin) == (title, body, ['a"b'], "x\ny")
    export(base_of(log), tmp_path / "out")
    assert changes(base_of(log), read_directory(tmp_path / "out"))[1]["unchanged"] == 1


def test_a_retired_entry_imported_again_comes_back_as_a_revision(tmp_path: Path) -> None:
    root = tree(tmp_path / "knowledge", {"patterns/pbkdf2.md": HASHING})
    log = open_store("memory://")
    apply(log, changes(base_of(log), read_directory(root))[0])
    log.append(streams.knowledge("pbkdf2"), [KnowledgeRetired(entry_id="pbkdf2", reason="wrong", by="alice")], 1)
    assert base_of(log).entries == {}
    apply(log, changes(base_of(log), read_directory(root))[0])
    assert base_of(log).entries["pbkdf2"].revision == 2


@pytest.mark.parametrize(("name", "text", "said"), [
    ("patterns/a.md", "# no header\n", "starts with a TOML header"),
    ("patterns/a.md", '+++\nid = "a"\nkind = "pattern"\n# Title\n', "is never closed"),
    ("patterns/a.md", '+++\nid = a\n+++\n# T\n', "the header is not TOML"),
    ("patterns/a.md", '+++\nid = "a"\nkind = "pattern"\nauthor = "x"\n+++\n# T\n', "author: Extra inputs"),
    ("patterns/a.md", '+++\nid = "Bad Id"\nkind = "pattern"\n+++\n# T\n', "id: String should match"),
    ("patterns/a.md", '+++\nid = "a"\nkind = "rumour"\n+++\n# T\n', "kind: Input should be"),
    ("patterns/a.md", '+++\nid = "a"\nkind = "pattern"\n+++\nno title here\n', "'# Title'"),
    ("lessons/a.md", '+++\nid = "a"\nkind = "pattern"\n+++\n# T\n', "a pattern belongs in patterns/, not lessons/"),
])
def test_a_file_that_is_not_an_entry_is_refused_naming_it_and_what_to_change(tmp_path: Path, name: str, text: str,
                                                                             said: str) -> None:
    root = tree(tmp_path / "k", {name: text, "context/fine.md": '+++\nid = "fine"\nkind = "context"\n+++\n# Ok\n'})
    with pytest.raises(KnowledgeFileError, match=rf"{name}.*") as refused:
        read_directory(root)
    assert said in str(refused.value)


def test_two_files_with_one_id_links_and_non_text_are_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "k", {"patterns/a.md": HASHING, "patterns/b.md": HASHING})
    with pytest.raises(KnowledgeFileError, match=r"patterns/a\.md and patterns/b\.md both say id = 'pbkdf2'"):
        read_directory(root)
    (root / "patterns" / "b.md").unlink()
    os.symlink("/etc/passwd", root / "patterns" / "c.md")
    with pytest.raises(KnowledgeFileError, match=r"patterns/c\.md is not a plain file"):
        read_directory(root)
    (root / "patterns" / "c.md").unlink()
    (root / "patterns" / "d.md").write_bytes(b"+++\n\xff\xfe\n")
    with pytest.raises(KnowledgeFileError, match=r"patterns/d\.md is not UTF-8"):
        read_directory(root)
    with pytest.raises(KnowledgeFileError, match="is not a directory"):
        read_directory(tmp_path / "missing")
    assert parse("patterns/x.md", HASHING).header.tags == ["auth", "passwords"]


def test_the_knowledge_commands_on_a_log_of_their_own(tmp_path: Path) -> None:
    root = tree(tmp_path / "knowledge", {"patterns/pbkdf2.md": HASHING, "lessons/inject-the-clock.md": LESSON})
    (tmp_path / "repo" / "src").mkdir(parents=True)
    (tmp_path / "repo" / "src" / "auth.py").write_text("def hash_password(password):\n    return password\n")
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(url) as log:  # a council's log (the commands never create one: a mistyped --store is refused)
        log.append("request-r-1", [RequestSubmitted(request_id="r-1")])
    store = ["--store", url]
    done = council("knowledge", "import", str(root), *store, cwd=tmp_path)
    assert done.returncode == 0 and "2 added, 0 revised, 0 unchanged" in done.stdout, done.stdout + done.stderr
    found = council("knowledge", "search", "password hashing", "--repo", str(tmp_path / "repo"), *store, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert "pattern   pbkdf2  Hash passwords with PBKDF2  [import: patterns/pbkdf2.md" in found.stdout
    assert "src/auth.py:1" in found.stdout
    bad_kind = council("knowledge", "search", "x", "--kind", "rumour", *store, cwd=tmp_path)
    assert bad_kind.returncode != 0 and "is not a kind of knowledge" in bad_kind.stderr
    retired = council("knowledge", "retire", "inject-the-clock", "--reason", "we use a fake clock now", *store,
                      cwd=tmp_path)
    assert retired.returncode == 0, retired.stderr
    again = council("knowledge", "retire", "inject-the-clock", "--reason", "again", *store, cwd=tmp_path)
    assert again.returncode != 0 and "was retired already" in again.stderr
    listed = council("knowledge", "list", *store, cwd=tmp_path)
    assert "1 entries, 1 retired" in listed.stdout
    exported = council("knowledge", "export", str(tmp_path / "out"), *store, cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "out" / "patterns" / "pbkdf2.md").exists()
    (root / "patterns" / "broken.md").write_text("no header\n")
    refused = council("knowledge", "import", str(root), *store, cwd=tmp_path)
    assert refused.returncode != 0 and "patterns/broken.md:1" in refused.stderr
