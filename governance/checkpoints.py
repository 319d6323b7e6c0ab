"""Signed tree heads of the ledger: the council signs the Merkle root of the log, as Certificate
Transparency's log signs its STH, so a rewritten or truncated log is caught by anyone who holds one.

A tree head is ``(tree_size, root, at, origin)``: the RFC 9162 root over the first ``tree_size``
events, when it was signed (UTC epoch seconds), and the hash of the log's first event (which log it
is). The council signs its canonical bytes under the purpose ``"tree-head"`` and appends the result
as a ``checkpoint.signed`` event to the stream ``checkpoints``; :func:`publish` also writes the
latest one to ``<home>/checkpoint.json``, outside the log, because a checkpoint kept only inside
the log vanishes with the tail it protects.

The chain (``EventStore.verify``) shows every stored hash matches its event's bytes; checkpoints
show the hashes themselves are the ones signed. A log rewritten with all hashes recomputed passes
the first and fails the second; so does one cut off after its last checkpoint, if a verifier holds
a published copy.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from events import EventStore, merkle
from events.catalogue import CheckpointSigned
from governance import signing
from governance.errors import CheckpointError
from governance.keys import PublicKey, SigningKey

PURPOSE = "tree-head"
"""The signing purpose label of a tree head: such a signature is never valid for anything else."""

BUNDLE_FORMAT = "agent-council/inclusion-proof/v1"
PUBLISHED_NAME = "checkpoint.json"
STREAM = "checkpoints"
"""The stream :func:`sign_tree_head`'s events are appended to."""

_HASH = 32
_SIGNATURE = 64
_MAX_SIZE = 2**63 - 1  # positions are SQLite rowids; also keeps every size encodable in MessagePack
_MAX_PATH = 64  # an audit path has at most one hash per tree level
_HEX = re.compile(r"[0-9a-f]*")  # lowercase only: one encoding per byte string, so no edit goes unnoticed
_CHECKPOINT_FIELDS = frozenset({"tree_size", "root", "at", "origin", "key", "signature"})
_BUNDLE_FIELDS = frozenset({"format", "position", "leaf_hash", "audit_path", "checkpoint", "signer"})
_identity = msgspec.msgpack.Encoder().encode

__all__ = [
    "BUNDLE_FORMAT", "PURPOSE", "STREAM", "CheckpointReport", "TreeHead", "check_log", "inclusion_bundle",
    "load_published", "load_published_file", "publish", "published_path", "sign_root", "sign_tree_head", "verify_bundle", "verify_tree_head",
]


class TreeHead(msgspec.Struct, frozen=True):
    """What a checkpoint's signature covers (its canonical bytes, under :data:`PURPOSE`)."""

    tree_size: int
    root: bytes
    at: float
    origin: bytes


class CheckpointReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`check_log`.

    ``checked`` distinct checkpoints were examined; ``problems`` names, for each failure, the
    checkpoint's tree size and what failed (empty when ``ok``); ``latest`` is the largest checkpoint
    that passed every check of its own, or None.
    """

    ok: bool
    checked: int
    problems: list[str]
    latest: CheckpointSigned | None = None


# -- signing and verifying one tree head ---------------------------------------------------------


def sign_tree_head(store: EventStore, key: SigningKey, size: int | None = None,
                   now: float | None = None) -> CheckpointSigned:
    """Sign the tree head of ``store``'s first ``size`` events (all of them by default) with ``key``.

    Returns the ``checkpoint.signed`` payload, ready to append to :data:`STREAM`. Raises
    :class:`CheckpointError` for an empty log, or a ``size`` outside ``1..head``. Costs one read of
    the first ``size`` leaf hashes (the root is O(size)).
    """
    head = store.head()
    if head == 0:
        raise CheckpointError("the log is empty; there is nothing to sign yet")
    size = head if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= head:
        raise CheckpointError(f"cannot sign a tree head of {size!r} events: the log holds 1..{head}")
    return sign_root(key, size, store.root(size), _origin(store), now)


def sign_root(key: SigningKey, size: int, root: bytes, origin: bytes, now: float | None = None) -> CheckpointSigned:
    """Sign a tree head whose root the caller computed (e.g. incrementally, with ``events.merkle.CompactRange``).

    The caller vouches that ``root`` is the Merkle root of the log's first ``size`` events and
    ``origin`` the hash of its first; :func:`check_log` will hold the log to it.
    """
    at = time.time() if now is None else now
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or at < 0:
        raise CheckpointError(f"cannot sign a tree head at time {at!r}: give UTC epoch seconds >= 0")
    # float(): an int and a float of equal value encode differently, and verifiers rebuild a float.
    signed = TreeHead(size, bytes(root), float(at), bytes(origin))
    return CheckpointSigned(tree_size=signed.tree_size, root=signed.root, at=signed.at, origin=signed.origin,
                            key=key.public.fingerprint, signature=signing.sign(key, PURPOSE, signed))


def verify_tree_head(event: CheckpointSigned, key: PublicKey) -> None:
    """Return only if ``event`` is a well-formed tree head signed by ``key``.

    Raises :class:`CheckpointError` naming the tree size and what failed: a malformed field, a key
    fingerprint that is not ``key``'s, or a signature that does not verify.
    """
    head = _tree_head(event)
    if event.key != key.fingerprint:
        raise CheckpointError(f"checkpoint of {head.tree_size} events signed at {_when(head.at)} names key "
                              f"{event.key!r}, not {key.fingerprint} ({key.name}): check it with the key that signed it")
    if not signing.verify(key, PURPOSE, head, bytes(event.signature)):
        raise CheckpointError(f"checkpoint of {head.tree_size} events signed at {_when(head.at)}: the signature does "
                              f"not verify with key {key.fingerprint} ({key.name}); the tree head was altered or forged")


def _tree_head(event: object) -> TreeHead:
    """The signed part of ``event``, after checking every field's type and size."""
    if not isinstance(event, CheckpointSigned):
        raise CheckpointError(f"expected a checkpoint.signed event, got {type(event).__name__}")
    size, at = event.tree_size, event.at
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= _MAX_SIZE:
        raise CheckpointError(f"malformed checkpoint: tree_size {size!r} is not a size >= 1")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise CheckpointError(f"malformed checkpoint of {size} events: 'at' {at!r} is not a time")
    for name, value, length in (("root", event.root, _HASH), ("origin", event.origin, _HASH),
                                ("signature", event.signature, _SIGNATURE)):
        if not isinstance(value, bytes | bytearray) or len(value) != length:
            raise CheckpointError(f"malformed checkpoint of {size} events: {name} is not {length} bytes")
    if not isinstance(event.key, str):
        raise CheckpointError(f"malformed checkpoint of {size} events: key is not a fingerprint")
    return TreeHead(size, bytes(event.root), float(at), bytes(event.origin))


# -- checking a log against its checkpoints ------------------------------------------------------


def check_log(store: EventStore, key: PublicKey, extra: Sequence[CheckpointSigned] = ()) -> CheckpointReport:
    """Check ``store`` against every checkpoint in it and in ``extra`` (e.g. :func:`load_published`).

    Each checkpoint must be signed by ``key``, name this log's first event as its origin, cover
    no more events than the log holds (else the log was truncated) and sign the root the log gives
    for its size (else history was rewritten). Between consecutive checkpoints (by tree size) a
    consistency proof computed from the log must verify against both signed roots.

    Cost: one pass over the leaf hashes up to the largest checkpoint, plus O(log² n) per
    checkpoint, in O(checkpoints · log n) memory; not one O(n) root per checkpoint. Checks the
    stored hashes, not the bytes under them: run ``EventStore.verify()`` for that.
    """
    # Read the head first: a checkpoint appended after it is ignored, so a concurrent append can
    # never make a checkpoint look larger than the log.
    head = store.head()
    in_log = [e.payload for e in store.read_all(types=[CheckpointSigned.type_name]) if e.position <= head]
    candidates = _distinct([*in_log, *extra])
    origin = _origin(store) if head else None
    problems: list[tuple[int, str]] = []
    usable: list[CheckpointSigned] = []  # signed by key, of this log, within its head
    for cp in candidates:
        try:
            verify_tree_head(cp, key)
        except CheckpointError as exc:
            problems.append((_size_of(cp), str(exc)))
            continue
        when = _when(cp.at)
        if origin is not None and cp.origin != origin:
            problems.append((cp.tree_size, f"checkpoint of {cp.tree_size} events signed at {when} is of another log: "
                                           f"its origin is {bytes(cp.origin).hex()[:16]}…, this log's first event "
                                           f"hashes to {origin.hex()[:16]}…"))
        elif cp.tree_size > head:
            problems.append((cp.tree_size, f"the log was truncated: checkpoint signed at {when} covers "
                                           f"{cp.tree_size} events but the log has {head}"))
        else:
            usable.append(cp)
    usable.sort(key=lambda c: (c.tree_size, c.at))
    pairs = list(zip(usable, usable[1:]))
    wanted = {(0, c.tree_size) for c in usable}
    wanted.update(r for a, b in pairs for r in _consistency_ranges(a.tree_size, b.tree_size))
    top = usable[-1].tree_size if usable else 0
    nodes = _subtree_hashes((row[9] for row in store.scan_rows(1, top)), wanted) if top else {}

    matched: list[CheckpointSigned] = []
    for cp in usable:
        if nodes.get((0, cp.tree_size)) == cp.root:
            matched.append(cp)
            continue
        below = [m.tree_size for m in matched if m.tree_size < cp.tree_size]
        narrowed = f" and after position {below[-1]} (the checkpoint of {below[-1]} events still matches)" if below else ""
        problems.append((cp.tree_size, f"checkpoint of {cp.tree_size} events signed at {_when(cp.at)}: history "
                                       f"rewritten at or before position {cp.tree_size}{narrowed}: the log's root "
                                       "over those events is not the signed root"))
    for a, b in pairs:
        proof = [nodes.get(r) for r in _consistency_ranges(a.tree_size, b.tree_size)]
        if None in proof or not merkle.verify_consistency(a.tree_size, b.tree_size, a.root, b.root, proof):  # type: ignore[arg-type]
            problems.append((b.tree_size, f"checkpoints of {a.tree_size} events (signed at {_when(a.at)}) and of "
                                          f"{b.tree_size} events (signed at {_when(b.at)}) are not consistent: the log's "
                                          "consistency proof between them does not verify against both signed roots"))
    problems.sort(key=lambda p: p[0])
    return CheckpointReport(ok=not problems, checked=len(candidates), problems=[p for _, p in problems],
                            latest=max(matched, key=lambda c: (c.tree_size, c.at)) if matched else None)


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[lo, hi)`` whose roots form PROOF(old, D[new]), in proof order.

    This is :func:`events.merkle.consistency_proof`'s recursion (RFC 9162 2.1.4.1) naming each
    subtree instead of hashing it. Every range is either a perfect subtree (a power-of-two width
    ``w`` with ``lo % w == 0``) or ends at ``new`` and starts on a peak of the tree of ``new``
    leaves: :func:`_subtree_hashes` relies on exactly that.
    """
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new, old, True
    while m != hi - lo:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # the largest power of two below hi - lo
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _subtree_hashes(leaves: Iterable[bytes], wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """MTH(D[lo:hi]) for each wanted range, from one pass over the leaf hashes in order.

    Keeps the frontier (the perfect subtrees whose widths are the set bits of the size so far).
    A perfect range is caught the moment the frontier builds it, since a later merge hides it; any
    other range must be a run of frontier peaks when the frontier's size reaches its ``hi``, and is
    folded right to left then, as RFC 9162 splits it. Stops after the last wanted ``hi``.
    """
    perfect = {(lo, hi) for lo, hi in wanted if (hi - lo) & (hi - lo - 1) == 0 and lo % (hi - lo) == 0}
    edges: dict[int, list[int]] = {}
    for lo, hi in wanted - perfect:
        edges.setdefault(hi, []).append(lo)
    last = max((hi for _, hi in wanted), default=0)
    found: dict[tuple[int, int], bytes] = {}
    peaks: list[tuple[int, bytes]] = []  # (first leaf, root) of each frontier subtree, widest first
    size = 0
    node_hash = merkle.node_hash
    for leaf in leaves:
        if size >= last:
            break
        start, node, width, carry = size, bytes(leaf), 1, size
        if (start, start + 1) in perfect:
            found[(start, start + 1)] = node
        while carry & 1:  # each trailing 1 bit of the old size merges two equal subtrees
            start, left = peaks.pop()
            node, width, carry = node_hash(left, node), width * 2, carry >> 1
            if (start, start + width) in perfect:
                found[(start, start + width)] = node
        peaks.append((start, node))
        size += 1
        for lo in edges.get(size, ()):
            acc: bytes | None = None
            for first, root in reversed(peaks):
                if first < lo:
                    break  # lo is not a peak boundary: not a range a proof uses; leave it missing
                acc = root if acc is None else node_hash(root, acc)
                if first == lo:
                    found[(lo, size)] = acc
                    break
    return found


def _distinct(items: Iterable[CheckpointSigned]) -> list[CheckpointSigned]:
    """``items`` without repeats (the published copy is usually also in the log), in order."""
    seen: set[object] = set()
    out: list[CheckpointSigned] = []
    for cp in items:
        try:
            ident: object = _identity(cp)
        except (TypeError, OverflowError, msgspec.EncodeError):
            ident = id(cp)
        if ident not in seen:
            seen.add(ident)
            out.append(cp)
    return out


# -- inclusion bundles -----------------------------------------------------------------------------


def inclusion_bundle(store: EventStore, position: int, checkpoint: CheckpointSigned) -> dict[str, Any]:
    """A self-contained, JSON-able proof that the event at ``position`` is in the log ``checkpoint`` signed.

    Holds the event's leaf hash, its position, the checkpoint (bytes as lowercase hex), the audit
    path and the signer's key fingerprint: :func:`verify_bundle` needs nothing else but the public
    key. Raises :class:`CheckpointError` for a position outside ``1..tree_size``, a checkpoint
    beyond the log's head, or a log whose proof does not lead to the checkpoint's root (the log no
    longer matches what was signed). Costs O(tree_size) hashing.
    """
    head = _tree_head(checkpoint)
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= head.tree_size:
        raise CheckpointError(f"position {position!r} is not in the checkpoint of {head.tree_size} events; "
                              f"pick 1..{head.tree_size}")
    if head.tree_size > store.head():
        raise CheckpointError(f"the checkpoint covers {head.tree_size} events but the log has {store.head()}: "
                              "the log was truncated, or the checkpoint is of another log")
    leaf = bytes(next(iter(store.scan_rows(position, position)))[9])
    path = store.inclusion_proof(position, head.tree_size)
    if not merkle.verify_inclusion(leaf, position - 1, head.tree_size, path, head.root):
        raise CheckpointError(f"the log's proof for position {position} does not lead to the root signed over "
                              f"{head.tree_size} events: history was rewritten; run check_log")
    return {
        "format": BUNDLE_FORMAT,
        "position": position,
        "leaf_hash": leaf.hex(),
        "audit_path": [p.hex() for p in path],
        "checkpoint": _to_json(checkpoint),
        "signer": checkpoint.key,
    }


def verify_bundle(bundle: dict[str, Any], key: PublicKey) -> None:
    """Return only if ``bundle`` proves, by ``key``'s signature alone, that its leaf is in the signed log.

    Checks the tree head's signature, then the audit path from the leaf hash at ``position`` to the
    signed root. Raises :class:`CheckpointError` saying what failed; a malformed bundle (missing
    or unknown fields, wrong types, bad hex) raises it too, never ``KeyError`` or ``TypeError``.
    """
    _fields(bundle, _BUNDLE_FIELDS, "inclusion bundle")
    if bundle["format"] != BUNDLE_FORMAT:
        raise CheckpointError(f"malformed inclusion bundle: format {bundle['format']!r} is not {BUNDLE_FORMAT!r}")
    checkpoint = _from_json(bundle["checkpoint"], "the inclusion bundle's checkpoint")
    if bundle["signer"] != key.fingerprint:
        raise CheckpointError(f"the inclusion bundle names signer {bundle['signer']!r}, not key "
                              f"{key.fingerprint} ({key.name})")
    verify_tree_head(checkpoint, key)
    what = "inclusion bundle"
    position = _int(bundle["position"], "position", what)
    leaf = _hex(bundle["leaf_hash"], "leaf_hash", _HASH, what)
    path = bundle["audit_path"]
    if not isinstance(path, list) or len(path) > _MAX_PATH:
        raise CheckpointError(f"malformed inclusion bundle: audit_path is not a list of at most {_MAX_PATH} hashes")
    hashes = [_hex(p, "audit_path", _HASH, what) for p in path]
    size = checkpoint.tree_size
    if not 1 <= position <= size:
        raise CheckpointError(f"the inclusion bundle's position {position} is not in the checkpoint of {size} events")
    if not merkle.verify_inclusion(leaf, position - 1, size, hashes, checkpoint.root):
        raise CheckpointError(f"the inclusion proof for position {position} does not lead to the root signed over "
                              f"{size} events: the leaf, its position or the audit path was altered")


# -- the published copy ---------------------------------------------------------------------------


def published_path(home: str | Path) -> Path:
    """Where :func:`publish` keeps the latest checkpoint: ``<home>/checkpoint.json``."""
    return Path(home) / PUBLISHED_NAME


def publish(home: str | Path, event: CheckpointSigned) -> Path:
    """Write ``event`` to :func:`published_path` atomically and return that path.

    A reader sees the previous file or the new one, whole, never a part: the JSON goes to a temporary
    file in the same directory, is flushed to disk, then renamed over the old one.
    """
    _tree_head(event)
    path = published_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(_to_json(event), indent=2, sort_keys=True) + "\n").encode()
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{PUBLISHED_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)  # a tree head is public: verifiers under other accounts must read it
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def load_published(home: str | Path) -> CheckpointSigned | None:
    """The checkpoint :func:`publish` wrote under ``home``; None if there is none.

    Raises :class:`CheckpointError` if the file is not a well-formed checkpoint. Its signature is
    not checked here: pass it to :func:`check_log` or :func:`verify_tree_head`.
    """
    path = published_path(home)
    if not path.exists():
        return None
    return load_published_file(path)


def load_published_file(path: str | Path) -> CheckpointSigned:
    """A checkpoint from a JSON file in :func:`publish`'s form (e.g. a copy a verifier kept elsewhere)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"there is no checkpoint file {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not JSON ({exc}); publish a checkpoint again") from None
    return _from_json(obj, str(path))


