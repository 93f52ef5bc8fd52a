"""moto's standalone S3 server on a loopback port, for the tests of the S3 blob store."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import free_port

# Dummy credentials: moto accepts any; they only let boto3 sign its requests.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "moorage-test",
    "AWS_SECRET_ACCESS_KEY": "moorage-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service
    "AWS_CONFIG_FILE": os.devnull,  # nor read the user's ~/.aws
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    output: Path

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"], aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_moto(workdir: Path, timeout: float = 60.0) -> MotoServer | str:
    """The running server, or the reason it could not start."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        return "moto[server] and boto3 are not installed (pip install -e '.[test]')"
    port = free_port()
    output = workdir / f"moto-{port}.log"
    with output.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = MotoServer(f"http://127.0.0.1:{port}", proc, output)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            return f"moto's server exited with {proc.returncode}: {output.read_text(errors='replace')[-2000:]}"
        try:
            with urllib.request.urlopen(server.endpoint + "/moto-api/", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            return f"moto's server did not answer within {timeout:g} s: {output.read_text(errors='replace')[-2000:]}"
        time.sleep(0.1)


def moto_or_skip(workdir: Path) -> MotoServer:
    """moto's server for a test module: skipped with the reason when it cannot start, except in
    CI (the environment variable CI set), where it must."""
    import pytest

    started = start_moto(workdir)
    if isinstance(started, str):
        if os.environ.get("CI"):
            pytest.fail(f"moto's S3 server must start in CI: {started}")
        pytest.skip(f"moto's S3 server could not start: {started}")
    return started
