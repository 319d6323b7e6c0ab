"""Tests for events.merkle: published RFC 6962/9162 vectors, properties, bad input."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    subtree_hashes,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------
# Published test vectors.
# Leaf inputs, node hashes and root hashes are copied verbatim from
#   github.com/transparency-dev/merkle, testonly/constants.go
#   (LeafInputs, NodeHashes, RootHashes, EmptyRootHash);
# inclusion and consistency proofs from
#   github.com/transparency-dev/merkle, proof/verify_test.go
#   (inclusionProofs, consistencyProofs; there `leaf` is 1-based).
# ---------------------------------------------------------------------------

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# NODE_HASHES[level][i] is the root of the perfect subtree over leaves
# [i * 2**level, (i + 1) * 2**level).
NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

# ROOT_HASHES[n] is the root of the tree over the first n leaves.
ROOT_HASHES = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# (0-based leaf index, tree size, proof); verify_test.go lists 1-based leaves
# {1,1}, {1,8}, {6,8}, {3,3}, {2,5}.
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 3, [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    ]),
    (1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
]

# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
    (6, 7, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
]

VECTOR_LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]


def _hx(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_empty_root_and_hash_prefixes() -> None:
    assert EMPTY_ROOT.hex() == ROOT_HASHES[0]
    assert root([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT and CompactRange().size == 0
    a, b = VECTOR_LEAVES[0], VECTOR_LEAVES[1]
    assert node_hash(a, b).hex() == NODE_HASHES[1][0]


def test_vector_leaf_and_node_hashes() -> None:
    assert [h.hex() for h in VECTOR_LEAVES] == NODE_HASHES[0]
    for level, row in enumerate(NODE_HASHES):
        width = 1 << level
        for i, expected in enumerate(row):
            assert root(VECTOR_LEAVES[i * width:(i + 1) * width]).hex() == expected


@pytest.mark.parametrize("size", range(9))
def test_vector_roots(size: int) -> None:
    assert root(VECTOR_LEAVES[:size]).hex() == ROOT_HASHES[size]
    cr = CompactRange()
    for leaf in VECTOR_LEAVES[:size]:
        cr.append(leaf)
    assert cr.size == size and cr.root().hex() == ROOT_HASHES[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_vector_inclusion(index: int, size: int, proof: list[str]) -> None:
    expected = _hx(proof)
    assert inclusion_proof(index, VECTOR_LEAVES[:size]) == expected
    root_hash = bytes.fromhex(ROOT_HASHES[size])
    assert verify_inclusion(VECTOR_LEAVES[index], index, size, expected, root_hash)
    # Corruptions used alongside these vectors in verify_test.go.
    leaf = VECTOR_LEAVES[index]
    for bad_index, bad_size in [(index - 1, size), (index + 1, size), (index ^ 2, size),
                                (index, size * 2), (index, size // 2)]:
        assert not verify_inclusion(leaf, bad_index, bad_size, expected, root_hash)
    assert not verify_inclusion(leaf, index, size, expected, EMPTY_ROOT)
    assert not verify_inclusion(leaf, index, size, [*expected, root_hash], root_hash)
    assert not verify_inclusion(leaf, index, size, [root_hash, *expected], root_hash)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_vector_consistency(old: int, new: int, proof: list[str]) -> None:
    expected = _hx(proof)
    assert consistency_proof(old, VECTOR_LEAVES[:new]) == expected
    r1, r2 = bytes.fromhex(ROOT_HASHES[old]), bytes.fromhex(ROOT_HASHES[new])
    assert verify_consistency(old, new, r1, r2, expected)
    if old < new:
        for bad_old, bad_new in [(old - 1, new), (old + 1, new), (old ^ 2, new),
                                 (old, new * 2), (old, new // 2)]:
            assert not verify_consistency(bad_old, bad_new, r1, r2, expected)
        assert not verify_consistency(old, new, r2, r1, expected)
        assert not verify_consistency(old, new, r1, r2, [])
        assert not verify_consistency(old, new, r1, r2, [expected[0], *expected])


# ---------------------------------------------------------------------------
# Property tests over random trees.
# ---------------------------------------------------------------------------

MAX_N = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_N)]
PREFIX_ROOTS = [root(LEAVES[:n]) for n in range(MAX_N + 1)]
PROPS = settings(max_examples=100, deadline=None, database=None)


def _flip(h: bytes, pos: int, mask: int) -> bytes:
    b = bytearray(h)
    b[pos % len(b)] ^= mask
    return bytes(b)


@st.composite
def _tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, MAX_N))
    return n, draw(st.integers(0, n - 1))


@st.composite
def _sizes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, MAX_N))
    return draw(st.integers(1, n)), n


@PROPS
@given(_tree_and_index(), st.integers(0, 31), st.integers(1, 255), st.binary(min_size=32, max_size=32),
       st.integers(0, 64))
def test_inclusion_roundtrip_and_tamper(ti: tuple[int, int], pos: int, mask: int,
                                        extra: bytes, at: int) -> None:
    n, i = ti
    leaves, r, leaf = LEAVES[:n], PREFIX_ROOTS[n], LEAVES[i]
    proof = inclusion_proof(i, leaves)
    assert verify_inclusion(leaf, i, n, proof, r)
    assert not verify_inclusion(_flip(leaf, pos, mask), i, n, proof, r)
    assert not verify_inclusion(leaf, i, n, proof, _flip(r, pos, mask))
    for k in range(len(proof)):
        bad = [*proof[:k], _flip(proof[k], pos, mask), *proof[k + 1:]]
        assert not verify_inclusion(leaf, i, n, bad, r)
        assert not verify_inclusion(leaf, i, n, proof[:k] + proof[k + 1:], r)
    j = at % (len(proof) + 1)
    assert not verify_inclusion(leaf, i, n, [*proof[:j], extra, *proof[j:]], r)


@PROPS
@given(_sizes(), st.integers(0, 31), st.integers(1, 255), st.binary(min_size=32, max_size=32),
       st.integers(0, 64))
def test_consistency_roundtrip_and_tamper(sizes: tuple[int, int], pos: int, mask: int,
                                          extra: bytes, at: int) -> None:
    m, n = sizes
    r1, r2 = PREFIX_ROOTS[m], PREFIX_ROOTS[n]
    proof = consistency_proof(m, LEAVES[:n])
    assert verify_consistency(m, n, r1, r2, proof)
    assert not verify_consistency(m, n, _flip(r1, pos, mask), r2, proof)
    assert not verify_consistency(m, n, r1, _flip(r2, pos, mask), proof)
    for k in range(len(proof)):
        bad = [*proof[:k], _flip(proof[k], pos, mask), *proof[k + 1:]]
        assert not verify_consistency(m, n, r1, r2, bad)
        assert not verify_consistency(m, n, r1, r2, proof[:k] + proof[k + 1:])
    j = at % (len(proof) + 1)
    assert not verify_consistency(m, n, r1, r2, [*proof[:j], extra, *proof[j:]])


@PROPS
@given(_tree_and_index())
def test_inclusion_proof_is_bound_to_its_index_and_size(ti: tuple[int, int]) -> None:
    n, i = ti
    proof = inclusion_proof(i, LEAVES[:n])
    for j in {i - 1, i + 1}:
        if 0 <= j < n:
            assert not verify_inclusion(LEAVES[j], j, n, proof, PREFIX_ROOTS[n])
    if n > 1:  # a proof for one size never verifies against another root
        assert not verify_inclusion(LEAVES[i], i, n, proof, PREFIX_ROOTS[n - 1])


def _ref_mth(d: list[bytes]) -> bytes:
    """MTH straight from the recursive RFC 9162 2.1.1 definition."""
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return node_hash(_ref_mth(d[:k]), _ref_mth(d[k:]))


def _ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 9162 2.1.3.1."""
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*_ref_path(m, d[:k]), _ref_mth(d[k:])]
    return [*_ref_path(m - k, d[k:]), _ref_mth(d[:k])]