# -- JSON forms -----------------------------------------------------------------------------------


def _to_json(event: CheckpointSigned) -> dict[str, Any]:
    return {"tree_size": event.tree_size, "root": bytes(event.root).hex(), "at": float(event.at),
            "origin": bytes(event.origin).hex(), "key": event.key, "signature": bytes(event.signature).hex()}


def _from_json(obj: object, what: str) -> CheckpointSigned:
    """A checkpoint from its JSON form, every field checked; :class:`CheckpointError` names the first bad one."""
    _fields(obj, _CHECKPOINT_FIELDS, what)
    assert isinstance(obj, dict)
    at, key = obj["at"], obj["key"]
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or at < 0:
        raise CheckpointError(f"malformed {what}: 'at' is not UTC epoch seconds")
    if not isinstance(key, str) or not 1 <= len(key) <= 64:
        raise CheckpointError(f"malformed {what}: 'key' is not a key fingerprint")
    return CheckpointSigned(tree_size=_int(obj["tree_size"], "tree_size", what), root=_hex(obj["root"], "root", _HASH, what),
                            at=float(at), origin=_hex(obj["origin"], "origin", _HASH, what), key=key,
                            signature=_hex(obj["signature"], "signature", _SIGNATURE, what))


def _fields(obj: object, expected: frozenset[str], what: str) -> None:
    if not isinstance(obj, dict):
        raise CheckpointError(f"malformed {what}: expected a JSON object, got {type(obj).__name__}")
    if set(obj) != expected:
        missing, unknown = sorted(expected - set(obj)), sorted(map(str, set(obj) - expected))
        raise CheckpointError(f"malformed {what}: missing fields {missing}, unknown fields {unknown}")


def _int(value: object, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_SIZE:
        raise CheckpointError(f"malformed {what}: {name} {value!r} is not an integer >= 1")
    return value


def _hex(value: object, name: str, length: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * length or not _HEX.fullmatch(value):
        raise CheckpointError(f"malformed {what}: {name} is not {length} bytes in lowercase hex")
    return bytes.fromhex(value)


# -- small helpers ------------------------------------------------------------------------------


def _origin(store: EventStore) -> bytes:
    """The hash of the log's first event: it names the log (the log must not be empty)."""
    return bytes(next(iter(store.scan_rows(1, 1)))[9])


def _when(at: object) -> str:
    try:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(at)


def _size_of(cp: object) -> int:
    size = getattr(cp, "tree_size", 0)
    return size if isinstance(size, int) else 0
