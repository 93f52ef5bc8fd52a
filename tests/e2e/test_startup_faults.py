"""What the operator sees when the index cannot start or a command cannot run: a read-only data
directory, a damaged database file, an unwritable blob directory, PostgreSQL unreachable, a data
directory that does not exist. One line naming the path, what is wrong and what to do; exit
status 2; never a traceback.

The damaged databases are copies of a real data directory: a real server took real uploads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import cli_env, free_port, run_cli, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow


def moorage(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60, stdin=subprocess.DEVNULL)


def one_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit status 2, one line on standard error holding every word, no traceback anywhere."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def serve(data: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`moorage serve` that is expected to refuse to start (it would otherwise run until the timeout)."""
    return moorage("serve", "--port", str(free_port()), env=env or cli_env(data))


@pytest.fixture(scope="module")
def real_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory a real server made and took uploads into, stopped, its WAL folded into
    the database file (as a backup or a copied directory holds it)."""
    root = tmp_path_factory.mktemp("real")
    server = start_server(root / "data")
    try:
        for name in ("able", "baker"):
            for version in ("1.0", "1.1"):
                wheel = make_wheel(root / "dist", name, version)
                assert post_upload(server.legacy, server.admin_token, wheel.path)[0] == 200
        server.cli("yank", "able", "1.0", "--reason", "old")
    finally:
        server.stop()
    if (root / "data" / "moorage.db").exists():
        with contextlib.closing(sqlite3.connect(root / "data" / "moorage.db")) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return root / "data"


@pytest.fixture
def copy(real_data: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(real_data, data)
    return data


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for moorage: a read-only bind mount as root (root writes through file
    modes), else the modes."""
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        try:
            remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, text=True)
            if remount.returncode != 0:
                pytest.skip(f"cannot remount read-only here: {remount.stderr.strip()}")
            yield
        finally:
            subprocess.run(["umount", str(path)], check=False)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p in modes:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


# -- the embedded database file ----------------------------------------------------------------
@pytest.mark.embedded
def test_a_read_only_data_directory(copy: Path) -> None:
    with read_only(copy):
        line = one_line(serve(copy), str(copy), "not writable", "write access")
        assert "moorage.db" in line
        for command in (("user", "add", "bob"), ("events",), ("token", "list", "admin")):
            one_line(run_cli(copy, *command, check=False), str(copy), "read-only", "write access")
    # The same directory, writable again, serves as before.
    server = start_server(copy)
    try:
        assert "able" in urllib.request.urlopen(server.simple, timeout=10).read().decode()
    finally:
        server.stop()


def _damaged(data: Path, *commands: tuple[str, ...]) -> None:
    one_line(serve(data), str(data / "moorage.db"), "damaged", "moorage restore-backup")
    for command in commands:
        one_line(run_cli(data, *command, check=False), str(data / "moorage.db"), "damaged", "moorage restore-backup")


@pytest.mark.embedded
def test_a_truncated_database(copy: Path) -> None:
    db = copy / "moorage.db"
    os.truncate(db, db.stat().st_size // 2)
    _damaged(copy, ("user", "add", "bob"), ("events",), ("yank", "baker", "1.0"))


@pytest.mark.embedded
def test_a_database_whose_header_is_overwritten(copy: Path) -> None:
    db = copy / "moorage.db"
    with db.open("r+b") as fh:
        fh.write(b"\xff" * 100)
    _damaged(copy, ("user", "add", "bob"), ("events",), ("policy", "check", "yank", "able", "1.0", "--as", "admin"))


@pytest.mark.embedded
def test_a_database_with_a_damaged_table(copy: Path) -> None:
    """Damage SQLite itself finds only when it reads the table: the command's query fails."""
    db = copy / "moorage.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    with db.open("r+b") as fh:
        fh.seek((root_page - 1) * page_size)
        fh.write(b"\xa5" * page_size)
    proc = run_cli(copy, "events", check=False)
    one_line(proc, str(db), "damaged", "malformed", "moorage restore-backup")


# -- the blob directory, PostgreSQL ---------------------------------------------------------------
def test_a_blob_directory_that_is_not_writable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "blobs" / "tmp").mkdir(parents=True)
    with read_only(data / "blobs"):
        one_line(serve(data), str(data / "blobs"), "not writable", "write access")


def test_postgresql_unreachable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    env = cli_env(data) | {"MOORAGE_DATABASE_URL": f"postgresql+psycopg://moorage:s3cret-pw@127.0.0.1:{port}/idx"}
    for proc in (serve(data, env), moorage("user", "add", "bob", env=env), moorage("events", env=env),
                 moorage("db", "upgrade", env=env)):
        line = one_line(proc, f"127.0.0.1:{port}", "PostgreSQL", "database_url")
        assert "s3cret-pw" not in proc.stdout + proc.stderr, line


def test_postgresql_without_the_schema(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True,
                                connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    name = f"moorage_empty_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        data = tmp_path / "data"
        env = cli_env(data) | {"MOORAGE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"}
        one_line(serve(data, env), "schema is not current", "moorage db upgrade")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# -- a data directory that does not exist -------------------------------------------------------
def test_commands_refuse_a_data_directory_that_does_not_exist(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = cli_env(tmp_path / "unused")
    del env["MOORAGE_DATA_DIR"]
    env.pop("MOORAGE_DATABASE_URL", None)
    default = elsewhere / "moorage-data"
    for command in (("events", "--project", "idna"), ("user", "add", "bob"), ("token", "list", "admin"),
                    ("yank", "idna", "3.7"), ("log", "key"), ("user", "reset-factors", "bob", "--reason", "x"),
                    ("admin", "daily"), ("policy", "check", "yank", "idna", "3.7", "--as", "admin")):
        one_line(moorage(*command, env=env, cwd=elsewhere), str(default), "does not exist", "--data-dir",
                 "MOORAGE_DATA_DIR")
    named = tmp_path / "typo"
    one_line(moorage("events", "--data-dir", str(named), env=env, cwd=elsewhere), str(named), "does not exist")
    one_line(moorage("events", env=env | {"MOORAGE_DATA_DIR": str(named)}, cwd=elsewhere), str(named))
    assert sorted(os.listdir(elsewhere)) == [] and not named.exists()


def test_serve_still_makes_its_data_directory_on_a_fresh_machine(tmp_path: Path) -> None:
    """The README's first command: `moorage serve` where nothing exists yet."""
    env = cli_env(tmp_path / "moorage-data")
    del env["MOORAGE_DATA_DIR"]  # the default, ./moorage-data (PostgreSQL pass: its own database)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moorage", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        assert (tmp_path / "moorage-data").is_dir()
        assert "first start" in (tmp_path / "serve.log").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
