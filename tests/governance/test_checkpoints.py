"""Signed tree heads catch a log that was truncated or rewritten, even with every hash recomputed."""

from __future__ import annotations

import copy
import json
import os
import re
import sqlite3
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import ANY, VOCABULARY, EventStore, open_store, streams
from events.catalogue import CheckpointSigned, TaskSubmitted
from events.ledger import GENESIS, event_hash
from governance import signing
from governance.checkpoint_files import (
    inclusion_bundle,
    load_published,
    publish,
    published_path,
    to_json,
    verify_bundle,
)
from governance.checkpoints import check_log, sign_tree_head
from governance.errors import CheckpointError
from governance.keys import Keyring, PublicKey, SigningKey
from governance.tree_head import PURPOSE, TreeHead, verify_tree_head

T0 = 1_750_000_000.25
SIZES = (100, 201, 300)  # each checkpoint is appended right after the events it covers


def _tasks(store: EventStore, start: int, count: int) -> None:
    """``count`` TaskSubmitted events, one append (one commit) each, in one group commit."""
    store.append_many([
        (f"task-{i}", [TaskSubmitted(task_id=f"task-{i}", capability="code.generate", title=f"t{i}")], ANY)
        for i in range(start, start + count)
    ])


@dataclass
class World:
    path: Path
    home: Path
    store: EventStore
    signer: SigningKey
    key: PublicKey
    rogue: SigningKey
    checkpoints: list[CheckpointSigned]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """300 events with checkpoints after 100, 201 and 300 events (at positions 101, 202, 301); the last published."""
    home = tmp_path_factory.mktemp("council")
    keys = Keyring(home / "keys")
    keys.new("council")
    keys.new("rogue")
    path = home / "e.db"
    store = open_store(f"sqlite:///{path}")
    signed: list[CheckpointSigned] = []
    written = 0
    for n, size in enumerate(SIZES):
        _tasks(store, written, size - store.head())
        written = size
        event = sign_tree_head(store, keys.signer("council"), now=T0 + n)
        store.append(streams.CHECKPOINTS, [event])
        signed.append(event)
    publish(home, signed[-1])
    yield World(path, home, store, keys.signer("council"), keys.public("council"), keys.signer("rogue"), signed)
    store.close()


