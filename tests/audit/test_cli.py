"""`moorage audit` as a command, without an index: the options, and every error is one line on
stderr with exit status 2 (the end-to-end runs against a real server are in tests/e2e)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from moorage.cli import audit


def run(*args: str) -> int:
    parser = argparse.ArgumentParser(prog="moorage")
    audit.register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["audit", *args])
    result: int = parsed.func(parsed)
    return result


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("alpha==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    return path


def error_of(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_no_index_recorded_and_none_given(requirements: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(str(requirements)) == 2
    assert error_of(capsys) == (f"moorage: audit: {requirements} records no index (for alpha): give --index URL, "
                                "the index's simple root (moorage has no default index)")


def test_an_unreachable_index(requirements: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = f"http://127.0.0.1:{closed_port()}/simple/"
    assert run(str(requirements), "--index", index) == 2
    assert error_of(capsys).startswith(f"moorage: audit: cannot reach the index at {index}alpha/: ")


@pytest.mark.parametrize(("args", "says"), [
    (["--fail-on", "bad"], "moorage: audit: --fail-on: expected one of hash-mismatch, missing, quarantined, "
                           "pending-removal, yanked, archived, deprecated, newer-release, none; got 'bad'"),
    (["--format", "xml"], "moorage: audit: --format: expected one of table, json, github; got 'xml'"),
    (["--json", "--format", "github"], "moorage: audit: --json and --format github contradict each other"),
    (["--index", "file:///srv/simple/"], "moorage: audit: the index URL must be an http:// or https:// simple root"),
])
def test_bad_options(requirements: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    assert run(str(requirements), *args) == 2
    assert error_of(capsys).startswith(says)


def test_a_missing_or_unreadable_lock_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(str(tmp_path / "nope.txt"), "--index", "http://127.0.0.1:1/simple/") == 2
    assert error_of(capsys) == f"moorage: audit: cannot read {tmp_path / 'nope.txt'}: No such file or directory"
    binary = tmp_path / "requirements.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    assert run(str(binary), "--index", "http://127.0.0.1:1/simple/") == 2
    assert error_of(capsys) == f"moorage: audit: {binary}: not UTF-8 text"


def test_a_bad_lock_file_names_the_file_and_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text('version = 1\n\n[[package]]\nname = "x"\nsource = { registry = "http://127.0.0.1:1/simple" }\n')
    assert run(str(lock)) == 2
    assert error_of(capsys) == (f"moorage: audit: {lock}: line 4: package x: `version` must be a non-empty string, "
                                "got None")
    pylock = tmp_path / "pylock.toml"
    pylock.write_text("lock-version = [\n")
    assert run(str(pylock), "--index", "http://127.0.0.1:1/simple/") == 2
    assert error_of(capsys).startswith(f"moorage: audit: {pylock}: not valid TOML (pylock.toml): ")


def test_an_empty_lock_with_an_index_has_nothing_to_find(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("# nothing pinned\n")
    assert run(str(lock), "--index", "http://127.0.0.1:1/simple", "--json") == 0
    assert capsys.readouterr().out == ('{\n  "lockfile": "' + str(lock) + '",\n  "index": "http://127.0.0.1:1/simple/",'
                                       '\n  "checked_files": 0,\n  "findings": []\n}\n')
