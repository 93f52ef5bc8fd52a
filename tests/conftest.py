from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, on_postgresql, start_server

_counter = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (MOORAGE_TEST_DATABASE=postgresql) skips what is about SQLite itself."""
    if not on_postgresql():
        return
    skip = pytest.mark.skip(reason="about the embedded SQLite default: runs in the SQLite pass")
    for item in items:
        if "embedded" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the session; tests use project names of their own."""
    srv = start_server(tmp_path_factory.mktemp("index") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def unique() -> str:
    """A project-name fragment no other test in this run uses."""
    return f"p{os.getpid()}x{next(_counter)}"


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    out.mkdir()
    return out
