"""Starts the real moorage server on a loopback port, in a subprocess."""

from __future__ import annotations

import os
import re
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


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOORAGE_", "PIP_", "UV_"))}
    env["MOORAGE_DATA_DIR"] = str(data_dir)
    return env


def run_cli(data_dir: Path, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True, text=True,
                          input=input, env=env or cli_env(data_dir), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"moorage {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_server(data_dir: Path, *, config: Path | None = None, workers: int = 1,
                 extra_env: dict[str, str] | None = None, timeout: float = 30) -> Server:
    port = free_port()
    env = cli_env(data_dir)
    env.update(extra_env or {})
    args = [sys.executable, "-m", "moorage", "serve", "--port", str(port)]
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
