"""A signed tree head: what a checkpoint's signature covers, how the council signs one, how anyone checks it.

A tree head is ``(tree_size, root, at, origin)``: the RFC 9162 root over the first ``tree_size``
events of the log, when it was signed (UTC epoch seconds), and the hash of the log's first event
(which log it is). The council signs its canonical bytes under the purpose :data:`PURPOSE`; the
result travels as a ``checkpoint.signed`` event (see :mod:`governance.checkpoints`).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import msgspec

from events.catalogue import CheckpointSigned
from governance import signing
from governance.errors import CheckpointError
from governance.keys import PublicKey, SigningKey

PURPOSE = "tree-head"
"""The signing purpose label of a tree head: such a signature is never valid for anything else."""

HASH_SIZE = 32
SIGNATURE_SIZE = 64
MAX_SIZE = 2**63 - 1
"""The largest tree size: positions are SQLite rowids, and every size stays encodable in MessagePack."""
MAX_FINGERPRINT = 64
"""The longest key fingerprint a checkpoint may name (the log's ``Fingerprint`` field allows no longer)."""


class TreeHead(msgspec.Struct, frozen=True):
    """What a checkpoint's signature covers (its canonical bytes, under :data:`PURPOSE`)."""

    tree_size: int
    root: bytes
    at: float
    origin: bytes


def sign_root(key: SigningKey, size: int, root: bytes, origin: bytes, now: float | None = None) -> CheckpointSigned:
    """Sign a tree head whose root the caller computed (e.g. incrementally, with ``events.merkle.CompactRange``).

    The caller vouches that ``root`` is the Merkle root of the log's first ``size`` events and
    ``origin`` the hash of its first; :func:`governance.checkpoints.check_log` will hold the log to it.
    Raises :class:`CheckpointError` for a time that is not UTC epoch seconds.
    """
    at = time.time() if now is None else now
    if not is_time(at):
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
    head = signed_part(event)
    if event.key != key.fingerprint:
        raise CheckpointError(f"checkpoint of {head.tree_size} events signed at {when(head.at)} names key "
                              f"{event.key!r}, not {key.fingerprint} ({key.name}): check it with the key that "
                              "signed it")
    if not signing.verify(key, PURPOSE, head, bytes(event.signature)):
        raise CheckpointError(f"checkpoint of {head.tree_size} events signed at {when(head.at)}: the signature does "
                              f"not verify with key {key.fingerprint} ({key.name}); the tree head was altered or "
                              "forged")


def signed_part(event: object, what: str | None = None) -> TreeHead:
    """The tree head inside ``event``, after checking every field's type and size; else :class:`CheckpointError`.

    The one set of field checks for a checkpoint, wherever it comes from — the log, a published
    file, an inclusion bundle (:mod:`governance.checkpoint_files` decodes, then calls this) — so
    one that passes here can be published and read back, and one refused here is refused
    everywhere. ``what`` names it in the message (default: "checkpoint of N events").
    """
    if not isinstance(event, CheckpointSigned):
        raise CheckpointError(f"expected a checkpoint.signed event, got {type(event).__name__}")
    size, at = event.tree_size, event.at
    if not is_size(size):
        raise CheckpointError(f"malformed {what or 'checkpoint'}: tree_size {size!r} is not an integer from 1 to "
                              f"{MAX_SIZE}")
    label = what or f"checkpoint of {size} events"
    if not is_time(at):
        raise CheckpointError(f"malformed {label}: 'at' {at!r} is not UTC epoch seconds >= 0")
    for name, value, length in (("root", event.root, HASH_SIZE), ("origin", event.origin, HASH_SIZE),
                                ("signature", event.signature, SIGNATURE_SIZE)):
        if not isinstance(value, bytes | bytearray) or len(value) != length:
            raise CheckpointError(f"malformed {label}: {name} is not {length} bytes")
    if not isinstance(event.key, str) or not 1 <= len(event.key) <= MAX_FINGERPRINT:
        raise CheckpointError(f"malformed {label}: key is not a key fingerprint (1 to {MAX_FINGERPRINT} characters)")
    return TreeHead(size, bytes(event.root), float(at), bytes(event.origin))


def is_size(value: object) -> bool:
    """Whether ``value`` is a tree size (or a position in one): an integer from 1 to :data:`MAX_SIZE`, not a bool."""
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_SIZE


def is_time(value: object) -> bool:
    """Whether ``value`` is a time a tree head may carry: finite UTC epoch seconds >= 0 (a number, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:  # an integer too large for a float
        return False


def when(at: object) -> str:
    """``at`` (UTC epoch seconds) as people read it in a message, or its repr if it is not a time."""
    if isinstance(at, bool) or not isinstance(at, int | float):
        return repr(at)
    try:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return repr(at)
