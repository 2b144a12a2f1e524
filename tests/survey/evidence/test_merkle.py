"""RFC 9162 Merkle tree hashes and proofs, against the RFC's worked example and a direct
transcription of its recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from survey.evidence.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)


def _mth(d: list[bytes]) -> bytes:
    """MTH of RFC 9162 2.1.1, literally (on entries, not leaf hashes)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH of RFC 9162 2.1.3.1, literally."""
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF of RFC 9162 2.1.4.1, literally."""
    if m == len(d):
        return [] if b else [_mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _entries(n: int, tag: bytes = b"") -> list[bytes]:
    return [tag + f"entry {i}".encode() for i in range(n)]


def test_hashes_are_rfc9162_leaf_and_node() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MerkleTree([]).root() == EMPTY_ROOT == root_from_leaves([])


def test_the_rfc_worked_example_seven_leaves() -> None:
    """RFC 9162 2.1.5: the tree of d0..d6 with nodes a..l, its audit paths and the
    consistency proofs of the trees hash0 (3 leaves), hash1 (4) and hash2 (6)."""
    d = [f"d{i}".encode() for i in range(7)]
    a, b, c, dd, e, f, j = (leaf_hash(x) for x in d)
    g, h, i = node_hash(a, b), node_hash(c, dd), node_hash(e, f)
    k, l_ = node_hash(g, h), node_hash(i, j)
    tree = MerkleTree([leaf_hash(x) for x in d])
    assert tree.root() == node_hash(k, l_) == _mth(d)
    assert tree.root(3) == node_hash(g, c)  # hash0
    assert tree.root(4) == k  # hash1
    assert tree.root(6) == node_hash(k, i)  # hash2
    assert tree.inclusion_proof(0) == [b, h, l_]
    assert tree.inclusion_proof(3) == [c, g, l_]
    assert tree.inclusion_proof(4) == [f, j, k]
    assert tree.inclusion_proof(6) == [i, k]
    assert tree.consistency_proof(3) == [c, dd, g, l_]
    assert tree.consistency_proof(4) == [l_]
    assert tree.consistency_proof(6) == [i, j, k]
    for m in (3, 4, 6):
        assert verify_consistency(m, 7, tree.root(m), tree.root(), tree.consistency_proof(m))


def test_every_pair_of_sizes_up_to_64() -> None:
    """Roots, audit paths and consistency proofs equal the RFC's definitions for every tree
    size 1..64, every leaf and every earlier size; all verify; a fork's head never does."""
    data = _entries(64)
    fork = _entries(64, b"fork ")
    leaves = [leaf_hash(x) for x in data]
    fork_leaves = [leaf_hash(x) for x in fork]
    for n in range(1, 65):
        tree = MerkleTree(leaves[:n])
        assert tree.root() == _mth(data[:n])
        for idx in range(n):
            proof = tree.inclusion_proof(idx)
            assert proof == _path(idx, data[:n])
            assert verify_inclusion(idx, n, leaves[idx], proof, tree.root())
            assert not verify_inclusion(idx, n, leaf_hash(b"other"), proof, tree.root())
        for m in range(0, n + 1):
            proof = tree.consistency_proof(m)
            if 0 < m < n:
                assert proof == _subproof(m, data[:n], True)
            assert verify_consistency(m, n, tree.root(m), tree.root(), proof)
            if m > 0:
                # the same size m of a ledger that forked at its last entry
                forked = MerkleTree([*leaves[: m - 1], fork_leaves[m - 1]])
                assert not verify_consistency(m, n, forked.root(), tree.root(), proof), (m, n)


@given(st.integers(2, 200), st.data())
def test_a_tampered_proof_never_verifies(n: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in _entries(n)]
    tree = MerkleTree(leaves)
    m = data.draw(st.integers(1, n - 1))
    proof = tree.consistency_proof(m)
    which = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    bad = list(proof)
    bad[which] = bytes([bad[which][0] ^ (1 << (bit % 8))]) + bad[which][1:]
    assert not verify_consistency(m, n, tree.root(m), tree.root(), bad)
    assert not verify_consistency(m, n, tree.root(m), tree.root(), proof[:-1])
    idx = data.draw(st.integers(0, n - 1))
    path = tree.inclusion_proof(idx)
    assert verify_inclusion(idx, n, leaves[idx], path, tree.root())
    assert path  # a tree of two or more leaves: every leaf has a sibling
    assert not verify_inclusion(idx, n, leaves[idx], path[:-1], tree.root())
    assert not verify_inclusion((idx + 1) % n, n, leaves[idx], path, tree.root())


def test_compact_range_root_equals_the_tree_root_at_every_size() -> None:
    leaves = [leaf_hash(x) for x in _entries(300)]
    c = CompactRange()
    for n, leaf in enumerate(leaves, start=1):
        c.append(leaf)
        assert len(c.hashes) == bin(n).count("1")
        if n in (1, 2, 3, 7, 8, 63, 64, 65, 255, 300):
            assert c.root() == MerkleTree(leaves[:n]).root()
    copy = CompactRange(c.size, c.hashes)
    assert copy.root() == c.root()
    with pytest.raises(ValueError, match="hashes"):
        CompactRange(5, c.hashes[:1])
