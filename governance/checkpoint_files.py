"""Checkpoints outside the log: the published copy of the latest one, and self-contained inclusion bundles.

A checkpoint kept only inside the log vanishes with the tail it protects, so :func:`publish`
writes the latest one to ``<home>/checkpoints/<origin>.json`` (atomically, readable by everyone),
where a verifier can keep a copy. The file is named by the log's origin (the hash of its first
event, 16 hex digits), so two councils with different logs sharing a home never write over each
other's, and a verifier reads the one of the log it checks. An inclusion bundle
(:func:`inclusion_bundle`) is a JSON document that proves one event is in the log a checkpoint
signed, checkable with nothing but the council's public key (:func:`verify_bundle`).

Both are JSON with every byte string in lowercase hex, one encoding per value, so no edit goes
unnoticed; reading either checks every field and raises :class:`CheckpointError`, never
``KeyError`` or ``TypeError``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from events import EventStore, merkle
from events.catalogue import CheckpointSigned
from governance.errors import CheckpointError
from governance.keys import PublicKey
from governance.tree_head import HASH_SIZE, is_size, signed_part, verify_tree_head

BUNDLE_FORMAT = "agent-council/inclusion-proof/v1"
PUBLISHED_DIR = "checkpoints"
LEGACY_NAME = "checkpoint.json"
"""Where a council published its checkpoint before files were named by origin: read, never written."""

_MAX_PATH = 64  # an audit path has at most one hash per tree level
_HEX = re.compile(r"[0-9a-f]*")  # lowercase only: one encoding per byte string
_CHECKPOINT_FIELDS = frozenset({"tree_size", "root", "at", "origin", "key", "signature"})
_BUNDLE_FIELDS = frozenset({"format", "position", "leaf_hash", "audit_path", "checkpoint", "signer"})


# -- the published copy ---------------------------------------------------------------------------


def published_path(home: str | Path, origin: bytes) -> Path:
    """Where :func:`publish` keeps the latest checkpoint of the log whose first event hashes to ``origin``:
    ``<home>/checkpoints/<the origin's first 16 hex digits>.json``."""
    return Path(home) / PUBLISHED_DIR / f"{bytes(origin).hex()[:16]}.json"


def publish(home: str | Path, event: CheckpointSigned) -> Path:
    """Write ``event`` to :func:`published_path` atomically and return that path.

    A reader sees the previous file or the new one, whole, never a part: the JSON goes to a temporary
    file in the same directory, is flushed to disk, then renamed over the old one. Raises
    :class:`CheckpointError` for a malformed checkpoint (nothing is written then).
    """
    signed_part(event)
    path = published_path(home, event.origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(to_json(event), indent=2, sort_keys=True) + "\n").encode()
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def load_published(home: str | Path, origin: bytes) -> CheckpointSigned | None:
    """The checkpoint :func:`publish` wrote under ``home`` for the log of ``origin``; None if there is none.

    Raises :class:`CheckpointError` if the file is not a well-formed checkpoint. Its signature is
    not checked here: pass it to ``check_log`` or :func:`governance.tree_head.verify_tree_head`.
    """
    path = published_path(home, origin)
    if not path.exists():
        return None
    return load_published_file(path)


def load_legacy(home: str | Path) -> CheckpointSigned | None:
    """The checkpoint an older council published at ``<home>/checkpoint.json`` (of whichever log), or None."""
    path = Path(home) / LEGACY_NAME
    return load_published_file(path) if path.exists() else None


