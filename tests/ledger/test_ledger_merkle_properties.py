"""Property tests: every proof the tree hands out verifies, and any altered bit makes it fail."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from potluck.errors import VerificationError
from potluck.tlog.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.timeout(60)

MAX_EXHAUSTIVE = 130
MAX_SAMPLED = 520

LEAF_HASHES = [leaf_hash(b"entry %d" % i) for i in range(MAX_SAMPLED)]


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    return MerkleTree.from_leaf_hashes(LEAF_HASHES)


# Reference proofs written straight from RFC 9162 §2.1.3.1 and §2.1.4.1, recursion and all.
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [root_from_leaf_hashes(d[k:])]
    return ref_path(m - k, d[k:]) + [root_from_leaf_hashes(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [root_from_leaf_hashes(d)]
    k = _k(len(d))
    if m <= k:
        return ref_subproof(m, d[:k], b) + [root_from_leaf_hashes(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [root_from_leaf_hashes(d[:k])]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_proofs_match_the_rfc_recursion(tree: MerkleTree) -> None:
    for n in range(1, 65):
        d = LEAF_HASHES[:n]
        assert tree.root(n) == root_from_leaf_hashes(d)
        for m in range(n):
            assert tree.inclusion_proof(m, n) == ref_path(m, d)
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == ref_subproof(m, d, True)


def test_every_inclusion_proof_verifies(tree: MerkleTree) -> None:
    for n in range(1, MAX_EXHAUSTIVE + 1):
        root = tree.root(n)
        for m in range(n):
            verify_inclusion(LEAF_HASHES[m], m, n, tree.inclusion_proof(m, n), root)


def test_every_consistency_proof_verifies(tree: MerkleTree) -> None:
    roots = [tree.root(n) for n in range(MAX_EXHAUSTIVE + 1)]
    for n in range(0, MAX_EXHAUSTIVE + 1):
        for m in range(0, n + 1):
            verify_consistency(m, n, roots[m], roots[n], tree.consistency_proof(m, n))


def test_appending_matches_bulk_building() -> None:
    one_by_one = MerkleTree()
    chunked = MerkleTree()
    assert one_by_one.root() == EMPTY_ROOT
    for i, lh in enumerate(LEAF_HASHES[:300]):
        assert one_by_one.append(lh) == i
        assert one_by_one.root() == root_from_leaf_hashes(LEAF_HASHES[: i + 1])
    # Uneven chunks exercise extend() on partially filled levels.
    pos, step = 0, 1
    while pos < 300:
        chunked.extend(LEAF_HASHES[pos : min(300, pos + step)])
        pos += step
        step = step * 3 % 17 + 1
    assert len(chunked) == len(one_by_one) == 300
    for n in range(301):
        assert chunked.root(n) == one_by_one.root(n)
    assert chunked.leaf_hash(123) == LEAF_HASHES[123]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sampled_proofs_verify_and_bit_flips_fail(tree: MerkleTree, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, MAX_SAMPLED), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    root = tree.root(n)
    proof = tree.inclusion_proof(m, n)
    verify_inclusion(LEAF_HASHES[m], m, n, proof, root)

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(VerificationError):
        verify_inclusion(flip(LEAF_HASHES[m], bit), m, n, proof, root)
    with pytest.raises(VerificationError):
        verify_inclusion(LEAF_HASHES[m], m, n, proof, flip(root, bit))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="proof element")
        bad = list(proof)
        bad[i] = flip(bad[i], bit)
        with pytest.raises(VerificationError):
            verify_inclusion(LEAF_HASHES[m], m, n, bad, root)

    old = data.draw(st.integers(0, n), label="old size")
    old_root = tree.root(old)
    cproof = tree.consistency_proof(old, n)
    verify_consistency(old, n, old_root, root, cproof)
    if 0 < old < n:
        # Only then do both roots depend on the proof (size 0 and equal sizes need no proof).
        with pytest.raises(VerificationError):
            verify_consistency(old, n, flip(old_root, bit), root, cproof)
        with pytest.raises(VerificationError):
            verify_consistency(old, n, old_root, flip(root, bit), cproof)
        i = data.draw(st.integers(0, len(cproof) - 1), label="consistency proof element")
        bad = list(cproof)
        bad[i] = flip(bad[i], bit)
        with pytest.raises(VerificationError):
            verify_consistency(old, n, old_root, root, bad)


def test_every_bit_of_a_proof_matters(tree: MerkleTree) -> None:
    n, m, old = 77, 45, 29
    root, old_root = tree.root(n), tree.root(old)
    proof, cproof = tree.inclusion_proof(m, n), tree.consistency_proof(old, n)
    for i in range(len(proof)):
        for bit in range(256):
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            with pytest.raises(VerificationError, match="computed root"):
                verify_inclusion(LEAF_HASHES[m], m, n, bad, root)
    for i in range(len(cproof)):
        for bit in range(256):
            bad = list(cproof)
            bad[i] = flip(bad[i], bit)
            with pytest.raises(VerificationError, match="computed (old|new) root"):
                verify_consistency(old, n, old_root, root, bad)


def test_wrong_length_proofs_fail_with_the_expected_length(tree: MerkleTree) -> None:
    rnd = random.Random(7)
    for _ in range(200):
        n = rnd.randint(2, MAX_SAMPLED)
        m = rnd.randrange(n)
        proof = tree.inclusion_proof(m, n)
        for bad in (proof[:-1], [*proof, proof[-1]], [LEAF_HASHES[0], *proof]):
            with pytest.raises(VerificationError, match=f"expected {len(proof)} proof hashes, got {len(bad)}"):
                verify_inclusion(LEAF_HASHES[m], m, n, bad, tree.root(n))
        old = rnd.randint(1, n - 1)
        cproof = tree.consistency_proof(old, n)
        for bad in (cproof[:-1], [*cproof, cproof[-1]]):
            with pytest.raises(VerificationError, match="proof"):
                verify_consistency(old, n, tree.root(old), tree.root(n), bad)


def test_error_messages_say_what_was_expected_and_found(tree: MerkleTree) -> None:
    proof = tree.inclusion_proof(5, 8)
    wrong_root = node_hash(b"x", b"y")
    with pytest.raises(VerificationError) as info:
        verify_inclusion(LEAF_HASHES[5], 5, 8, proof, wrong_root)
    message = str(info.value)
    assert "inclusion proof for index 5 in tree of size 8" in message
    assert f"computed root {tree.root(8).hex()[:16]}" in message
    assert f"expected {wrong_root.hex()[:16]}" in message

    with pytest.raises(VerificationError, match="expected 3 proof hashes, got 2"):
        verify_inclusion(LEAF_HASHES[5], 5, 8, proof[:2], tree.root(8))
    with pytest.raises(VerificationError, match="proof hash 1 is 31 bytes, expected 32"):
        verify_inclusion(LEAF_HASHES[5], 5, 8, [proof[0], proof[1][:31], proof[2]], tree.root(8))
    with pytest.raises(VerificationError, match=r"consistency proof from size 3 to 8: computed old root"):
        verify_consistency(3, 8, tree.root(4), tree.root(8), tree.consistency_proof(3, 8))


def test_size_zero_and_range_errors(tree: MerkleTree) -> None:
    assert tree.consistency_proof(0, 10) == []
    assert tree.consistency_proof(10, 10) == []
    verify_consistency(0, 10, EMPTY_ROOT, tree.root(10), [])
    with pytest.raises(ValueError):
        tree.inclusion_proof(10, 10)
    with pytest.raises(ValueError):
        tree.root(MAX_SAMPLED + 1)
    with pytest.raises(ValueError):
        tree.consistency_proof(11, 10)
    with pytest.raises(ValueError):
        MerkleTree().append(b"short")


def test_large_tree_proofs_verify() -> None:
    # Past 2^16, proofs span 17 levels; a few samples guard the level bookkeeping.
    n = (1 << 16) + 3
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    big = MerkleTree.from_leaf_hashes(hashes)
    assert big.root() == root_from_leaf_hashes(hashes)
    rnd = random.Random(3)
    for _ in range(200):
        size = rnd.randint(1, n)
        index = rnd.randrange(size)
        old = rnd.randint(0, size)
        verify_inclusion(hashes[index], index, size, big.inclusion_proof(index, size), big.root(size))
        verify_consistency(old, size, big.root(old), big.root(size), big.consistency_proof(old, size))
