"""`moorage audit` against a real server, on lock files the real tools wrote: `uv pip compile
--generate-hashes` (requirements.txt), `pip lock` and `uv export` (pylock.toml), `uv lock`
(uv.lock) and `poetry lock` (poetry.lock). After locking, the index changes under them: a
yank, an archive, a deprecation, a quarantine, an announced removal, a deleted file, a deleted
project (the name pulled from under the lock), a new release, and two files whose bytes are
replaced on disk behind the server's back.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.server import Server, start_server

pytestmark = pytest.mark.slow
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}

# One project per scenario; every lock pins all of them at 1.0.
PROJECTS = ["au-fresh", "au-yanked", "au-archived", "au-deprecated", "au-held", "au-leaving", "au-gone",
            "au-vanished", "au-same-size", "au-new-size"]
FORMATS = ["requirements.txt", "pylock.toml", "pylock.uv.toml", "uv.lock", "poetry.lock"]


@dataclass
class Index:
    server: Server
    wheels: dict[str, Dist]
    locks: dict[str, dict[str, Path]]  # set of pins -> format -> lock file
    replaced_sha256: str  # of the same-size bytes now served for au-same-size
    replaced_size: int  # of the bytes now served for au-new-size


def _page(server: Server, project: str) -> dict[str, object]:
    request = urllib.request.Request(server.simple + project + "/", headers=JSON)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change did not reach the server's pages"
        time.sleep(0.02)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


def _blob(server: Server, sha256: str) -> Path:
    """Where the file store keeps these bytes (src/moorage/store/blobs.py: blobs/aa/bb/<sha256>)."""
    return server.data_dir / "blobs" / sha256[:2] / sha256[2:4] / sha256


def make_locks(root: Path, pins: list[str], index: str) -> dict[str, Path]:
    """The same pins locked by each tool, against the loopback index only, no caches, no user config."""
    root.mkdir()
    (root / "requirements.in").write_text("".join(f"{pin}\n" for pin in pins))
    uv = clients.uv_bin()
    _ok(clients.run([uv, "pip", "compile", "--no-cache", "--no-config", "--index-url", index, "--generate-hashes",
                     "--emit-index-url", "-o", "requirements.txt", "requirements.in"], cwd=root))
    _ok(clients.run([sys.executable, "-m", "pip", "lock", "--isolated", "--no-cache-dir",
                     "--disable-pip-version-check", "--index-url", index, "-o", "pylock.toml", "-r", "requirements.in"],
                    cwd=root))
    deps = ", ".join(f'"{pin}"' for pin in pins)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.8"\ndependencies = [{deps}]\n\n'
        '[tool.poetry]\npackage-mode = false\n\n'
        f'[[tool.poetry.source]]\nname = "moorage"\nurl = "{index}"\npriority = "primary"\n')
    _ok(clients.run([uv, "lock", "--no-cache", "--no-config", "--default-index", index], cwd=root))
    _ok(clients.run([uv, "export", "--no-cache", "--no-config", "--default-index", index, "--format", "pylock.toml",
                     "-o", "pylock.uv.toml"], cwd=root))
    env = clients.clean_env(POETRY_CONFIG_DIR=str(root / ".poetry-config"),
                            POETRY_CACHE_DIR=str(root / ".poetry-cache"), POETRY_DATA_DIR=str(root / ".poetry-data"))
    _ok(clients.run([clients.venv_bin("poetry"), "lock", "--no-interaction"], env=env, cwd=root))
    return {fmt: root / fmt for fmt in FORMATS}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("audit")
    server = start_server(root / "data")
    try:
        dists = root / "dist"
        wheels = {name: make_wheel(dists, name, "1.0") for name in PROJECTS}
        gone_sdist = make_sdist(dists, "au-gone", "1.0")
        _ok(clients.twine_upload(server.legacy, server.admin_token, *(w.path for w in wheels.values()),
                                 gone_sdist.path))
        locks = {
            "full": make_locks(root / "full", [f"{name}==1.0" for name in PROJECTS], server.simple),
            "yank-only": make_locks(root / "yank-only", ["au-yanked==1.0"], server.simple),
            "clean": make_locks(root / "clean", ["au-fresh==1.0"], server.simple),
        }

        # What changes after locking.
        _ok(clients.twine_upload(server.legacy, server.admin_token, make_wheel(dists, "au-fresh", "1.1").path))
        server.cli("yank", "au-yanked", "1.0", "--reason", "corrupts data")
        server.cli("archive", "au-archived", "--reason", "no longer maintained")
        server.cli("deprecate", "au-deprecated", "--reason", "use au-fresh", "--successor", "au-fresh")
        server.cli("quarantine", "au-held", "--reason", "reported as malware")
        server.cli("announce-removal", "au-leaving", "--days", "30", "--reason", "retired")
        server.cli("delete", "au-gone", "1.0", wheels["au-gone"].filename, "--reason", "uploaded by mistake")
        server.cli("delete", "au-vanished", "--reason", "the author pulled it")
        # Bytes replaced behind the server's back (the file store, under the data directory):
        # its JSON still advertises the original sha256 and size.
        same, grown = (_blob(server, wheels[name].sha256) for name in ("au-same-size", "au-new-size"))
        original = same.read_bytes()
        replaced = bytes(b ^ 0xFF for b in original[:16]) + original[16:]
        same.write_bytes(replaced)
        grown.write_bytes(grown.read_bytes() + b"trailing bytes")
        _wait_for(lambda: "_removal-at" in _page(server, "au-leaving")
                  and _page(server, "au-held")["project-status"] == {"status": "quarantined",
                                                                     "reason": "reported as malware"})
        yield Index(server, wheels, locks, hashlib.sha256(replaced).hexdigest(), grown.stat().st_size)
    finally:
        server.stop()


def audit(lock: Path, *args: str, index: Index | None = None) -> subprocess.CompletedProcess[str]:
    """`moorage audit` as a user runs it, in the lock file's directory (the name as given)."""
    extra = ["--index", index.server.simple] if index is not None else []
    env = clients.clean_env()
    env.pop("COLUMNS", None)  # as in a CI log: no terminal, no width given (pytest-xdist may set one)
    return subprocess.run([sys.executable, "-m", "moorage", "audit", lock.name, *extra, *args], capture_output=True,
                          text=True, cwd=lock.parent, env=env, timeout=60)


def audit_json(index: Index, lock: Path, *args: str) -> tuple[int, dict[str, Any]]:
    # pip lock records no index: it is given; the other tools' locks name theirs.
    result = audit(lock, "--json", *args, index=index if lock.name == "pylock.toml" else None)
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


EXPECTED = {  # project -> (kind, severity, pinned file named in the finding)
    "au-new-size": ("hash-mismatch", "critical", True),
    "au-gone": ("missing", "high", True),
    "au-vanished": ("missing", "high", True),
    "au-held": ("quarantined", "high", False),
    "au-leaving": ("pending-removal", "medium", False),
    "au-yanked": ("yanked", "medium", True),
    "au-archived": ("archived", "low", False),
    "au-deprecated": ("deprecated", "low", False),
    "au-fresh": ("newer-release", "info", False),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_change_shows_up_with_its_kind_and_severity(index: Index, fmt: str) -> None:
    lock = index.locks["full"][fmt]
    status, report = audit_json(index, lock)
    assert status == 1  # a yank and worse: --fail-on yanked by default
    assert report["lockfile"] == fmt and report["index"] == index.server.simple
    findings: list[dict[str, str | None]] = report["findings"]
    # requirements.txt names no files: a missing hash names none either
    names_file = {p: file and not (fmt == "requirements.txt" and kind == "missing")
                  for p, (kind, _, file) in EXPECTED.items()}
    assert [(f["project"], f["kind"], f["severity"], f["filename"]) for f in findings] == [
        (p, kind, severity, index.wheels[p].filename if names_file[p] else None)
        for p, (kind, severity, _) in EXPECTED.items()], findings  # most severe first; nothing for au-same-size
    detail = {f["project"]: f["detail"] or "" for f in findings}
    assert f"the index serves {index.replaced_size} bytes" in detail["au-new-size"]
    assert detail["au-yanked"] == "yanked: corrupts data"
    assert detail["au-archived"] == "archived: no longer maintained"
    assert detail["au-deprecated"] == "deprecated: use au-fresh; successor: au-fresh"
    assert detail["au-held"] == "quarantined: reported as malware"
    assert re.fullmatch(r"pending removal: its files leave the default index on \d{4}-\d\d-\d\d \d\d:\d\d UTC; "
                        r"retired", detail["au-leaving"] or ""), detail["au-leaving"]
    assert detail["au-fresh"] == "1.1 is available (the lock pins 1.0)"
    assert detail["au-vanished"] == ("the index has no project au-vanished (404): it was deleted, or the lock was "
                                     "made against another index")
    assert all(f["version"] == "1.0" for f in findings)
    files = 11 if fmt in ("uv.lock", "pylock.uv.toml", "poetry.lock", "requirements.txt") else 10  # pip: wheels only
    assert report["checked_files"] == files


@pytest.mark.parametrize("fmt", FORMATS)
def test_download_also_sees_bytes_replaced_with_the_same_size(index: Index, fmt: str) -> None:
    _status, report = audit_json(index, index.locks["full"][fmt], "--download")
    mismatches = {f["project"]: f for f in report["findings"] if f["kind"] == "hash-mismatch"}
    assert sorted(mismatches) == ["au-new-size", "au-same-size"]
    same = mismatches["au-same-size"]
    assert (same["severity"], same["filename"]) == ("critical", index.wheels["au-same-size"].filename)
    assert same["detail"] == (f"the served bytes have sha256 {index.replaced_sha256}, "
                              f"the lock has {index.wheels['au-same-size'].sha256}")
    assert "the served bytes have sha256" in mismatches["au-new-size"]["detail"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_fail_on_decides_the_exit_status(index: Index, fmt: str) -> None:
    full, yank_only, clean = (index.locks[name][fmt] for name in ("full", "yank-only", "clean"))
    assert audit_json(index, full, "--fail-on", "hash-mismatch")[0] == 1  # a replaced file
    assert audit_json(index, full, "--fail-on", "none")[0] == 0
    status, report = audit_json(index, yank_only)
    assert status == 1 and [f["kind"] for f in report["findings"]] == ["yanked"]
    assert audit_json(index, yank_only, "--fail-on", "hash-mismatch")[0] == 0
    status, report = audit_json(index, clean)
    assert status == 0 and [f["kind"] for f in report["findings"]] == ["newer-release"]
    assert audit_json(index, clean, "--fail-on", "newer-release")[0] == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_github_annotations_point_at_the_lock_file_line(index: Index, fmt: str) -> None:
    lock = index.locks["full"][fmt]
    result = audit(lock, "--format", "github", index=index if fmt == "pylock.toml" else None)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(EXPECTED)
    text = lock.read_text().splitlines()
    pattern = re.compile(r"::(error|warning|notice) file=(?P<file>[^,]+),line=(?P<line>\d+),"
                         r"title=moorage audit%3A (?P<kind>[a-z-]+)::(?P<project>\S+) 1\.0(?P<rest>.*)")
    levels = {}
    for line in lines:
        match = pattern.fullmatch(line)
        assert match, line
        assert match["file"] == fmt
        levels[match["kind"]] = match[1]
        pointed = text[int(match["line"]) - 1]
        filename = index.wheels[match["project"]].filename
        if fmt == "requirements.txt":  # hashes without file names: the requirement's line
            assert pointed.startswith(match["project"] + "=="), (line, pointed)
        elif match["rest"].startswith(f" {filename}: "):
            assert filename in pointed, (line, pointed)
        else:
            assert re.match(rf'\s*name = "{match["project"]}"', pointed), (line, pointed)
    assert levels == {"hash-mismatch": "error", "missing": "error", "quarantined": "error", "pending-removal": "error",
                      "yanked": "error", "archived": "warning", "deprecated": "warning", "newer-release": "notice"}
    yanked = index.wheels["au-yanked"].filename
    assert any(line.endswith(f"title=moorage audit%3A yanked::au-yanked 1.0 {yanked}: yanked: corrupts data")
               for line in lines)


def test_the_table_and_a_lock_without_an_index(index: Index) -> None:
    lock = index.locks["full"]["uv.lock"]
    result = audit(lock)
    assert result.returncode == 1 and result.stderr == ""
    out = result.stdout
    assert out.index("hash-mismatch") < out.index("missing") < out.index("yanked") < out.index("newer-release")
    assert out.splitlines()[-1] == (f"9 finding(s) (1 critical, 3 high, 2 medium, 2 low, 1 info): 11 locked file(s) "
                                    f"in uv.lock checked against {index.server.simple}")
    no_index = audit(index.locks["full"]["pylock.toml"])  # pip lock writes no `index`
    assert no_index.returncode == 2 and no_index.stdout == ""
    assert no_index.stderr == ("moorage: audit: pylock.toml records no index (for au-archived, au-deprecated, "
                               "au-fresh, ...): give --index URL, the index's simple root (moorage has no default "
                               "index)\n")


def test_the_index_announces_the_removal_instant(index: Index) -> None:
    page = _page(index.server, "au-leaving")
    removal_at = str(page["_removal-at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", removal_at)
    reason = page["project-status"]["reason"]  # type: ignore[index]
    assert f"{removal_at[:10]} {removal_at[11:16]} UTC" in reason
    assert "_removal-at" not in _page(index.server, "au-deprecated")
