"""The corpus list's consistency (offline, fast): nothing here downloads anything."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from tests.corpus.fetch import COLUMNS, MAX_FILE_SIZE, CorpusFile, load_list, plan_requests, wheel_flags

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    return load_list()


def _names(path: Path) -> list[str]:
    return [s for line in path.read_text().splitlines() if (s := line.split("#")[0].strip())]


def test_sizes_of_the_corpus(files: list[CorpusFile]) -> None:
    assert len(files) >= 600
    assert len({canonicalize_name(f.project) for f in files}) >= 150
    assert sum(f.is_sdist for f in files) >= 150
    assert sum(f.is_wheel for f in files) >= 300


def test_each_line(files: list[CorpusFile]) -> None:
    names = [f.filename for f in files]
    assert len(names) == len(set(names)), [n for n, c in Counter(names).items() if c > 1]
    for f in files:
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.filename
        assert 0 < f.size <= MAX_FILE_SIZE, f.filename
        assert f.packagetype in ("sdist", "bdist_wheel"), f.filename
        assert f.backend and f.metadata_version, f.filename
        assert f.expected == "accept" or re.fullmatch(r"refuse:[a-z-]+:.+", f.expected), f.filename
        if f.is_wheel:
            name, version, _, _ = parse_wheel_filename(f.filename)
        else:
            assert f.filename.endswith((".tar.gz", ".zip")), f.filename
            try:
                name, version = parse_sdist_filename(f.filename)
            except ValueError:  # a name the parser does not take apart; the version still ends it
                name, version = canonicalize_name(f.project), Version(f.version)
        assert name == canonicalize_name(f.project), f.filename
        assert version == Version(f.version), f.filename


def test_one_sdist_per_release(files: list[CorpusFile]) -> None:
    sdists = Counter((canonicalize_name(f.project), Version(f.version)) for f in files if f.is_sdist)
    assert [k for k, c in sdists.items() if c > 1] == []


def test_header_and_cut_off() -> None:
    text = (HERE / "real.tsv").read_text()
    assert re.search(r"^# snapshot cut-off: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text, re.M)
    assert "\t".join(COLUMNS) in text.splitlines()


def test_install_set_is_in_the_list(files: list[CorpusFile]) -> None:
    install = _names(HERE / "install.txt")
    assert len(install) == 20
    listed = {canonicalize_name(f.project) for f in files if f.is_wheel}
    assert [p for p in install if canonicalize_name(p) not in listed] == []
    projects = {canonicalize_name(p) for p in _names(HERE / "projects.txt")}
    assert len(projects) >= 170


def test_every_wheel_gets_flags_and_one_project_per_pip_call(files: list[CorpusFile]) -> None:
    for f in files:
        if f.is_wheel:
            flags = wheel_flags(f.filename)
            assert flags[:2] == ("--only-binary", ":all:") and "--platform" in flags, f.filename
    for request in plan_requests(files):
        projects = [canonicalize_name(f.project) for f in request.files]
        assert len(projects) == len(set(projects))
        assert all(f.is_sdist for f in request.files) == request.files[0].is_sdist
