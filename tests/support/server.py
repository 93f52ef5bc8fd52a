"""Starts the real moorage server on a loopback port, in a subprocess."""

from __future__ import annotations

import atexit
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TOKEN_LINE = re.compile(r"^\s+(moorage-[0-9a-f]+-\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    admin_token: str
    output: Path

    @property
    def simple(self) -> str:
        return self.url + "simple/"

    @property
    def legacy(self) -> str:
        return self.url + "legacy/"

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.data_dir, *args, input=input, check=check)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# MOORAGE_TEST_DATABASE=postgresql runs every server and command of the tests on a PostgreSQL
# database of its own (one per data directory, created on first use, dropped at exit) instead
# of the embedded SQLite: the second pass of CI.
TEST_DATABASE = os.environ.get("MOORAGE_TEST_DATABASE", "sqlite")
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
_databases: dict[Path, str] = {}


def on_postgresql() -> bool:
    return TEST_DATABASE == "postgresql"


def _drop_databases() -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True) as admin:
        for url in _databases.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def database_url(data_dir: Path) -> str | None:
    """The PostgreSQL database of this data directory in the PostgreSQL pass, else None."""
    if not on_postgresql():
        return None
    key = data_dir.resolve()
    if key not in _databases:
        import psycopg

        from moorage.store.database import Database

        name = f"moorage_t_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True,
                             connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        if not _databases:
            atexit.register(_drop_databases)
        _databases[key] = PG_SERVER + name
        db = Database(PG_SERVER + name)
        db.upgrade()
        db.dispose()
    return _databases[key]


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOORAGE_", "PIP_", "UV_"))}
    env["MOORAGE_DATA_DIR"] = str(data_dir)
    url = database_url(data_dir)
    if url is not None:
        env["MOORAGE_DATABASE_URL"] = url
    return env


def run_cli(data_dir: Path, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True, text=True,
                          input=input, env=env or cli_env(data_dir), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"moorage {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_server(data_dir: Path, *, config: Path | None = None, workers: int = 1,
                 extra_env: dict[str, str] | None = None, timeout: float = 120,
                 extra_args: tuple[str, ...] = ()) -> Server:
    port = free_port()
    env = cli_env(data_dir)
    env.update(extra_env or {})
    args = [sys.executable, "-m", "moorage", "serve", "--port", str(port), *extra_args]
    if config:
        args += ["--config", str(config)]
    if workers > 1:
        args += ["--workers", str(workers)]
    data_dir.mkdir(parents=True, exist_ok=True)
    output = data_dir.parent / f"server-{port}.log"
    log = output.open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=data_dir.parent)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{output.read_text()}")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not answer within {timeout}s:\n{output.read_text()}")
        time.sleep(0.05)
    match = TOKEN_LINE.search(output.read_text())
    return Server(url, data_dir, proc, match.group(1) if match else "", output)


def http_status(url: str) -> int:
    """The status of a GET (an error status too), from the loopback server."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def raw_request(url: str, method: str = "GET", headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """One request to a loopback server, redirects not followed: (status, headers with
    lower-case names, body)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
