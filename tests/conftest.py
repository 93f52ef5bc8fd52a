from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, on_postgresql, start_server

_counter = itertools.count()


CORPUS = Path(__file__).parent / "corpus"
_corpus_fetch: subprocess.Popen[bytes] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """When the run includes the real-distribution corpus, its files are fetched from the start,
    in a process of its own, while the other tests run (a cold cache takes minutes of pip);
    the corpus tests run last and wait for it (tests/corpus/fetch.py holds a lock)."""
    global _corpus_fetch
    if hasattr(config, "workerinput") or config.option.collectonly:  # an xdist worker, or nothing runs
        return
    args = [Path(a.split("::")[0]).resolve() for a in config.args] or [Path(config.rootpath, "tests")]
    if not any((CORPUS / "test_corpus.py").is_relative_to(a) for a in args):
        return
    with Path(config.rootpath, ".pytest-corpus-fetch.log").open("wb") as log:
        _corpus_fetch = subprocess.Popen([sys.executable, "-m", "tests.corpus.fetch"], cwd=config.rootpath,
                                         stdout=log, stderr=subprocess.STDOUT)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _corpus_fetch is not None and _corpus_fetch.poll() is None:
        _corpus_fetch.terminate()  # the corpus tests did not run: nothing waits for it
        _corpus_fetch.wait(30)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The corpus tests run last (their files are fetched meanwhile). The PostgreSQL pass
    (MOORAGE_TEST_DATABASE=postgresql) skips what is about SQLite itself."""
    items.sort(key=lambda item: item.path.is_relative_to(CORPUS))  # stable: the rest keep their order
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
