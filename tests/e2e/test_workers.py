"""Several worker processes share one data directory and never serve a stale page for long."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.dists import make_wheel
from tests.support.server import Server, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("workers") / "data", workers=2)
    yield srv
    srv.stop()


def _page(url: str) -> str:
    # A new connection each time, so the kernel spreads requests over both workers.
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def test_every_worker_shows_a_new_upload_within_the_cache_bound(two_workers: Server, tmp_path: Path) -> None:
    name = "shared-page"
    first = make_wheel(tmp_path, name, "1.0")
    assert clients.twine_upload(two_workers.legacy, two_workers.admin_token, first.path).returncode == 0
    url = two_workers.simple + name + "/"
    for _ in range(40):  # warm the page cache of both workers
        assert first.filename in _page(url)

    second = make_wheel(tmp_path, name, "1.1")
    result = clients.twine_upload(two_workers.legacy, two_workers.admin_token, second.path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The default bound is 5 ms; allow generously for a loaded machine, then demand every answer.
    time.sleep(0.05)
    pages = [_page(url) for _ in range(40)]
    stale = [p for p in pages if second.filename not in p]
    assert not stale, f"{len(stale)} of {len(pages)} responses did not show the new file"


def test_workers_are_separate_processes(two_workers: Server) -> None:
    import subprocess

    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(two_workers.process.pid)],
                              capture_output=True, text=True).stdout.split()
    assert len(children) >= 2, children
