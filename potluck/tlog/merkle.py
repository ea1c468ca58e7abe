"""RFC 6962 / RFC 9162 §2.1 Merkle tree over SHA-256: hashing, proofs and their verification.

Leaves are hashed as SHA-256(0x00 ‖ entry) and interior nodes as SHA-256(0x01 ‖ left ‖ right), so a
leaf can never be passed off as a node. The tree over n leaves splits at the largest power of two
below n. The verifiers follow transparency-dev/merkle's `proof` package: they return None or
raise `VerificationError` saying what was expected and what was computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from potluck.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """Hash one log entry as a leaf: SHA-256(0x00 ‖ entry)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _short(h: bytes) -> str:
    """A hash as people read it in an error message: enough hex to tell two apart."""
    if not h:
        return "<empty>"
    text = h.hex()
    return text[:16] + "…" if len(text) > 16 else text


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162's split: the largest power of two strictly smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash MTH(D[n]) of a list of leaf hashes (RFC 9162 §2.1.1)."""

    def mth(start: int, end: int) -> bytes:
        n = end - start
        if n == 1:
            return hashes[start]
        k = _largest_power_of_two_below(n)
        return node_hash(mth(start, start + k), mth(start + k, end))

    if not hashes:
        return EMPTY_ROOT
    return mth(0, len(hashes))


class MerkleTree:
    """An append-only Merkle tree that answers roots and proofs for any size up to its own.

    Every full, aligned subtree is kept: level k holds the hashes of leaves
    [i·2^k, (i+1)·2^k) one after another in a bytearray. That costs about 64 bytes per leaf
    (64 MB for a million) and makes any subtree hash an O(log n) walk, so roots and proofs
    for old sizes need no rehashing of leaves. Not safe for concurrent appends: the ledger
    has one writer.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """Build a tree from leaf hashes in log order."""
        tree = cls()
        tree.extend(hashes)
        return tree

    def __len__(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self)

    def append(self, leaf: bytes) -> int:
        """Add one leaf hash; returns its index."""
        self._check_hash(leaf)
        index = len(self)
        self._levels[0] += leaf
        # The new leaf closes one full subtree per trailing one-bit of its index.
        level, pos, h = 0, index, leaf
        while pos & 1:
            left = self._node(level, pos - 1)
            h = node_hash(left, h)
            level, pos = level + 1, pos >> 1
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += h
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add many leaf hashes at once; faster than repeated `append`, level by level."""
        buf = bytearray()
        for leaf in leaves:
            self._check_hash(leaf)
            buf += leaf
        if not buf:
            return
        self._levels[0] += buf
        sha256 = hashlib.sha256
        level = 0
        while True:
            below = self._levels[level]
            num_pairs = len(below) // (2 * HASH_SIZE)
            if num_pairs == 0:
                break
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            above = self._levels[level + 1]
            have = len(above) // HASH_SIZE
            if have == num_pairs:
                break
            view = memoryview(below)
            step = 2 * HASH_SIZE
            new = bytearray()
            for off in range(have * step, num_pairs * step, step):
                new += sha256(_NODE_PREFIX + view[off : off + step]).digest()
            view.release()
            above += new
            level += 1

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf index {index} out of range for tree of size {len(self)}")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree over the first `size` leaves (default: all of them)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) of RFC 9162 §2.1.3.1, ordered from the leaf's sibling upwards."""
        return self.inclusion_proofs([index], size)[0]

    def inclusion_proofs(self, indices: Iterable[int], size: int | None = None) -> list[list[bytes]]:
        """`inclusion_proof` for many leaves at one size; the partial subtrees they share are hashed once."""
        size = self._check_size(size)
        partial: dict[tuple[int, int], bytes] = {}  # the right edge's subtrees, common to recent leaves

        def subtree(start: int, end: int) -> bytes:
            if (start, end) not in partial:
                partial[start, end] = self._subtree(start, end)
            return partial[start, end]

        proofs = []
        for index in indices:
            if not 0 <= index < size:
                raise ValueError(f"leaf index {index} out of range for tree of size {size}")
            proof: list[bytes] = []
            start, end = 0, size
            while end - start > 1:
                k = _largest_power_of_two_below(end - start)
                if index < start + k:
                    proof.append(subtree(start + k, end))
                    end = start + k
                else:
                    proof.append(self._subtree(start, start + k))
                    start += k
            proof.reverse()
            proofs.append(proof)
        return proofs

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1; empty when old_size is 0 or equal."""
        new_size = self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"old size {old_size} must be between 0 and new size {new_size}")
        if old_size in (0, new_size):
            return []
        # SUBPROOF(m, D[start:end], b) unrolled; `complete` is RFC's b.
        proof: list[bytes] = []
        m, start, end, complete = old_size, 0, new_size, True
        while m != end - start:
            k = _largest_power_of_two_below(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                m -= k
                start += k
                complete = False
        if not complete:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof

    def _node(self, level: int, index: int) -> bytes:
        off = index * HASH_SIZE
        return bytes(self._levels[level][off : off + HASH_SIZE])

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) where `start` is aligned as RFC 9162's recursion always leaves it."""
        n = end - start
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self._node(level, start >> level)
        # Not a full subtree: split off full left parts and fold the right spine back up.
        lefts: list[bytes] = []
        while n & (n - 1):
            k = _largest_power_of_two_below(n)
            lefts.append(self._subtree(start, start + k))
            start += k
            n -= k
        h = self._subtree(start, end)
        for left in reversed(lefts):
            h = node_hash(left, h)
        return h

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return len(self)
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} out of range: the tree has {len(self)} leaves")
        return size

    @staticmethod
    def _check_hash(h: bytes) -> None:
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")


