"""The log as served: a signed checkpoint whose root the tiles rebuild, proofs that verify."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

import pytest

from moorage.log.entry import decode_entry
from moorage.log.merkle import leaf_hash, root, verify_consistency, verify_inclusion
from moorage.log.note import Checkpoint, Verifier
from moorage.log.tiles import TILE_WIDTH, decode_bundle, tile_path
from tests.support import clients
from tests.support.dists import make_wheel
from tests.support.server import Server

pytestmark = pytest.mark.slow


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def _checkpoint(server: Server) -> Checkpoint:
    verifier = Verifier.parse(server.cli("log", "key").stdout.strip())
    assert _get(server.url + "log/key").decode().strip() == verifier.vkey()
    return Checkpoint.parse(verifier.verify(_get(server.url + "log/checkpoint").decode()))


def _entries(server: Server, size: int) -> list[bytes]:
    out: list[bytes] = []
    for n in range(0, (size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        out += decode_bundle(_get(server.url + "log/" + tile_path("entries", n, width)))
    return out


def test_the_checkpoint_tiles_and_proofs_agree(server: Server, unique: str, dists: Path) -> None:
    before = _checkpoint(server)
    wheel = make_wheel(dists, f"logged-{unique}", "1.0")
    assert clients.twine_upload(server.legacy, server.admin_token, wheel.path).returncode == 0
    after = _checkpoint(server)
    assert after.size > before.size and after.origin == before.origin

    entries = _entries(server, after.size)
    leaves = [leaf_hash(e) for e in entries]
    assert root(leaves) == after.root
    level0 = b"".join(_get(server.url + "log/" + tile_path(0, n, min(TILE_WIDTH, after.size - n * TILE_WIDTH)))
                      for n in range(0, (after.size + TILE_WIDTH - 1) // TILE_WIDTH))
    assert level0 == b"".join(leaves)

    consistency = json.loads(_get(server.url + f"log/proof/consistency?from={before.size}&to={after.size}"))
    verify_consistency(before.size, after.size, [base64.b64decode(p) for p in consistency["proof"]],
                       before.root, after.root)

    page = json.loads(urllib.request.urlopen(urllib.request.Request(
        server.simple + f"logged-{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})).read())
    index = page["files"][0]["_log-index"]
    entry = decode_entry(entries[index])
    assert (entry["action"], entry["filename"], entry["sha256"], entry["size"], entry["upload-time"]) == (
        "file-added", wheel.filename, wheel.sha256, wheel.path.stat().st_size, page["files"][0]["upload-time"])
    inclusion = json.loads(_get(server.url + f"log/proof/inclusion?index={index}&size={after.size}"))
    verify_inclusion(index, after.size, leaves[index], [base64.b64decode(p) for p in inclusion["proof"]], after.root)
    api = json.loads(_get(server.url + f"pypi/logged-{unique}/json"))
    assert api["urls"][0]["log_index"] == index


def test_bad_log_requests_are_4xx(server: Server) -> None:
    for path in ("log/tile/0/0001", "log/tile/99/000", "log/tile/0/x999/999", "log/proof/inclusion?index=a",
                 "log/proof/inclusion?index=5&size=1", "log/proof/consistency?from=9&to=1"):
        try:
            urllib.request.urlopen(server.url + path, timeout=10)
            raise AssertionError(f"{path} answered 2xx")
        except urllib.error.HTTPError as exc:
            assert 400 <= exc.code < 500, (path, exc.code)


def test_a_checkpoint_is_signed_within_a_second_of_a_commit(server: Server, unique: str, dists: Path) -> None:
    import time

    from tests.support.db import TestDB

    wheel = make_wheel(dists, f"signed-{unique}", "1.0")
    assert clients.twine_upload(server.legacy, server.admin_token, wheel.path).returncode == 0
    deadline = time.monotonic() + 5
    while True:  # nobody asks for /log/checkpoint here: the server signs on its own
        with TestDB(server.data_dir, readonly=True) as db:
            size = db.execute("SELECT size FROM log_state WHERE id = 1").fetchone()[0]
            signed = db.execute("SELECT max(size) FROM checkpoints").fetchone()[0]
        if signed is not None and signed >= size:
            break
        assert time.monotonic() < deadline, f"no checkpoint for size {size} (newest signed: {signed})"
        time.sleep(0.1)
