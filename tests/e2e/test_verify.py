"""`moorage verify` passes after a real history and names each tampering done behind the
server's back: replaced bytes, a file row removed without an event, a rewritten log entry,
a fork, a checkpoint signed by another key."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.server import Server, free_port, on_postgresql, start_server

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
        db.execute("DROP TRIGGER log_entries_no_update")  # someone holding the database drops the guard first
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


# -- an index that cannot be checked, a file that cannot be downloaded (issue 14) ----------
def run_verify(index: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "moorage", "verify", "--index", index, *args],
                          capture_output=True, text=True, timeout=300, env=clients.clean_env())
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[Dist]]]:
    """A running index with three files of two projects."""
    root = tmp_path_factory.mktemp("verify-faults")
    srv = start_server(root / "data")
    wheels = [make_wheel(root / "dist", "kappa", "1.0"), make_wheel(root / "dist", "kappa", "1.1"),
              make_wheel(root / "dist", "Lambda_Pkg", "1.0")]
    try:
        result = clients.twine_upload(srv.legacy, srv.admin_token, *(w.path for w in wheels))
        assert result.returncode == 0, result.stdout + result.stderr
        yield srv, wheels
    finally:
        srv.stop()


def test_the_simple_url_the_first_start_prints_is_accepted(small_index: tuple[Server, list[Dist]]) -> None:
    srv, _ = small_index
    for index in (srv.simple, srv.simple.rstrip("/"), srv.url, srv.url.rstrip("/")):
        proc = run_verify(index, "--json")
        assert proc.returncode == 0, (index, proc.stdout, proc.stderr)
        report = json.loads(proc.stdout)
        assert report["ok"] and report["index"] == srv.url and report["checked_files"] == 3


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_an_index_that_cannot_be_checked_is_exit_2_with_one_line(small_index: tuple[Server, list[Dist]],
                                                                tmp_path: Path) -> None:
    srv, _ = small_index
    closed = f"http://127.0.0.1:{free_port()}/"
    line = _one_line(run_verify(closed))
    assert closed in line and "no connection" in line, line
    as_json = run_verify(closed, "--json", "--files", "--project", "kappa")
    assert "no connection" in _one_line(as_json)
    assert json.loads(as_json.stdout) == {"index": closed, "ok": False, "error": as_json.stderr.split(": ", 2)[2]
                                          .strip()}
    # Something that answers, but is no index's root: its /log/key is a 404.
    line = _one_line(run_verify(srv.url + "project/kappa/"))
    assert "404" in line and "log/key" in line, line
    line = _one_line(run_verify("ftp://127.0.0.1/"))
    assert "http" in line
    line = _one_line(run_verify(srv.url, "--key", "not-a-key"))
    assert "verifier key" in line
    state = tmp_path / "state.json"
    for damaged in ("{ not json", "[1]", '{"checkpoint": {"size": "x", "root": "00"}}'):
        state.write_text(damaged)
        line = _one_line(run_verify(srv.url, "--state", str(state)))
        assert str(state) in line


def _blob(srv: Server, dist: Dist) -> Path:
    return srv.data_dir / "blobs" / dist.sha256[:2] / dist.sha256[2:4] / dist.sha256


def test_a_file_whose_bytes_are_missing_is_a_finding_and_the_rest_is_checked(
        small_index: tuple[Server, list[Dist]], tmp_path: Path) -> None:
    srv, wheels = small_index
    blob = _blob(srv, wheels[0])
    aside = tmp_path / "aside"
    blob.rename(aside)
    try:
        proc = run_verify(srv.url, "--files", "--json")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        assert kinds(report) == {"unreachable-file"}, report
        (finding,) = report["findings"]
        assert wheels[0].filename in finding["detail"] and re.search(r"\b5\d\d\b", finding["detail"]), finding
        assert report["checked_files"] == 3 and report["downloaded_files"] == 2
        text = run_verify(srv.simple, "--files")
        assert text.returncode == 1
        assert f"FINDING unreachable-file: {wheels[0].filename}" in text.stdout and "1 finding(s)" in text.stdout
        one = run_verify(srv.url, "--files", "--project", "KAPPA", "--json")  # a name as users write it
        assert one.returncode == 1 and kinds(json.loads(one.stdout)) == {"unreachable-file"}, one.stdout
        other = run_verify(srv.url, "--files", "--project", "lambda.pkg")
        assert other.returncode == 0, other.stdout
    finally:
        aside.rename(blob)


class _CuttingProxy(http.server.ThreadingHTTPServer):
    """Passes GET requests on to the index, but cuts the connection of every file download."""

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(("127.0.0.1", 0), _CuttingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _CuttingHandler(http.server.BaseHTTPRequestHandler):
    server: _CuttingProxy

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        if self.path.startswith("/files/"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
            return
        request = urllib.request.Request(self.server.target + self.path.lstrip("/"),
                                         headers={"Accept": self.headers.get("Accept", "*/*")})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, headers, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_a_file_download_cut_short_is_a_finding(small_index: tuple[Server, list[Dist]]) -> None:
    srv, wheels = small_index
    proxy = _CuttingProxy(srv.url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        proc = run_verify(proxy.url, "--files", "--json")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        assert kinds(report) == {"unreachable-file"} and len(report["findings"]) == 3, report
        assert {w.filename for w in wheels} == {f["detail"].split(" ", 1)[0] for f in report["findings"]}
        assert all("connection" in f["detail"] for f in report["findings"]), report
    finally:
        proxy.shutdown()
        proxy.server_close()
