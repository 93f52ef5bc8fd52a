"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.

Pure functions over leaf hashes: no I/O. ``root`` builds the head with a stack of perfect
subtrees (one pass, O(log n) memory); the proofs follow the RFC's recursive definitions
with subtree heads computed the same way; the verifiers are RFC 9162's algorithms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify; the message says why."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree head of the leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    # stack of (height, hash) of perfect subtrees, left to right
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        height, value = 0, leaf
        while stack and stack[-1][0] == height:
            _, left = stack.pop()
            value = node_hash(left, value)
            height += 1
        stack.append((height, value))
    value = stack[-1][1]
    for _, left in reversed(stack[:-1]):  # fold the ragged right edge
        value = node_hash(left, value)
    return value


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 section 2.1.1."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"index {index} is outside a tree of size {len(leaves)}")
    proof: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            proof.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo:lo + k]))
            lo = lo + k
    proof.reverse()  # the RFC lists the path from the leaf up
    return proof


def consistency_proof(size1: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(size1, D[n]) of RFC 6962 section 2.1.2."""
    n = len(leaves)
    if not 0 <= size1 <= n:
        raise ValueError(f"size {size1} is outside a tree of size {n}")
    if size1 == 0 or size1 == n:
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo:lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(root(leaves[lo:hi]))
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _walk(fn: int, sn: int, proof: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """The walk up the tree both RFC 9162 verifiers make, from node ``fn`` of a level whose last
    node is ``sn``: each proof hash (its size checked), and whether it is the left sibling (it
    hashes in front). Raises ProofError when the proof is longer or shorter than the tree is high."""
    for p in proof:
        _check_hash(p, "a proof hash")
        if sn == 0:
            raise ProofError("the proof is longer than the tree is high")
        on_left = bool(fn & 1) or fn == sn
        yield p, on_left
        if on_left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is high")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> None:
    """RFC 9162 section 2.1.3.2; raises ProofError unless ``leaf`` is at ``index``."""
    _check_hash(leaf, "the leaf hash")
    _check_hash(expected_root, "the root")
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    value = leaf
    for p, on_left in _walk(index, size - 1, proof):
        value = node_hash(p, value) if on_left else node_hash(value, p)
    if value != expected_root:
        raise ProofError("the proof leads to another root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """RFC 9162 section 2.1.4.2; raises ProofError unless the tree of ``size1`` with head
    ``root1`` is a prefix of the tree of ``size2`` with head ``root2``."""
    if size1 > size2:
        raise ProofError(f"a tree of size {size2} cannot follow one of size {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("trees of the same size need an empty proof")
        if root1 != root2:
            raise ProofError("two trees of the same size have different roots")
        return
    if size1 == 0:
        if proof:
            raise ProofError("the empty tree needs an empty proof")
        return
    _check_hash(root1, "the first root")
    _check_hash(root2, "the second root")
    if not proof:
        raise ProofError("the proof is empty")
    for p in proof:
        _check_hash(p, "a proof hash")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c, on_left in _walk(fn, sn, path[1:]):
        if on_left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    if fr != root1:
        raise ProofError("the proof does not lead to the first root")
    if sr != root2:
        raise ProofError("the proof does not lead to the second root")
