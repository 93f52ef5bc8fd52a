"""Faults: a server killed mid-upload, a database that goes away, a disk that fills up.

Nothing that was accepted may be lost, nothing half-written may remain, and the server
answers a failing part with a clear 503 or 507 instead of a 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.db import TestDB
from tests.support.dists import make_wheel
from tests.support.fsck import fsck_json
from tests.support.server import Server, cli_env, free_port, http_status, on_postgresql, run_cli, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow



def _verify(server: Server, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "moorage", "verify", "--index", server.url, "--files",
                             "--state", str(tmp_path / f"verify-{secrets.token_hex(3)}.json")],
                            capture_output=True, text=True, timeout=600, env=cli_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def _check_store(data_dir: Path) -> None:
    """Every file row has its bytes (hash checked), one upload event and one log leaf each."""
    db = TestDB(data_dir, readonly=True)
    try:
        rows = db.execute("SELECT filename, sha256, size FROM files").fetchall()
        for filename, sha256, size in rows:
            blob = data_dir / "blobs" / sha256[:2] / sha256[2:4] / sha256
            assert blob.exists(), f"{filename}: row without bytes"
            data = blob.read_bytes()
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha256, size), filename
        added = db.execute("SELECT subject, count(*) FROM events WHERE action = 'file-added' GROUP BY subject")
        counts = dict(added.fetchall())
        assert counts == {f"file:{f}": 1 for f, _s, _z in rows}
        n_events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        n_leaves = db.execute("SELECT count(*) FROM log_entries").fetchone()[0]
        assert n_events == n_leaves
        shared = db.execute("SELECT sha256 FROM files GROUP BY sha256 HAVING count(*) > 1").fetchall()
        assert shared == [], "the same bytes under two file rows"
    finally:
        db.close()


def _kill_loop(data: Path, dists: Path, rounds: int, *, workers: int = 1, seed: int = 5) -> dict[str, str]:
    """Start the server, upload from four clients at once, SIGKILL it mid-upload; ``rounds``
    times. Returns filename -> sha256 of every upload answered 200 (acknowledged)."""
    rng = random.Random(seed)
    accepted: dict[str, str] = {}
    counter = iter(range(1_000_000))
    token = ""
    for round_ in range(rounds):
        server = start_server(data, workers=workers)
        token = token or server.admin_token  # printed on the first start only
        stop = threading.Event()
        lock = threading.Lock()

        def uploader(server: Server, token: str, stop: threading.Event, lock: threading.Lock) -> None:
            while not stop.is_set():
                n = next(counter)
                wheel = make_wheel(dists, f"crash{n % 7}", f"1.{n}")
                try:
                    status, _reason, _body = post_upload(server.legacy, token, wheel.path, timeout=10)
                except OSError:
                    return  # the server died under us: the answer never came
                if status == 200:
                    with lock:
                        accepted[wheel.filename] = wheel.sha256

        threads = [threading.Thread(target=uploader, args=(server, token, stop, lock)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.4) + (0.5 if workers > 1 else 0.0))
        _kill_9(server)
        stop.set()
        for t in threads:
            t.join(30)
        assert round_ < 5 or accepted, "no upload was ever accepted: the test is not testing anything"
    return accepted


def _kill_9(server: Server) -> None:
    """SIGKILL the server and, with --workers, its worker processes, all at once (a crash)."""
    pids = [server.process.pid, *_descendants(server.process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.02)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _check_accepted(server: Server, accepted: dict[str, str], dists: Path) -> None:
    """Every acknowledged upload is offered once and served byte for byte."""
    for filename, sha256 in accepted.items():
        name = filename.split("-")[0]
        with urllib.request.urlopen(f"{server.url}files/{sha256}/{filename}", timeout=10) as resp:
            assert resp.read() == (dists / filename).read_bytes(), f"{filename} was accepted and changed"
        request = urllib.request.Request(f"{server.simple}{name}/",
                                         headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            listed = json.loads(resp.read())["files"]
        assert Counter(f["filename"] for f in listed)[filename] == 1, f"{filename} is not listed once"


def _leftovers_repaired(data: Path, label: str, accepted: dict[str, str]) -> None:
    """What the kills left is only what `fsck --repair` removes; after it, fsck finds nothing.
    The command runs a day later by its clock, so every leftover is old enough to be removed."""
    later = timedelta(days=2)
    _status, before = fsck_json(data, offset=later)
    kinds = Counter(f["kind"] for f in before["findings"])
    assert set(kinds) <= {"unreferenced", "stale-temp", "temp-link"}, before["findings"]
    status, repaired = fsck_json(data, "--repair", offset=later)
    assert status == 0 and all(f["repaired"] for f in repaired["findings"]), repaired["findings"]
    status, after = fsck_json(data, offset=later)
    assert status == 0 and after["findings"] == []
    print(f"\nkill -9 loop ({label}): {len(accepted)} uploads acknowledged, {len(accepted)} present, byte-identical "
          f"and listed once; fsck before --repair: {sum(kinds.values())} leftovers ({dict(sorted(kinds.items()))}), "
          f"after: {len(after['findings'])}")


@pytest.mark.embedded
def test_a_server_killed_during_uploads_fifty_times_loses_nothing_it_accepted(tmp_path: Path) -> None:
    data, dists = tmp_path / "data", tmp_path / "dists"
    accepted = _kill_loop(data, dists, 50)
    server = start_server(data)
    try:
        _check_accepted(server, accepted, dists)
        _check_store(data)
        _verify(server, tmp_path)
    finally:
        server.stop()
    _leftovers_repaired(data, "50 rounds, one process, SQLite", accepted)


def test_two_workers_killed_during_uploads_ten_times_lose_nothing_and_leave_only_what_fsck_repairs(
        tmp_path: Path) -> None:
    """The trial's loop, bounded: two workers (on PostgreSQL in the PostgreSQL pass)."""
    data, dists = tmp_path / "data", tmp_path / "dists"
    accepted = _kill_loop(data, dists, 10, workers=2, seed=14)
    server = start_server(data, workers=2)
    try:
        _check_accepted(server, accepted, dists)
        _check_store(data)
        _verify(server, tmp_path)
    finally:
        server.stop()
    database = "PostgreSQL" if on_postgresql() else "SQLite"
    _leftovers_repaired(data, f"10 rounds, two workers, {database}", accepted)


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut: the database 'goes away'."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.up = True
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def proxied_pg_server(tmp_path: Path) -> Iterator[tuple[Server, Proxy, str]]:
    try:
        import psycopg

        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True,
                                connect_timeout=5)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed in CI: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    name = f"moorage_faults_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    proxy = Proxy(("127.0.0.1", 5432))
    url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{name}"
    env = {**cli_env(tmp_path / "data"), "MOORAGE_DATABASE_URL": url}
    run_cli(tmp_path / "data", "db", "upgrade", env=env)
    server = start_server(tmp_path / "data", extra_env={"MOORAGE_DATABASE_URL": url})
    try:
        yield server, proxy, url
    finally:
        server.stop()
        proxy.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_an_upload_while_the_database_is_away_gets_503_and_leaves_nothing(
        proxied_pg_server: tuple[Server, Proxy, str], tmp_path: Path) -> None:
    server, proxy, _url = proxied_pg_server
    first = make_wheel(tmp_path, "flaky", "1.0")
    assert post_upload(server.legacy, server.admin_token, first.path)[0] == 200
    page = urllib.request.urlopen(server.simple + "flaky/", timeout=10).read()

    proxy.cut()
    second = make_wheel(tmp_path, "flaky", "1.1")
    status, reason, body = post_upload(server.legacy, server.admin_token, second.path, timeout=60)
    assert status == 503, (status, reason, body)
    assert "database is unavailable" in reason and "nothing was changed" in body
    assert http_status(server.url + "api/projects/flaky") in (401, 503)  # never a 500
    assert http_status(server.url + "healthz") == 503

    proxy.restore()
    assert not any((server.data_dir / "blobs" / "tmp").iterdir()), "a temporary file was left behind"
    assert urllib.request.urlopen(server.simple + "flaky/", timeout=10).read() == page  # no partial state
    assert post_upload(server.legacy, server.admin_token, second.path)[0] == 200  # and it recovers
    assert second.filename in urllib.request.urlopen(server.simple + "flaky/", timeout=10).read().decode()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.embedded
def test_a_full_disk_refuses_the_upload_clearly_and_keeps_serving(small_disk: Path, tmp_path: Path) -> None:
    server = start_server(small_disk / "data")
    try:
        small = make_wheel(tmp_path, "roomy", "1.0")
        assert post_upload(server.legacy, server.admin_token, small.path)[0] == 200
        big = make_wheel(tmp_path, "roomy", "2.0", extra_members={"roomy/blob.bin": os.urandom(16 * 1024 * 1024)})
        status, reason, body = post_upload(server.legacy, server.admin_token, big.path, timeout=120)
        assert status == 507, (status, reason, body)
        assert "storage is full" in reason
        assert not any((small_disk / "data" / "blobs" / "tmp").iterdir())
        # It keeps serving what it has, and takes uploads that fit.
        assert small.filename in urllib.request.urlopen(server.simple + "roomy/", timeout=10).read().decode()
        assert http_status(f"{server.url}files/{small.sha256}/{small.filename}") == 200
        assert post_upload(server.legacy, server.admin_token, make_wheel(tmp_path, "roomy", "1.1").path)[0] == 200
        _check_store(small_disk / "data")
    finally:
        server.stop()