def load_published_file(path: str | Path) -> CheckpointSigned:
    """A checkpoint from a JSON file in :func:`publish`'s form (e.g. a copy a verifier kept elsewhere)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"there is no checkpoint file {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not JSON ({exc}); publish a checkpoint again") from None
    return from_json(obj, str(path))


# -- inclusion bundles -----------------------------------------------------------------------------


def inclusion_bundle(store: EventStore, position: int, checkpoint: CheckpointSigned) -> dict[str, Any]:
    """A self-contained, JSON-able proof that the event at ``position`` is in the log ``checkpoint`` signed.

    Holds the event's leaf hash, its position, the checkpoint (bytes as lowercase hex), the audit
    path and the signer's key fingerprint: :func:`verify_bundle` needs nothing else but the public
    key. Raises :class:`CheckpointError` for a position outside ``1..tree_size``, a checkpoint
    beyond the log's head, or a log whose proof does not lead to the checkpoint's root (the log no
    longer matches what was signed). Costs O(tree_size) hashing.
    """
    head = signed_part(checkpoint)
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
        "checkpoint": to_json(checkpoint),
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
    checkpoint = from_json(bundle["checkpoint"], "the inclusion bundle's checkpoint")
    if bundle["signer"] != key.fingerprint:
        raise CheckpointError(f"the inclusion bundle names signer {bundle['signer']!r}, not key "
                              f"{key.fingerprint} ({key.name})")
    verify_tree_head(checkpoint, key)
    what = "inclusion bundle"
    position = bundle["position"]
    if not is_size(position):
        raise CheckpointError(f"malformed {what}: position {position!r} is not an integer >= 1")
    leaf = _hex(bundle["leaf_hash"], "leaf_hash", what, HASH_SIZE)
    path = bundle["audit_path"]
    if not isinstance(path, list) or len(path) > _MAX_PATH:
        raise CheckpointError(f"malformed inclusion bundle: audit_path is not a list of at most {_MAX_PATH} hashes")
    hashes = [_hex(p, "audit_path", what, HASH_SIZE) for p in path]
    size = checkpoint.tree_size
    if not 1 <= position <= size:
        raise CheckpointError(f"the inclusion bundle's position {position} is not in the checkpoint of {size} events")
    if not merkle.verify_inclusion(leaf, position - 1, size, hashes, checkpoint.root):
        raise CheckpointError(f"the inclusion proof for position {position} does not lead to the root signed over "
                              f"{size} events: the leaf, its position or the audit path was altered")


# -- the JSON form of a checkpoint ----------------------------------------------------------------


def to_json(event: CheckpointSigned) -> dict[str, Any]:
    """``event`` as JSON data: byte strings in lowercase hex, ``at`` a float."""
    return {"tree_size": event.tree_size, "root": bytes(event.root).hex(), "at": float(event.at),
            "origin": bytes(event.origin).hex(), "key": event.key, "signature": bytes(event.signature).hex()}


def from_json(obj: object, what: str) -> CheckpointSigned:
    """A checkpoint from its JSON form; :class:`CheckpointError` names ``what`` and the first bad field.

    Decoding only turns hex into bytes; every field is then checked by
    :func:`governance.tree_head.signed_part`, the same checks a checkpoint in the log passes.
    """
    _fields(obj, _CHECKPOINT_FIELDS, what)
    assert isinstance(obj, dict)
    decoded = CheckpointSigned(tree_size=obj["tree_size"], root=_hex(obj["root"], "root", what), at=obj["at"],
                               origin=_hex(obj["origin"], "origin", what), key=obj["key"],
                               signature=_hex(obj["signature"], "signature", what))
    head = signed_part(decoded, what)
    return msgspec.structs.replace(decoded, at=head.at)  # JSON may write a whole number of seconds as an int


def _fields(obj: object, expected: frozenset[str], what: str) -> None:
    if not isinstance(obj, dict):
        raise CheckpointError(f"malformed {what}: expected a JSON object, got {type(obj).__name__}")
    if set(obj) != expected:
        missing, unknown = sorted(expected - set(obj)), sorted(map(str, set(obj) - expected))
        raise CheckpointError(f"malformed {what}: missing fields {missing}, unknown fields {unknown}")


def _hex(value: object, name: str, what: str, length: int | None = None) -> bytes:
    """``value``'s bytes if it is lowercase hex (of ``length`` bytes, when given); else :class:`CheckpointError`."""
    size = f"{length} bytes in " if length is not None else ""
    if (not isinstance(value, str) or len(value) % 2 or (length is not None and len(value) != 2 * length)
            or not _HEX.fullmatch(value)):
        raise CheckpointError(f"malformed {what}: {name} is not {size}lowercase hex")
    return bytes.fromhex(value)