def _copy(src: Path, dst: Path) -> Path:
    """A byte-for-byte copy of a live SQLite store (the backup API also copies the write-ahead log)."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return dst


def _tamper(path: Path) -> sqlite3.Connection:
    """A raw connection to the store file with the append-only triggers dropped, as an intruder would."""
    conn = sqlite3.connect(path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def _truncate(path: Path, keep: int) -> None:
    """Cut the log after position ``keep``: exactly what a truncated log is (same first ``keep`` events)."""
    conn = _tamper(path)
    try:
        straddling = conn.execute("SELECT COUNT(*) FROM commits WHERE first_position <= ? AND last_position > ?",
                                  (keep, keep)).fetchone()[0]
        assert straddling == 0, "cut at a commit boundary"
        conn.execute("DELETE FROM commits WHERE last_position > ?", (keep,))
        conn.execute("DELETE FROM event_ids WHERE position > ?", (keep,))
    finally:
        conn.close()


_unpack = msgspec.msgpack.Decoder(list[tuple[bytes, str, int, bytes, bytes, bytes]]).decode


def _rewrite(path: Path, position: int, payload: bytes) -> None:
    """Give ``position`` another payload and recompute every hash after it: a forgery the chain alone accepts."""
    conn = _tamper(path)
    try:
        prev = GENESIS
        commits = conn.execute("SELECT last_position, first_position, stream, last_version, recorded_at, events "
                               "FROM commits ORDER BY last_position").fetchall()
        for last, first, stream, last_version, at, blob in commits:
            events = _unpack(blob)
            version = last_version - len(events) + 1
            sealed = []
            for i, (eid, type_, schema, meta, data, _) in enumerate(events):
                data = payload if first + i == position else data
                prev = event_hash((first + i, stream, version + i, eid, type_, schema, at, meta, data), prev)
                sealed.append((eid, type_, schema, meta, data, prev))
            resealed = msgspec.msgpack.encode(sealed)
            conn.execute("UPDATE commits SET events = ? WHERE last_position = ?", (resealed, last))
    finally:
        conn.close()


# -- signing ----------------------------------------------------------------------------------------


def test_a_signed_tree_head_covers_the_log_and_survives_the_store(world: World) -> None:
    signed = world.checkpoints[-1]
    assert (signed.tree_size, signed.at, signed.key) == (300, T0 + 2, world.key.fingerprint)
    assert signed.root == world.store.root(300)
    assert signed.origin == world.store.read_all(limit=1)[0].hash
    verify_tree_head(signed, world.key)
    stored = [e.payload for e in world.store.read_all(types=["checkpoint.signed"])]
    assert stored == world.checkpoints
    for event in stored:  # decoded from the log's JSON: still exactly the signed bytes
        verify_tree_head(event, world.key)  # type: ignore[arg-type]


def test_signing_defaults_to_the_head_and_refuses_sizes_outside_the_log(world: World, tmp_path: Path) -> None:
    head = world.store.head()
    assert sign_tree_head(world.store, world.signer).tree_size == head
    assert sign_tree_head(world.store, world.signer, 1, now=5).at == 5.0
    for size in (0, -1, head + 1, True):
        with pytest.raises(CheckpointError, match="cannot sign a tree head"):
            sign_tree_head(world.store, world.signer, size)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="epoch seconds"):
        sign_tree_head(world.store, world.signer, now=-1.0)
    with open_store(f"sqlite:///{tmp_path}/empty.db") as empty, pytest.raises(CheckpointError, match="empty"):
        sign_tree_head(empty, world.signer)


def test_a_tree_head_checked_with_another_key_is_refused(world: World) -> None:
    with pytest.raises(CheckpointError, match=r"names key .* not "):
        verify_tree_head(world.checkpoints[0], world.rogue.public)
    forged = msgspec.structs.replace(world.checkpoints[0], key=world.rogue.public.fingerprint)
    with pytest.raises(CheckpointError, match="signature does not verify"):
        verify_tree_head(forged, world.rogue.public)


def _flip(value: Any, index: int, mask: int) -> Any:
    """``value`` with one byte of its representation changed (xor ``mask``, nonzero)."""
    if isinstance(value, bytes):
        i = index % len(value)
        return value[:i] + bytes([value[i] ^ mask]) + value[i + 1:]
    if isinstance(value, bool):
        raise AssertionError("no booleans here")
    if isinstance(value, int):
        return value ^ (mask << 8 * (index % 8))
    if isinstance(value, float):
        raw = bytearray(struct.pack(">d", value))
        raw[index % 8] ^= mask
        return struct.unpack(">d", bytes(raw))[0]
    raise AssertionError(f"no byte flip for {type(value).__name__}")


def _edit(text: str, index: int, char: str) -> str:
    i = index % len(text)
    return text[:i] + char + text[i + 1:]


@given(field=st.sampled_from(["tree_size", "root", "at", "origin", "key", "signature"]),
       index=st.integers(0, 63), mask=st.integers(1, 255), char=st.characters())
def test_any_single_byte_change_to_a_signed_tree_head_fails_verification(
        world: World, field: str, index: int, mask: int, char: str) -> None:
    signed = world.checkpoints[1]
    value = getattr(signed, field)
    if isinstance(value, str):
        changed = _edit(value, index, char)
        if changed == value:
            changed = _edit(value, index, "x" if char != "x" else "y")
    else:
        changed = _flip(value, index, mask)
    with pytest.raises(CheckpointError):
        verify_tree_head(msgspec.structs.replace(signed, **{field: changed}), world.key)


# -- checking a log ----------------------------------------------------------------------------------


def test_a_clean_log_checks_ok(world: World) -> None:
    published = load_published(world.home, world.checkpoints[0].origin)
    assert published == world.checkpoints[-1]
    report = check_log(world.store, world.key, [published])  # type: ignore[list-item]
    assert report.ok and report.problems == []
    assert report.checked == 3  # the published copy is the log's last checkpoint: counted once
    assert report.latest == world.checkpoints[-1]


def test_many_checkpoints_are_checked_in_one_pass(world: World) -> None:
    extra = [sign_tree_head(world.store, world.signer, size, now=T0) for size in range(1, world.store.head() + 1, 7)]
    report = check_log(world.store, world.key, extra)
    assert report.ok, report.problems
    assert report.checked == len(extra) + 3
    assert report.latest is not None and report.latest.tree_size == 300


def test_a_log_without_checkpoints_has_nothing_to_fail(tmp_path: Path, world: World) -> None:
    with open_store(f"sqlite:///{tmp_path}/e.db") as store:
        report = check_log(store, world.key)
        assert (report.ok, report.checked, report.latest) == (True, 0, None)
        report = check_log(store, world.key, [world.checkpoints[0]])
        assert not report.ok
        assert report.problems == ["the log was truncated: checkpoint signed at 2025-06-15T15:06:40Z covers 100 "
                                   "events but the log has 0"]


def test_a_forged_signature_is_caught(world: World) -> None:
    last = world.checkpoints[-1]
    forged = msgspec.structs.replace(last, signature=_flip(last.signature, 0, 1))
    report = check_log(world.store, world.key, [forged])
    assert not report.ok and report.checked == 4
    [problem] = report.problems
    assert "checkpoint of 300 events" in problem and "signature does not verify" in problem
    assert report.latest == last  # the genuine ones still stand


def test_a_checkpoint_signed_by_another_key_is_caught(world: World, tmp_path: Path) -> None:
    with open_store(f"sqlite:///{_copy(world.path, tmp_path / 'e.db')}") as store:
        store.append(streams.CHECKPOINTS, [sign_tree_head(store, world.rogue, now=T0)])
        report = check_log(store, world.key)
    assert not report.ok
    [problem] = report.problems
    assert "checkpoint of 301 events" in problem and f"names key '{world.rogue.public.fingerprint}'" in problem


def test_a_checkpoint_of_another_log_is_caught(world: World, tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/other.db") as other:
        _tasks(other, 0, 300)
        foreign = sign_tree_head(other, world.signer, now=T0)
    report = check_log(world.store, world.key, [foreign])
    [problem] = report.problems
    assert "checkpoint of 300 events" in problem and "another log" in problem


def test_a_truncated_log_is_caught_by_the_published_checkpoint(world: World, tmp_path: Path) -> None:
    path = _copy(world.path, tmp_path / "e.db")
    _truncate(path, 250)  # the checkpoint of 300 events (position 301) goes with the tail
    with open_store(f"sqlite:///{path}") as cut:
        assert cut.head() == 250 and cut.verify().ok  # the chain alone cannot see a cut-off tail
        assert check_log(cut, world.key).ok  # nor can the checkpoints that survived in the log
        report = check_log(cut, world.key, [load_published(world.home, world.checkpoints[0].origin)])  # type: ignore[list-item]
    assert not report.ok
    assert report.problems == ["the log was truncated: checkpoint signed at 2025-06-15T15:06:42Z covers 300 events "
                               "but the log has 250"]
    assert report.latest == world.checkpoints[1]


def test_rewritten_history_is_caught_even_with_every_hash_recomputed(world: World, tmp_path: Path) -> None:
    path = _copy(world.path, tmp_path / "e.db")
    payload = VOCABULARY.encode_many([TaskSubmitted(task_id="task-149", capability="deploy.prod", title="evil")])[2][0]
    _rewrite(path, 150, payload)
    with open_store(f"sqlite:///{path}") as forged:
        assert forged.verify().ok  # a consistent chain: only the signed roots show the forgery
        assert forged.read_all(150, 1)[0].payload.capability == "deploy.prod"  # type: ignore[attr-defined]
        assert forged.head() == world.store.head()
        report = check_log(forged, world.key)
        with pytest.raises(CheckpointError, match="history was rewritten"):
            inclusion_bundle(forged, 150, world.checkpoints[1])
    assert not report.ok and report.checked == 3
    assert report.latest == world.checkpoints[0]
    rewritten = [p for p in report.problems if "history rewritten" in p]
    assert [p.split(" events")[0] for p in rewritten] == ["checkpoint of 201", "checkpoint of 300"]
    assert all("after position 100" in p for p in rewritten)
    assert any("checkpoints of 100 events" in p and "not consistent" in p for p in report.problems)


# -- inclusion bundles -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(world: World) -> dict[str, Any]:
    """A proof that event 150 is in the log of 201 events, as a verifier would receive it (via JSON)."""
    return json.loads(json.dumps(inclusion_bundle(world.store, 150, world.checkpoints[1])))


def test_an_inclusion_bundle_verifies_with_only_the_public_key(world: World, bundle: dict[str, Any]) -> None:
    assert bundle["leaf_hash"] == world.store.read_all(150, 1)[0].hash.hex()
    assert bundle["signer"] == world.key.fingerprint and bundle["checkpoint"]["tree_size"] == 201
    verify_bundle(bundle, PublicKey.from_raw("anyone", world.key.raw))
    with pytest.raises(CheckpointError, match="signer"):
        verify_bundle(bundle, world.rogue.public)


@given(position=st.integers(1, 300))
def test_every_position_has_a_bundle_that_verifies(world: World, position: int) -> None:
    verify_bundle(inclusion_bundle(world.store, position, world.checkpoints[-1]), world.key)


def test_a_bundle_is_refused_for_positions_outside_the_checkpoint(world: World, tmp_path: Path) -> None:
    for position in (0, -3, 202, True):
        with pytest.raises(CheckpointError, match=re.escape("pick 1..201")):
            inclusion_bundle(world.store, position, world.checkpoints[1])  # type: ignore[arg-type]
    path = _copy(world.path, tmp_path / "e.db")
    _truncate(path, 250)
    with open_store(f"sqlite:///{path}") as cut, pytest.raises(CheckpointError, match="truncated"):
        inclusion_bundle(cut, 10, world.checkpoints[-1])


def _leaves(obj: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every scalar in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*at, i))
    else:
        yield at


@given(data=st.data(), index=st.integers(0, 200), mask=st.integers(1, 255), char=st.characters())
def test_any_single_change_to_any_field_of_a_bundle_fails_verification(
        world: World, bundle: dict[str, Any], data: st.DataObject, index: int, mask: int, char: str) -> None:
    where = data.draw(st.sampled_from(sorted(_leaves(bundle), key=repr)))
    changed = copy.deepcopy(bundle)
    *parents, last = where
    holder = changed
    for step in parents:
        holder = holder[step]
    value = holder[last]
    if isinstance(value, str):
        new = _edit(value, index, char)
        holder[last] = new if new != value else _edit(value, index, "g")
    else:
        holder[last] = _flip(value, index, mask)
    with pytest.raises(CheckpointError):
        verify_bundle(changed, world.key)


def _without(d: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != name}


@pytest.mark.parametrize("damage", [
    lambda b: None,
    lambda b: [b],
    lambda b: {},
    lambda b: _without(b, "audit_path"),
    lambda b: {**b, "comment": "hi"},
    lambda b: {**b, "format": "agent-council/inclusion-proof/v0"},
    lambda b: {**b, "position": "150"},
    lambda b: {**b, "position": True},
    lambda b: {**b, "position": 0},
    lambda b: {**b, "position": 2**70},
    lambda b: {**b, "audit_path": "00" * 32},
    lambda b: {**b, "audit_path": [1, 2]},
    lambda b: {**b, "audit_path": b["audit_path"][:-1]},
    lambda b: {**b, "audit_path": [*b["audit_path"], "00" * 32]},
    lambda b: {**b, "audit_path": ["00" * 32] * 100},
    lambda b: {**b, "leaf_hash": b["leaf_hash"].upper()},
    lambda b: {**b, "leaf_hash": None},
    lambda b: {**b, "checkpoint": None},
    lambda b: {**b, "checkpoint": _without(b["checkpoint"], "origin")},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "root": 7}},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "tree_size": 2**80}},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "at": "yesterday"}},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "at": float("nan")}},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "at": -1.0}},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "at": 10**400}},
    lambda b: {**b, "checkpoint": {**b["checkpoint"], "signature": b["checkpoint"]["signature"][:-2]}},
])
def test_a_malformed_bundle_raises_checkpoint_error_only(world: World, bundle: dict[str, Any], damage: Any) -> None:
    with pytest.raises(CheckpointError):
        verify_bundle(damage(copy.deepcopy(bundle)), world.key)


# -- the published copy ------------------------------------------------------------------------------


def test_publish_replaces_the_file_whole_and_load_reads_it_back(world: World, tmp_path: Path) -> None:
    home = tmp_path / "home"
    origin = world.checkpoints[0].origin
    assert load_published(home, origin) is None
    assert published_path(home, origin) == home / "checkpoints" / f"{bytes(origin).hex()[:16]}.json"
    for event in world.checkpoints:
        assert publish(home, event) == published_path(home, origin)
        assert load_published(home, origin) == event
    assert os.listdir(home / "checkpoints") == [f"{bytes(origin).hex()[:16]}.json"]  # no temporary file left behind
    assert stat.S_IMODE(published_path(home, origin).stat().st_mode) == 0o644
    verify_tree_head(load_published(home, origin), world.key)  # type: ignore[arg-type]
    assert load_published(home, b"\x01" * 32) is None  # another log's origin: another file


@pytest.mark.parametrize("text", ["", "{", "[]", '{"tree_size": 1}', "null"])
def test_a_damaged_published_file_raises_checkpoint_error(tmp_path: Path, text: str) -> None:
    path = published_path(tmp_path, b"\x07" * 32)
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(CheckpointError):
        load_published(tmp_path, b"\x07" * 32)


@pytest.mark.parametrize("at", [-1.0, -0.5, float("nan"), float("inf")])
def test_a_tree_head_signed_at_no_epoch_time_is_refused_alike_in_the_log_by_publish_and_from_a_file(
        world: World, tmp_path: Path, at: Any) -> None:
    genuine = world.checkpoints[0]
    signature = signing.sign(world.signer, PURPOSE, TreeHead(genuine.tree_size, genuine.root, at, genuine.origin))
    forged = msgspec.structs.replace(genuine, at=at, signature=signature)  # signed by the council's own key
    refused = "'at' .* is not UTC epoch seconds >= 0"
    with pytest.raises(CheckpointError, match=refused):
        verify_tree_head(forged, world.key)
    report = check_log(world.store, world.key, [forged])
    assert not report.ok and len(report.problems) == 1 and re.search(refused, report.problems[0])
    with pytest.raises(CheckpointError, match=refused):
        publish(tmp_path, forged)  # what publish writes, load_published reads back; this it does not write
    path = published_path(tmp_path, genuine.origin)
    assert not path.exists()
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**to_json(genuine), "at": at}))  # written by hand instead
    with pytest.raises(CheckpointError, match=refused):
        load_published(tmp_path, genuine.origin)
