"""The Merkle code against published RFC 6962 test vectors and a naive reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.log.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The leaves and roots used by RFC 6962 implementations' test suites.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
INCLUSION = [  # (leaf number, counted from 1, tree size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
HASHES = [leaf_hash(leaf) for leaf in LEAVES]


# -- a naive reference: the RFC's recursive definitions, written out directly --------------
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = _k(len(d))
    return ref_path(m, d[:k]) + [ref_mth(d[k:])] if m < k else ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def test_the_published_roots() -> None:
    assert root([]) == EMPTY_ROOT == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    for size in range(1, 9):
        assert root(HASHES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_the_published_inclusion_proofs(leaf: int, size: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert inclusion_proof(leaf - 1, HASHES[:size]) == expected
    verify_inclusion(leaf - 1, size, HASHES[leaf - 1], expected, ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_the_published_consistency_proofs(size1: int, size2: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert consistency_proof(size1, HASHES[:size2]) == expected
    verify_consistency(size1, size2, expected, ROOTS[size1 - 1], ROOTS[size2 - 1])


def _corruptions(proof: list[bytes]) -> list[list[bytes]]:
    out = [proof + [b"\x00" * 32], [b"\x00" * 32] + proof, proof[:-1]]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        out.append(flipped)
    return [p for p in out if p != proof]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_corrupted_inclusion_proofs_fail(leaf: int, size: int, proof: list[str]) -> None:
    good = [bytes.fromhex(h) for h in proof]
    for bad in _corruptions(good):
        with pytest.raises(ProofError):
            verify_inclusion(leaf - 1, size, HASHES[leaf - 1], bad, ROOTS[size - 1])
    for index, tree in ((leaf, size), (leaf - 2, size), (leaf - 1, size * 2), (leaf - 1, size // 2)):
        if 0 <= index < tree:
            with pytest.raises(ProofError):
                verify_inclusion(index, tree, HASHES[leaf - 1], good, ROOTS[size - 1])
    with pytest.raises(ProofError):
        verify_inclusion(leaf - 1, size, leaf_hash(b"WrongLeaf"), good, ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_corrupted_consistency_proofs_fail(size1: int, size2: int, proof: list[str]) -> None:
    good = [bytes.fromhex(h) for h in proof]
    r1, r2 = ROOTS[size1 - 1], ROOTS[size2 - 1]
    for bad in [*_corruptions(good), []]:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, r1, r2)
    for s1, s2, a, b in ((size1 - 1, size2, r1, r2), (size1 + 1, size2, r1, r2), (size1, size2 * 2, r1, r2),
                         (size1, size2, r2, r1), (size2, size1, r1, r2)):
        if s1 > 0 and s1 != s2:
            with pytest.raises(ProofError):
                verify_consistency(s1, s2, good, a, b)


def test_edge_cases() -> None:
    verify_consistency(0, 5, [], EMPTY_ROOT, ROOTS[4])
    verify_consistency(3, 3, [], ROOTS[2], ROOTS[2])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, [], ROOTS[2], ROOTS[3])
    with pytest.raises(ProofError):
        verify_consistency(4, 3, [ROOTS[0]], ROOTS[3], ROOTS[2])
    verify_inclusion(0, 1, HASHES[0], [], HASHES[0])
    with pytest.raises(ProofError):
        verify_inclusion(0, 1, HASHES[0], [], b"")
    with pytest.raises(ProofError):
        verify_inclusion(1, 1, HASHES[0], [], HASHES[0])
    with pytest.raises(ValueError):
        inclusion_proof(3, HASHES[:3])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(min_value=1, max_value=300))
def test_random_trees_agree_with_the_reference(data: st.DataObject, n: int) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    head = root(leaves)
    assert head == ref_mth(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    path = inclusion_proof(index, leaves)
    assert path == ref_path(index, leaves)
    verify_inclusion(index, n, leaves[index], path, head)
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = consistency_proof(m, leaves)
    assert proof == (ref_subproof(m, leaves, True) if m < n else [])
    verify_consistency(m, n, proof, root(leaves[:m]), head)
