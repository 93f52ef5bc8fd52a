"""Signed notes, tile paths and bundles, the compact range, log entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from moorage.log.compact import CompactRange
from moorage.log.entry import decode_entry, encode_entry
from moorage.log.keys import decode_signer, encode_signer, load_or_create
from moorage.log.merkle import leaf_hash, root
from moorage.log.note import Checkpoint, NoteError, Signer, Verifier
from moorage.log.tiles import decode_bundle, encode_bundle, encode_index, parse_tile_path, tile_exists, tile_path


def test_a_checkpoint_is_signed_and_verified() -> None:
    signer = Signer("example.com/log", Ed25519PrivateKey.generate())
    text = Checkpoint("example.com/log", 5, b"\x01" * 32).text()
    note = signer.sign(text)
    assert note.startswith(text + "\n\u2014 example.com/log ")
    verifier = Verifier.parse(signer.verifier.vkey())
    assert verifier.verify(note) == text
    assert Checkpoint.parse(text) == Checkpoint("example.com/log", 5, b"\x01" * 32)
    other = Signer("example.com/log", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        other.verifier.verify(note)  # signed by another key
    tampered = note.replace("\n5\n", "\n6\n")
    with pytest.raises(NoteError):
        verifier.verify(tampered)
    for bad in ("x", "a+b", "name+00000000+AAAA", signer.verifier.vkey().replace("+", "+0", 1)):
        with pytest.raises(NoteError):
            Verifier.parse(bad)


def test_signing_keys_round_trip_and_are_created_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = load_or_create(tmp_path / "key")
    again = load_or_create(tmp_path / "key")
    assert first.verifier == again.verifier and first.name.startswith("moorage/")
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    assert decode_signer(encode_signer(first)).verifier == first.verifier
    named = load_or_create(tmp_path / "other", "index.example/log")
    assert named.name == "index.example/log"


def test_tile_paths() -> None:
    assert encode_index(0) == "000" and encode_index(256) == "256"
    assert encode_index(1234067) == "x001/x234/067"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path("entries", 3, 17) == "tile/entries/003.p/17"
    assert parse_tile_path("0/x001/x234/067") == ("0", 1234067, 256)
    assert parse_tile_path("entries/003.p/17") == ("entries", 3, 17)
    for bad in ("0/1", "0/0001", "0/000.p/256", "0/000.p/0", "64/000", "0/x000/001", "x/000", "0/001/002"):
        with pytest.raises(ValueError):
            parse_tile_path(bad)
    assert tile_exists(0, 0, 256, 300) and tile_exists(0, 1, 44, 300) and not tile_exists(0, 1, 43, 300)
    assert not tile_exists(1, 0, 1, 255) and tile_exists(1, 0, 1, 256)


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_bundles_round_trip(entries: list[bytes]) -> None:
    assert decode_bundle(encode_bundle(entries)) == entries


@given(st.integers(min_value=0, max_value=600))
def test_the_compact_range_agrees_with_the_tree(n: int) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    assert compact.size == n and compact.root() == root(leaves)
    assert CompactRange.from_json(compact.to_json()).root() == compact.root()


def test_entries_are_canonical() -> None:
    when = datetime(2026, 11, 2, 9, 14, tzinfo=UTC)
    payload = {"sha256": "ab" * 32, "filename": "x-1.0.tar.gz", "size": 10, "upload-time": "t", "version": "1.0"}
    one = encode_entry(4, 9, when, "ann", "file-added", "file:x-1.0.tar.gz", "x", payload)
    two = encode_entry(4, 9, when, "ann", "file-added", "file:x-1.0.tar.gz", "x", dict(reversed(payload.items())))
    assert one == two and b" " not in one
    doc = decode_entry(one)
    assert (doc["index"], doc["filename"], doc["sha256"], doc["size"], doc["time"]) == (
        4, "x-1.0.tar.gz", "ab" * 32, 10, "2026-11-02T09:14:00.000000Z")


def test_an_origin_with_a_space_or_plus_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for bad in ("my log", "a+b", ""):
        with pytest.raises(NoteError):
            load_or_create(tmp_path / f"k{len(bad)}", bad or " ")
