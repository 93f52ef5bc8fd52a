"""`moorage verify` passes after a real history and names each tampering done behind the
server's back: replaced bytes, a file row removed without an event, a rewritten log entry,
a fork, a checkpoint signed by another key."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.server import Server, on_postgresql, start_server

pytestmark = pytest.mark.slow


def verify(server: Server, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = subprocess.run([sys.executable, "-m", "moorage", "verify", "--index", server.url, "--json", *args],
                          capture_output=True, text=True, timeout=300, env=clients.clean_env())
    return proc.returncode, json.loads(proc.stdout)


def kinds(report: dict) -> set[str]:  # type: ignore[type-arg]
    return {f["finding"] for f in report["findings"]}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Dist], str]]:
    """A scripted history on a real server, then the server stopped: (data dir, dists, key)."""
    root = tmp_path_factory.mktemp("verify")
    dists = root / "dist"
    srv = start_server(root / "data")
    files = {"a1": make_wheel(dists, "alpha", "1.0"), "a1s": make_sdist(dists, "alpha", "1.0"),
             "a2": make_wheel(dists, "alpha", "2.0"), "b1": make_wheel(dists, "beta", "1.0"),
             "b2": make_wheel(dists, "beta", "2.0b1")}
    try:
        result = clients.twine_upload(srv.legacy, srv.admin_token, *(d.path for d in files.values()))
        assert result.returncode == 0, result.stdout + result.stderr
        srv.cli("yank", "alpha", "1.0", "--reason", "old")
        srv.cli("user", "add", "owner2")
        srv.cli("role", "set", "beta", "owner2", "--role", "owner")
        srv.cli("delete", "beta", "2.0b1", "--as", "owner2")  # inside the window (a pre-release)
        srv.cli("delete", "alpha", "1.0", files["a1s"].filename, "--reason", "admin removal")
        srv.cli("admin", "restore", "alpha", "1.0", files["a1s"].filename, "--reason", "undo")
        srv.cli("delete", "alpha", "2.0", "--reason", "admin removal of a release")
        srv.cli("quarantine", "beta", "--reason", "check")
        srv.cli("unquarantine", "beta", "--reason", "clear")
        key = srv.cli("log", "key").stdout.strip()
        code, report = verify(srv, "--key", key, "--files")
        assert code == 0 and report["ok"], report
        assert report["checked_files"] == 3 and report["downloaded_files"] == 3
    finally:
        srv.stop()
    yield root / "data", files, key


@pytest.fixture
def copy(history: tuple[Path, dict[str, Dist], str], tmp_path: Path) -> Path:
    """A copy of the whole index to tamper with: its database is the SQLite file it carries."""
    if on_postgresql():
        pytest.skip("about the embedded SQLite default: a copied data directory carries its database")
    data = tmp_path / "data"
    shutil.copytree(history[0], data)
    return data


def test_a_clean_copy_verifies(copy: Path, history: tuple[Path, dict[str, Dist], str], tmp_path: Path) -> None:
    srv = start_server(copy)
    try:
        state = tmp_path / "state.json"
        code, report = verify(srv, "--key", history[2], "--state", str(state))
        assert code == 0, report
        code, report = verify(srv, "--state", str(state))  # the key and checkpoint come from the state now
        assert code == 0, report
    finally:
        srv.stop()


def test_replaced_bytes_are_found_with_files(copy: Path, history: tuple[Path, dict[str, Dist], str]) -> None:
    wheel = history[1]["a1"]
    blob = copy / "blobs" / wheel.sha256[:2] / wheel.sha256[2:4] / wheel.sha256
    blob.write_bytes(b"\0" * blob.stat().st_size)
    srv = start_server(copy)
    try:
        assert verify(srv, "--key", history[2])[0] == 0  # without --files the bytes are not read
        code, report = verify(srv, "--key", history[2], "--files")
        assert code == 1 and kinds(report) == {"changed-bytes"}
        assert wheel.filename in report["findings"][0]["detail"]
    finally:
        srv.stop()


@pytest.mark.embedded
def test_a_file_row_deleted_without_an_event(copy: Path, history: tuple[Path, dict[str, Dist], str]) -> None:
    wheel = history[1]["b1"]
    with sqlite3.connect(copy / "moorage.db") as db:
        db.execute("DELETE FROM files WHERE filename = ?", (wheel.filename,))
    srv = start_server(copy)
    try:
        code, report = verify(srv, "--key", history[2])
        assert code == 1 and kinds(report) == {"vanished-file"} and wheel.filename in report["findings"][0]["detail"]
    finally:
        srv.stop()


@pytest.mark.embedded
def test_a_logged_entry_changed_in_storage(copy: Path, history: tuple[Path, dict[str, Dist], str]) -> None:
    with sqlite3.connect(copy / "moorage.db") as db:
        entry = db.execute("SELECT entry FROM log_entries WHERE idx = 3").fetchone()[0]
        db.execute("UPDATE log_entries SET entry = ? WHERE idx = 3", (entry.replace(b'"v":1', b'"v":1 '),))
    srv = start_server(copy)
    try:
        code, report = verify(srv, "--key", history[2])
        assert code == 1 and kinds(report) == {"tree"}
    finally:
        srv.stop()


def test_a_fork_is_found(copy: Path, history: tuple[Path, dict[str, Dist], str], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(copy, other)
    state = tmp_path / "state.json"
    one, two = start_server(copy), start_server(other)
    try:
        for srv, name in ((one, "gamma"), (two, "delta")):
            token = srv.cli("token", "create", "admin").stdout.strip()  # a restarted server prints none
            result = clients.twine_upload(srv.legacy, token, make_wheel(tmp_path / name, name, "1.0").path)
            assert result.returncode == 0, result.stdout + result.stderr
        assert verify(one, "--key", history[2], "--state", str(state))[0] == 0
        code, report = verify(two, "--state", str(state))
        assert code == 1 and kinds(report) == {"fork"}
    finally:
        one.stop()
        two.stop()


def test_a_checkpoint_signed_by_another_key(copy: Path, history: tuple[Path, dict[str, Dist], str],
                                            tmp_path: Path) -> None:
    (copy / "log-signing-key").unlink()  # the server makes itself a new key on start
    srv = start_server(copy)
    try:
        token = srv.cli("token", "create", "admin").stdout.strip()
        result = clients.twine_upload(srv.legacy, token, make_wheel(tmp_path, "epsilon", "1.0").path)
        assert result.returncode == 0, result.stdout + result.stderr
        code, report = verify(srv, "--key", history[2])
        assert code == 1 and kinds(report) == {"checkpoint"}
    finally:
        srv.stop()
