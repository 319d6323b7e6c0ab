"""Signed tree heads of the ledger: the council signs the Merkle root of the log, as Certificate
Transparency's log signs its STH, so a rewritten or truncated log is caught by anyone who holds one.

A tree head (:mod:`governance.tree_head`) is ``(tree_size, root, at, origin)``: the RFC 9162 root
over the first ``tree_size`` events, when it was signed, and the hash of the log's first event.
The council signs it and appends the result as a ``checkpoint.signed`` event to the stream
:data:`events.streams.CHECKPOINTS`; :func:`governance.checkpoint_files.publish` also writes the
latest one to ``<home>/checkpoints/<origin>.json``, outside the log, because a checkpoint kept only inside
the log vanishes with the tail it protects.

The chain (``EventStore.verify``) shows every stored hash matches its event's bytes; checkpoints
show the hashes themselves are the ones signed. A log rewritten with all hashes recomputed passes
the first and fails the second; so does one cut off after its last checkpoint, if a verifier holds
a published copy (:func:`check_log`).

This module signs a log's tree head and checks a log against its checkpoints. Signing and
verifying one tree head is :mod:`governance.tree_head`'s; the published copy and inclusion
bundles are :mod:`governance.checkpoint_files`'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import msgspec

from events import EventStore, merkle
from events.catalogue import CheckpointSigned
from governance.errors import CheckpointError
from governance.keys import PublicKey, SigningKey
from governance.tree_head import sign_root, verify_tree_head, when

_identity = msgspec.msgpack.Encoder().encode


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


def sign_tree_head(store: EventStore, key: SigningKey, size: int | None = None,
                   now: float | None = None) -> CheckpointSigned:
    """Sign the tree head of ``store``'s first ``size`` events (all of them by default) with ``key``.

    Returns the ``checkpoint.signed`` payload, ready to append to :data:`events.streams.CHECKPOINTS`. Raises
    :class:`CheckpointError` for an empty log, or a ``size`` outside ``1..head``. Costs one read of
    the first ``size`` leaf hashes (the root is O(size)).
    """
    head = store.head()
    if head == 0:
        raise CheckpointError("the log is empty; there is nothing to sign yet")
    size = head if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= head:
        raise CheckpointError(f"cannot sign a tree head of {size!r} events: the log holds 1..{head}")
    return sign_root(key, size, store.root(size), origin_of(store), now)


def check_log(store: EventStore, key: PublicKey, extra: Sequence[CheckpointSigned] = ()) -> CheckpointReport:
    """Check ``store`` against every checkpoint in it and in ``extra`` (e.g.
    :func:`governance.checkpoint_files.load_published`).

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
    origin = origin_of(store) if head else None
    problems: list[tuple[int, str]] = []
    usable: list[CheckpointSigned] = []  # signed by key, of this log, within its head
    for cp in candidates:
        if not isinstance(cp, CheckpointSigned):
            problems.append((0, f"expected a checkpoint.signed event, got {type(cp).__name__}"))
            continue
        try:
            verify_tree_head(cp, key)
        except CheckpointError as exc:
            problems.append((_size_of(cp), str(exc)))
            continue
        if origin is not None and cp.origin != origin:
            problems.append((cp.tree_size, f"checkpoint of {cp.tree_size} events signed at {when(cp.at)} is of "
                                           f"another log: its origin is {bytes(cp.origin).hex()[:16]}…, this log's "
                                           f"first event hashes to {origin.hex()[:16]}…"))
        elif cp.tree_size > head:
            problems.append((cp.tree_size, f"the log was truncated: checkpoint signed at {when(cp.at)} covers "
                                           f"{cp.tree_size} events but the log has {head}"))
        else:
            usable.append(cp)
    usable.sort(key=lambda c: (c.tree_size, c.at))
    # Each consecutive pair, with the leaf ranges whose roots make its consistency proof.
    pairs = [(a, b, merkle.consistency_ranges(a.tree_size, b.tree_size)) for a, b in pairwise(usable)]
    wanted = {(0, c.tree_size) for c in usable}
    wanted.update(r for _, _, ranges in pairs for r in ranges)
    top = usable[-1].tree_size if usable else 0
    nodes = merkle.subtree_hashes((row[9] for row in store.scan_rows(1, top)), wanted) if top else {}

    matched: list[CheckpointSigned] = []
    for cp in usable:
        if nodes.get((0, cp.tree_size)) == cp.root:
            matched.append(cp)
            continue
        below = [m.tree_size for m in matched if m.tree_size < cp.tree_size]
        narrowed = (f" and after position {below[-1]} (the checkpoint of {below[-1]} events still matches)"
                    if below else "")
        problems.append((cp.tree_size, f"checkpoint of {cp.tree_size} events signed at {when(cp.at)}: history "
                                       f"rewritten at or before position {cp.tree_size}{narrowed}: the log's root "
                                       "over those events is not the signed root"))
    for a, b, ranges in pairs:
        # A range the pass did not reach leaves the proof short, and verify_consistency refuses any proof that is
        # not exact.
        proof = [nodes[r] for r in ranges if r in nodes]
        if not merkle.verify_consistency(a.tree_size, b.tree_size, a.root, b.root, proof):
            problems.append((b.tree_size, f"checkpoints of {a.tree_size} events (signed at {when(a.at)}) and of "
                                          f"{b.tree_size} events (signed at {when(b.at)}) are not consistent: the "
                                          "log's consistency proof between them does not verify against both "
                                          "signed roots"))
    problems.sort(key=lambda p: p[0])
    return CheckpointReport(ok=not problems, checked=len(candidates), problems=[p for _, p in problems],
                            latest=max(matched, key=lambda c: (c.tree_size, c.at)) if matched else None)


def _distinct(items: Iterable[object]) -> list[object]:
    """``items`` without repeats (the published copy is usually also in the log), in order."""
    seen: set[object] = set()
    out: list[object] = []
    for cp in items:
        try:
            ident: object = _identity(cp)
        except (TypeError, OverflowError, msgspec.EncodeError):
            ident = id(cp)
        if ident not in seen:
            seen.add(ident)
            out.append(cp)
    return out


def origin_of(store: EventStore) -> bytes:
    """The hash of the log's first event: it names the log (the log must not be empty)."""
    return bytes(next(iter(store.scan_rows(1, 1)))[9])


def _size_of(cp: object) -> int:
    size = getattr(cp, "tree_size", 0)
    return size if isinstance(size, int) else 0
