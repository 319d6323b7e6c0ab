"""RFC 9162 Merkle tree (Certificate Transparency 2.0, section 2.1) over SHA-256.

This module is the pure, dependency-free (``hashlib`` only) hashing core of the
append-only event log: it computes Merkle Tree Hashes (MTH, RFC 9162 2.1.1),
inclusion proofs (PATH, 2.1.3.1), consistency proofs (PROOF, 2.1.4.1), verifies
both kinds of proof with the algorithms of 2.1.3.2 and 2.1.4.2, and keeps an
incremental O(log n) accumulator (``CompactRange``) of the log's root.

A consistency proof is a list of subtree roots. :func:`consistency_ranges` names
those subtrees as leaf ranges without hashing anything, and :func:`subtree_hashes`
computes the roots of many ranges in one pass over the leaf hashes, so a verifier
can check any number of checkpoints against a long log without holding it.

Invariant: every ``leaves`` sequence and every ``leaf`` argument holds *leaf
hashes*, never raw entries. Callers hash each entry with :func:`leaf_hash`
(SHA-256 of 0x00 || entry) first; functions here never hash leaves again.
Leaf indices are 0-based. All hashes are 32-byte ``bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT", "CompactRange", "consistency_proof", "consistency_ranges", "inclusion_proof", "leaf_hash",
    "node_hash", "root", "subtree_hashes", "verify_consistency", "verify_inclusion",
]

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_HASH_SIZE = 32

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string: the root of a tree with no leaves."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash of one entry: SHA-256(0x00 || data)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Return k, the largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi] (lo < hi), computed level by level in O(hi - lo).

    Pairing neighbours and carrying an odd last node up unchanged yields the
    same tree as RFC 9162's recursive split at the largest power of two.
    """
    level = list(leaves[lo:hi])
    while len(level) > 1:
        nxt = [
            _sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """Return MTH(leaves), the root over already-hashed leaves.

    ``leaves`` are leaf hashes (see :func:`leaf_hash`); an empty sequence gives
    :data:`EMPTY_ROOT`. Runs in O(n) hashing without recursion.
    """
    return _mth(leaves, 0, len(leaves)) if len(leaves) else EMPTY_ROOT


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Return PATH(index, D[n]) (RFC 9162 2.1.3.1) for n = len(leaves).

    The audit path lists sibling subtree roots from the leaf upwards, so it
    verifies with :func:`verify_inclusion` against ``root(leaves)``. Cost is
    O(n) hashing in total. Raises ValueError unless 0 <= index < len(leaves).
    """
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} out of range for tree of size {n}")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(_mth(leaves, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges ``[lo, hi)`` whose roots form PROOF(old_size, D[new_size]), in proof order.

    This is RFC 9162 2.1.4.1's recursion naming each subtree instead of hashing it:
    ``[MTH(D[lo:hi]) for lo, hi in consistency_ranges(m, n)]`` is the consistency
    proof. Every range is either a perfect subtree (a power-of-two width ``w`` with
    ``lo % w == 0``) or ends at ``new_size`` and starts on the boundary of a peak of
    the tree of ``new_size`` leaves; :func:`subtree_hashes` computes exactly those.
    Raises ValueError unless 0 < old_size <= new_size.
    """
    if not (_is_size(old_size) and _is_size(new_size) and 0 < old_size <= new_size):
        raise ValueError(f"old_size {old_size!r} out of range: need 0 < old_size <= {new_size!r}")
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new_size, old_size, True  # SUBPROOF(m, D[lo:hi], complete)
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((lo + k, hi))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:  # m == n with b false: the old subtree's own root
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Return PROOF(old_size, D[n]) (RFC 9162 2.1.4.1) for n = len(leaves).

    The proof shows the tree of the first ``old_size`` leaves is a prefix of the
    tree of all leaves; it verifies with :func:`verify_consistency`. For
    ``old_size == n`` the proof is empty. Cost is O(n) hashing in total.
    Raises ValueError unless 0 < old_size <= len(leaves).
    """
    return [_mth(leaves, lo, hi) for lo, hi in consistency_ranges(old_size, len(leaves))]


def _is_perfect(lo: int, hi: int) -> bool:
    width = hi - lo
    return width > 0 and width & (width - 1) == 0 and lo % width == 0


def _is_peak_run(lo: int, hi: int) -> bool:
    """Whether ``lo`` is a peak boundary of the tree of ``hi`` leaves: ``lo``'s set bits all lie above ``hi - lo``'s."""
    return 0 <= lo < hi and lo % (1 << (hi - lo).bit_length()) == 0


def subtree_hashes(leaves: Iterable[bytes], ranges: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Return MTH(D[lo:hi]) for each range, from one pass over the leaf hashes in order.

    Each range must be a perfect subtree (width ``w`` a power of two, ``lo % w == 0``)
    or a run of peaks of the tree of ``hi`` leaves (``lo`` a multiple of the power of
    two above ``hi - lo``): every range :func:`consistency_ranges` gives, and every
    prefix ``(0, n)``, is one; any other raises ValueError before a leaf is read. A
    range whose ``hi`` lies beyond the leaves given is left out of the result.

    Keeps only the frontier (the perfect subtrees whose widths are the set bits of
    the size so far), in O(log n + len(ranges)) memory, and stops reading after the
    largest ``hi``. A perfect range is caught the moment the frontier builds it,
    since a later merge hides it; a run of peaks is folded right to left when the
    frontier's size reaches its ``hi``, as RFC 9162 splits it.
    """
    perfect: set[tuple[int, int]] = set()
    runs: dict[int, list[int]] = {}
    for lo, hi in ranges:
        if not (_is_size(lo) and _is_size(hi)):
            raise ValueError(f"range {(lo, hi)!r} is not a pair of leaf indices")
        if _is_perfect(lo, hi):
            perfect.add((lo, hi))
        elif _is_peak_run(lo, hi):
            runs.setdefault(hi, []).append(lo)
        else:
            raise ValueError(f"range [{lo}, {hi}) is neither a perfect subtree nor a run of peaks of the tree of "
                             f"{hi} leaves: no consistency proof or tree head uses it")
    last = max((hi for _, hi in ranges), default=0)
    found: dict[tuple[int, int], bytes] = {}
    peaks: list[tuple[int, bytes]] = []  # (first leaf, root) of each frontier subtree, widest first
    for index, leaf in enumerate(leaves):
        if index >= last:
            break
        start, node, width, carry = index, bytes(leaf), 1, index
        if (start, start + 1) in perfect:
            found[(start, start + 1)] = node
        while carry & 1:  # each trailing 1 bit of the old size merges two equal subtrees
            start, left = peaks.pop()
            node, width, carry = node_hash(left, node), width * 2, carry >> 1
            if (start, start + width) in perfect:
                found[(start, start + width)] = node
        peaks.append((start, node))
        size = index + 1
        for lo in runs.get(size, ()):
            acc = peaks[-1][1]
            for first, peak in reversed(peaks[:-1]):
                if first < lo:
                    break
                acc = node_hash(peak, acc)
            found[(lo, size)] = acc
    return found


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hash(value: object) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == _HASH_SIZE


def _all_hashes(proof: object) -> bool:
    if not isinstance(proof, Sequence) or isinstance(proof, (bytes, bytearray, str)):
        return False
    return all(_is_hash(p) for p in proof)


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Check that leaf hash ``leaf`` sits at ``index`` in the tree of ``tree_size``
    leaves whose root is ``root_hash``, using the RFC 9162 2.1.3.2 algorithm.

    Returns True only for an exact, complete audit path; a path with extra or
    missing elements, wrong sizes (index < 0, index >= tree_size), or any hash
    that is not 32 bytes gives False. Never raises.
    """
    if not (_is_size(index) and _is_size(tree_size) and 0 <= index < tree_size):
        return False
    if not (_is_hash(leaf) and _is_hash(root_hash) and _all_hashes(proof)):
        return False
    fn, sn, r = index, tree_size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            return False  # path longer than the tree is high
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree of ``new_size`` leaves with root ``new_root`` extends
    the tree of ``old_size`` leaves with root ``old_root`` (RFC 9162 2.1.4.2).

    RFC 9162 defines consistency proofs only for 0 < old_size, so old_size == 0
    gives False, as does old_size > new_size. When old_size == new_size the
    proof must be empty and the roots equal. Otherwise the proof must be exact:
    extra or missing elements, altered bytes or non-32-byte hashes give False.
    Never raises.
    """
    if not (_is_size(old_size) and _is_size(new_size) and 0 < old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and _all_hashes(proof)):
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if len(proof) == 0:  # step 1
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: old tree is a complete subtree
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root  # step 7


class CompactRange:
    """Incremental accumulator of leaf hashes: the frontier of perfect subtrees.

    Holds one root per set bit of ``size`` (O(log n) memory); ``append`` costs
    amortised O(1) hashing and ``root()`` O(log n). At every point ``root()``
    equals :func:`root` of all leaf hashes appended so far.
    """

    def __init__(self) -> None:
        """Start an empty range (size 0, root EMPTY_ROOT)."""
        self._size = 0
        self._peaks: list[bytes] = []  # perfect-subtree roots, largest first

    @classmethod
    def resume(cls, size: int, peaks: Sequence[bytes]) -> CompactRange:
        """The range whose :attr:`size` and :attr:`peaks` are these: it goes on exactly as the range that had them
        (a snapshot of the frontier resumes the root without the leaves). :class:`ValueError` if they cannot be one
        range's: one 32-byte peak per set bit of ``size``."""
        if not _is_size(size) or size < 0 or len(peaks) != bin(size).count("1") or not all(_is_hash(p) for p in peaks):
            raise ValueError(f"{len(peaks)} peaks cannot be the frontier of a range of {size!r} leaves: it has one "
                             "32-byte peak per set bit of its size")
        resumed = cls()
        resumed._size, resumed._peaks = size, [bytes(p) for p in peaks]
        return resumed

    @property
    def size(self) -> int:
        """Number of leaf hashes appended so far."""
        return self._size

    @property
    def peaks(self) -> list[bytes]:
        """The frontier: the roots of the perfect subtrees, largest first (all that the range keeps of its leaves)."""
        return list(self._peaks)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (already passed through :func:`leaf_hash`)."""
        peaks = self._peaks
        peaks.append(bytes(leaf))
        size = self._size
        while size & 1:  # each trailing 1 bit of the old size is a merge
            right = peaks.pop()
            peaks[-1] = node_hash(peaks[-1], right)
            size >>= 1
        self._size += 1

    def root(self) -> bytes:
        """Return MTH of everything appended so far (EMPTY_ROOT when empty)."""
        if not self._peaks:
            return EMPTY_ROOT
        acc = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc
