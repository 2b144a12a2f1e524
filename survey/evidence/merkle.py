"""Merkle tree hashes and proofs of RFC 9162 (Certificate Transparency v2), section 2.1.

The ledger's entries are the leaves ``d(0) .. d(n-1)`` (each entry's bytes, its JSON line
without the newline). With SHA-256:

* leaf hash ``MTH({d(0)}) = SHA-256(0x00 || d(0))``, the hash of an empty tree
  ``SHA-256()``;
* for ``n > 1``, with ``k`` the largest power of two smaller than ``n``:
  ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

Functions here take *leaf hashes* (32-byte digests), so a tree over a ledger of any size is a
list of 32-byte values. :class:`CompactRange` keeps only the roots of the perfect subtrees of
the binary decomposition of ``n`` (at most ``log2 n + 1`` hashes): it gives the root of a
growing tree in constant memory, which is how ``verify`` checks every signed tree head of a
ledger in one streaming pass. :class:`MerkleTree` keeps the leaves and the perfect subtrees'
hashes to answer many proofs quickly.

Proofs follow RFC 9162: the inclusion proof ``PATH(m, D[n])`` (2.1.3.1) and its verification
(2.1.3.2), the consistency proof ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`` (2.1.4.1) and
its verification (2.1.4.2). The tests check them against the worked example of the RFC
(seven leaves; consistency proofs ``[c, d, g, l]``, ``[l]``, ``[i, j, k]``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of no bytes."""


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``: the hash of one leaf (32 bytes)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node (32 bytes)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The root of a growing tree in ``O(log n)`` memory.

    Holds the roots of the perfect subtrees that make up ``D[0:n]`` (sizes the set bits of
    ``n``, largest first); appending a leaf merges equal-sized subtrees like a binary counter.

    Examples
    --------
    >>> c = CompactRange()
    >>> for d in (b"a", b"b", b"c"):
    ...     c.append(leaf_hash(d))
    >>> c.root() == root_from_leaves([leaf_hash(d) for d in (b"a", b"b", b"c")])
    True
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(
                f"a compact range of {size} leaves has {bin(size).count('1')} hashes, "
                f"not {len(hashes)}"
            )
        self.size = size
        self.hashes: list[bytes] = list(hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the right."""
        h = leaf
        n = self.size
        while n & 1:  # merge the equal-sized subtrees at the right end
            h = node_hash(self.hashes.pop(), h)
            n >>= 1
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        """``MTH(D[0:size])``."""
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self.size, self.hashes)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes (``EMPTY_ROOT`` for none)."""
    c = CompactRange()
    for leaf in leaves:
        c.append(leaf)
    return c.root()


class MerkleTree:
    """A tree over a fixed list of leaf hashes, for proofs.

    The hashes of every perfect subtree (aligned runs of ``2**j`` leaves) are computed once
    (``2n`` hashes); the hash of any range the RFC's recursion asks for then costs
    ``O(log n)``, a proof ``O(log^2 n)``.

    Parameters
    ----------
    leaves : sequence of bytes
        Leaf hashes ``MTH({d(i)})``, 32 bytes each.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def range_hash(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` for ``0 <= lo < hi <= size`` where ``lo`` is a multiple of the
        largest power of two not above ``hi - lo`` (the ranges of the RFC's recursion)."""
        n = hi - lo
        if n & (n - 1) == 0:  # a perfect subtree
            level = n.bit_length() - 1
            if lo % n == 0:
                return self.levels[level][lo >> level]
        k = _split(n)
        return node_hash(self.range_hash(lo, lo + k), self.range_hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """``MTH(D[0:size])`` (the whole tree by default)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not within 0..{self.size}")
        return EMPTY_ROOT if size == 0 else self.range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """``PATH(index, D[0:size])`` of RFC 9162 2.1.3.1: the audit path, lowest level first.

        Raises
        ------
        ValueError
            ``index`` is not a leaf of the tree of ``size`` leaves.
        """
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self.range_hash(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self.range_hash(lo, lo + k)]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """``PROOF(first, D[0:second])`` of RFC 9162 2.1.4.1 (empty when ``first`` is 0 or
        equals ``second``: there is nothing to prove).

        Raises
        ------
        ValueError
            Not ``0 <= first <= second <= size``.
        """
        second = self.size if second is None else second
        if not 0 <= first <= second <= self.size:
            raise ValueError(f"no consistency proof from {first} to {second} leaves")
        if first in (0, second):
            return []
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self.range_hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, whole), self.range_hash(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self.range_hash(lo, lo + k)]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof as RFC 9162 2.1.3.2 describes.

    Parameters
    ----------
    index, size : int
        The leaf's index and the tree's size.
    leaf : bytes
        The leaf hash ``SHA-256(0x00 || entry)``.
    proof : sequence of bytes
        The audit path, lowest level first.
    root : bytes
        The tree's root hash (from a signed tree head).

    Returns
    -------
    bool
    """
    if index >= size or index < 0:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree of ``second`` leaves extends the tree of ``first`` leaves, as RFC
    9162 2.1.4.2 describes.

    The RFC's algorithm covers ``0 < first < second``; here ``first == 0`` is always
    consistent (every tree extends the empty one) and ``first == second`` needs equal roots;
    both with an empty proof.

    Returns
    -------
    bool
    """
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the first tree is a subtree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