def _ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from RFC 9162 2.1.4.1."""
    if m == len(d):
        return [] if b else [_ref_mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*_ref_subproof(m, d[:k], b), _ref_mth(d[k:])]
    return [*_ref_subproof(m - k, d[k:], False), _ref_mth(d[:k])]


def test_matches_recursive_rfc_definitions_exhaustively() -> None:
    for n in range(0, 34):
        d = LEAVES[:n]
        assert root(d) == _ref_mth(d) == PREFIX_ROOTS[n]
        for i in range(n):
            assert inclusion_proof(i, d) == _ref_path(i, d)
        for m in range(1, n + 1):
            assert consistency_proof(m, d) == _ref_subproof(m, d, True)


# ---------------------------------------------------------------------------
# Naming a proof's subtrees, and hashing many of them in one pass.
# ---------------------------------------------------------------------------

RANGES_N = 70


def test_consistency_ranges_name_the_rfc_proof_for_every_pair_of_sizes() -> None:
    proved = 0
    for n in range(1, RANGES_N + 1):
        d = LEAVES[:n]
        for m in range(1, n + 1):
            ranges = consistency_ranges(m, n)
            proof = [_ref_mth(d[lo:hi]) for lo, hi in ranges]
            assert proof == _ref_subproof(m, d, True), (m, n)
            assert verify_consistency(m, n, PREFIX_ROOTS[m], PREFIX_ROOTS[n], proof), (m, n)
            assert all(0 <= lo < hi <= n for lo, hi in ranges)
            proved += len(ranges)
    assert proved > 10_000


def test_subtree_hashes_give_every_proof_range_and_prefix_from_one_pass() -> None:
    proved = 0
    for n in range(1, RANGES_N + 1):
        wanted = {(0, s) for s in range(1, n + 1)}
        wanted.update(r for m in range(1, n + 1) for r in consistency_ranges(m, n))
        read: list[int] = []
        nodes = subtree_hashes((read.append(i) or leaf for i, leaf in enumerate(LEAVES)), wanted)
        assert set(nodes) == wanted
        for (lo, hi), node in nodes.items():
            assert node == root(LEAVES[lo:hi]), (lo, hi)
            proved += 1
        for m in range(1, n + 1):
            proof = [nodes[r] for r in consistency_ranges(m, n)]
            assert proof == consistency_proof(m, LEAVES[:n])
            assert verify_consistency(m, n, nodes[(0, m)], nodes[(0, n)], proof)
        assert len(read) <= n + 1  # it stops once the largest range is done
    assert proved > 3_000


@PROPS
@given(st.integers(1, MAX_N), st.data())
def test_subtree_hashes_of_a_few_checkpoints_match_the_proof_functions(n: int, data: st.DataObject) -> None:
    sizes = sorted(set(data.draw(st.lists(st.integers(1, n), min_size=1, max_size=6))))
    pairs = list(itertools.pairwise(sizes))
    wanted = {(0, s) for s in sizes} | {r for a, b in pairs for r in consistency_ranges(a, b)}
    nodes = subtree_hashes(iter(LEAVES), wanted)
    for s in sizes:
        assert nodes[(0, s)] == PREFIX_ROOTS[s]
    for a, b in pairs:
        proof = [nodes[r] for r in consistency_ranges(a, b)]
        assert proof == consistency_proof(a, LEAVES[:b])
        assert verify_consistency(a, b, nodes[(0, a)], nodes[(0, b)], proof)


def test_subtree_hashes_leave_out_ranges_beyond_the_leaves() -> None:
    nodes = subtree_hashes(iter(LEAVES[:5]), {(0, 4), (0, 5), (0, 6), (4, 6), (6, 7)})
    assert nodes == {(0, 4): PREFIX_ROOTS[4], (0, 5): PREFIX_ROOTS[5]}


@pytest.mark.parametrize("bad", [(0, 0), (3, 2), (-1, 3), (1, 4), (2, 5), (5, 11), (0.0, 4), (True, 2)])
def test_subtree_hashes_refuse_a_range_no_proof_uses(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="range"):
        subtree_hashes(iter(LEAVES), {bad})


@pytest.mark.parametrize(("old", "new"), [(0, 5), (-1, 5), (6, 5), (0, 0), (True, 3), (1, 2.0)])
def test_consistency_ranges_refuse_bad_sizes(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="old_size"):
        consistency_ranges(old, new)


def test_compact_range_matches_root_at_every_size() -> None:
    cr = CompactRange()
    assert cr.root() == PREFIX_ROOTS[0]
    for n, leaf in enumerate(LEAVES, start=1):
        cr.append(leaf)
        assert cr.size == n
        assert cr.root() == PREFIX_ROOTS[n]


@PROPS
@given(st.lists(st.binary(max_size=8), max_size=70))
def test_compact_range_random_data(entries: list[bytes]) -> None:
    leaves = [leaf_hash(e) for e in entries]
    cr = CompactRange()
    for k, leaf in enumerate(leaves, start=1):
        cr.append(leaf)
        assert cr.root() == root(leaves[:k])


def test_a_compact_range_resumed_from_its_frontier_goes_on_as_the_original() -> None:
    proved = 0
    for cut in range(len(LEAVES) + 1):
        original = CompactRange()
        for leaf in LEAVES[:cut]:
            original.append(leaf)
        resumed = CompactRange.resume(original.size, original.peaks)
        assert len(resumed.peaks) == bin(cut).count("1") and resumed.root() == PREFIX_ROOTS[cut]
        for n, leaf in enumerate(LEAVES[cut:], start=cut + 1):
            resumed.append(leaf)
            assert resumed.root() == PREFIX_ROOTS[n]
            proved += 1
    assert proved > 100, proved
    for size, peaks in ((1, []), (2, [b"\0" * 32, b"\0" * 32]), (1, [b"\0" * 16]), (-1, []), (True, [b"\0" * 32])):
        with pytest.raises(ValueError, match="frontier"):
            CompactRange.resume(size, peaks)  # type: ignore[arg-type]


def test_large_tree_smoke() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range((1 << 16) + 3)]
    n = len(leaves)
    cr = CompactRange()
    for leaf in leaves:
        cr.append(leaf)
    r = root(leaves)
    assert cr.root() == r
    for i in (0, 1 << 15, n - 1):
        assert verify_inclusion(leaves[i], i, n, inclusion_proof(i, leaves), r)
    m = (1 << 16) - 5
    assert verify_consistency(m, n, root(leaves[:m]), r, consistency_proof(m, leaves))


# ---------------------------------------------------------------------------
# Bad inputs.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("index", [-1, 5, 6, 100])
def test_inclusion_proof_rejects_bad_index(index: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(index, LEAVES[:5])


def test_inclusion_proof_rejects_empty_tree() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(0, [])


@pytest.mark.parametrize(("old", "n"), [(0, 5), (-1, 5), (6, 5), (0, 0), (1, 0)])
def test_consistency_proof_rejects_bad_sizes(old: int, n: int) -> None:
    with pytest.raises(ValueError, match="old_size"):
        consistency_proof(old, LEAVES[:n])


def test_verify_inclusion_bad_input_returns_false() -> None:
    n, i = 5, 2
    proof, r, leaf = inclusion_proof(i, LEAVES[:n]), PREFIX_ROOTS[n], LEAVES[i]
    cases = [
        (leaf, n, n, proof, r), (leaf, n + 3, n, proof, r), (leaf, -1, n, proof, r),
        (leaf, 0, 0, [], EMPTY_ROOT), (leaf, i, -n, proof, r), (leaf, i, 0, proof, r),
        (leaf[:31], i, n, proof, r), (leaf, i, n, proof, r[:31]), (leaf, i, n, [*proof, b""], r),
        (leaf, i, n, [p[:16] for p in proof], r), (None, i, n, proof, r), (leaf, i, n, None, r),
        (leaf, "2", n, proof, r), (leaf, i, 5.0, proof, r), (leaf, i, n, b"".join(proof), r),
        (leaf, i, n, [None] * len(proof), r), (leaf, i, n, proof, None), (leaf, True, n, proof, r),
        (leaf, 0, 1, [], EMPTY_ROOT), (leaf, 0, 1, [leaf], leaf),
    ]
    for case in cases:
        assert verify_inclusion(*case) is False, case  # type: ignore[arg-type]
    assert verify_inclusion(leaf, 0, 1, [], leaf) is True


def test_verify_consistency_bad_input_returns_false() -> None:
    m, n = 3, 7
    proof, r1, r2 = consistency_proof(m, LEAVES[:n]), PREFIX_ROOTS[m], PREFIX_ROOTS[n]
    cases = [
        (0, n, EMPTY_ROOT, r2, proof), (0, n, EMPTY_ROOT, r2, []), (0, 0, EMPTY_ROOT, EMPTY_ROOT, []),
        (n, m, r2, r1, proof), (n, m, r1, r2, proof), (-1, n, r1, r2, proof), (m, -n, r1, r2, proof),
        (m, n, r1, r2, []), (m, m, r1, r2, []), (m, m, r1, r1, [r1]), (m, n, r1[:31], r2, proof),
        (m, n, r1, r2, [*proof, b""]), (m, n, None, r2, proof), (m, n, r1, r2, None),
        (m, n, r1, r2, b"".join(proof)), (m, n, r1, r2, [None] * len(proof)), ("3", n, r1, r2, proof),
        (m, float(n), r1, r2, proof), (True, n, r1, r2, proof),
    ]
    for case in cases:
        assert verify_consistency(*case) is False, case  # type: ignore[arg-type]
    assert verify_consistency(m, m, r1, r1, []) is True