# --- verification (transparency-dev/merkle proof/verify.go, RFC 9162 §2.1.3.2 and §2.1.4.2) ---


def _decompose_inclusion_proof(index: int, size: int) -> tuple[int, int]:
    """Split a proof's length into its inner part (below the split point) and its right border."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    # Only the nodes where the path turns right belong to the old, smaller tree.
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _check_proof_hashes(what: str, proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise VerificationError(f"{what}: proof hash {i} is {len(h)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from leaf hash `leaf` at `index` in a tree of `size`.

    Raises `VerificationError` when the index is out of range or the proof has the wrong shape.
    """
    what = f"inclusion proof for index {index} in tree of size {size}"
    if index < 0 or index >= size:
        raise VerificationError(f"{what}: index out of range (expected 0 ≤ index < {size})")
    if len(leaf) != HASH_SIZE:
        raise VerificationError(f"{what}: leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    inner, border = _decompose_inclusion_proof(index, size)
    if len(proof) != inner + border:
        raise VerificationError(f"{what}: expected {inner + border} proof hashes, got {len(proof)}")
    _check_proof_hashes(what, proof)
    h = _chain_inner(leaf, proof[:inner], index)
    return _chain_border_right(h, proof[inner:])


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that leaf hash `leaf` sits at `index` in the tree of `size` with root `root`."""
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != root:
        raise VerificationError(
            f"inclusion proof for index {index} in tree of size {size}: "
            f"computed root {_short(computed)}, expected {_short(root)}"
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of `new_size` with `new_root` extends the one of `old_size` with `old_root`."""
    what = f"consistency proof from size {old_size} to {new_size}"
    if old_size < 0 or new_size < old_size:
        raise VerificationError(f"{what}: new size must be at least old size (and both ≥ 0)")
    if old_size == new_size:
        if proof:
            raise VerificationError(f"{what}: expected an empty proof for equal sizes, got {len(proof)} hashes")
        if old_root != new_root:
            raise VerificationError(
                f"{what}: equal sizes but roots differ: old {_short(old_root)}, new {_short(new_root)}"
            )
        return
    if old_size == 0:
        # Every tree extends the empty one (RFC 9162 §2.1.4.2).
        if proof:
            raise VerificationError(f"{what}: expected an empty proof from size 0, got {len(proof)} hashes")
        return
    if not proof:
        raise VerificationError(f"{what}: expected a non-empty proof, got none")
    _check_proof_hashes(what, proof)

    inner, border = _decompose_inclusion_proof(old_size - 1, new_size)
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    inner -= shift
    # The proof starts with the old tree's rightmost full subtree, unless that subtree is
    # the whole old tree, whose root the verifier already holds.
    if old_size == 1 << shift:
        seed, start = old_root, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise VerificationError(f"{what}: expected {start + inner + border} proof hashes, got {len(proof)}")
    rest = proof[start:]
    mask = (old_size - 1) >> shift

    computed_old = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if computed_old != old_root:
        raise VerificationError(f"{what}: computed old root {_short(computed_old)}, expected {_short(old_root)}")
    computed_new = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if computed_new != new_root:
        raise VerificationError(f"{what}: computed new root {_short(computed_new)}, expected {_short(new_root)}")
