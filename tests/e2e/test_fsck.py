"""Lost bytes and leftovers against the real server: a file whose blob is gone answers 503
naming it (GET, HEAD, Range), is counted and logged in one line, and /healthz reports the store
degraded (in every worker) until `moorage admin fsck --repair` brings the bytes back from a
backup or from another index; fsck's exit codes, table and JSON on each kind of damage; the
temporary files a start clears. The S3 store the same way, at the end (moto).

Every server's output and every command's output is checked for tracebacks: there are none.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.db import TestDB
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.fsck import fsck, fsck_json, no_traceback
from tests.support.s3 import AWS_ENV, MotoServer, moto_or_skip
from tests.support.server import Server, cli_env, on_postgresql, raw_request, run_cli, start_server
from tests.support.upload import post_upload

MISSING = "are missing from the index's blob store"


def _blob(data_dir: Path, sha: str) -> Path:
    return data_dir / "blobs" / sha[:2] / sha[2:4] / sha


def _publish(server: Server, *dists: Dist) -> None:
    for dist in dists:
        status, reason, body = post_upload(server.legacy, server.admin_token, dist.path)
        assert status == 200, (status, reason, body)


def _file_url(server: Server, dist: Dist) -> str:
    return f"{server.url}files/{dist.sha256}/{dist.filename}"


def _metric(server: Server, name: str) -> float:
    body = raw_request(server.url + "metrics")[2].decode()
    values = [float(line.split()[-1]) for line in body.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def _events(data_dir: Path, action: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    with TestDB(data_dir, readonly=True) as db:
        rows = db.execute("SELECT subject, project, payload FROM events WHERE action = ? ORDER BY serial",
                          (action,)).fetchall()
    return [(s, p, json.loads(payload) if isinstance(payload, str) else payload) for s, p, payload in rows]


def _backup_of(server: Server, dest: Path) -> None:
    """A copy of the blobs to repair from: `moorage backup` on SQLite; on PostgreSQL, whose
    database it refuses, the blob directory copied as operations.md says to."""
    if on_postgresql():
        shutil.copytree(server.data_dir / "blobs", dest / "blobs", ignore=shutil.ignore_patterns("tmp"))
    else:
        server.cli("backup", str(dest))


# -- a missing blob on the file store -------------------------------------------------------------
def test_a_file_whose_bytes_are_gone_answers_503_until_fsck_restores_it_from_a_backup(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        lost, kept = make_wheel(tmp_path / "dist", "leaky", "1.0"), make_sdist(tmp_path / "dist", "leaky", "1.0")
        _publish(server, lost, kept)
        backup = tmp_path / "backup"
        _backup_of(server, backup)
        status, out, err = fsck(server.data_dir)
        assert (status, out) == (0, "") and err.endswith(": nothing wrong\n"), err
        assert _metric(server, "moorage_missing_blobs_total") == 0

        _blob(server.data_dir, lost.sha256).unlink()
        url = _file_url(server, lost)
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-9"})):
            status, got, body = raw_request(url, method, headers)
            assert status == 503, (method, headers, status, body)
            assert got["x-moorage-rule"] == "blob-missing"
            if method == "GET":
                assert body.decode() == (f"the bytes of {lost.filename} {MISSING}; the index's operator must restore "
                                         "them (moorage admin fsck --repair), try again later\n")
        # Its metadata and the other file are served as before.
        assert raw_request(url + ".metadata")[0] == 200
        assert raw_request(_file_url(server, kept))[2] == kept.path.read_bytes()
        assert _metric(server, "moorage_missing_blobs_total") == 3
        status, _, health = raw_request(server.url + "healthz")
        assert (status, health.decode()) == (503, "blob store degraded: the bytes of 1 file(s) are missing or damaged "
                                             "(1 blob(s)); `moorage admin fsck` names them, `--repair --from-backup "
                                             "DIR` or `--from-index URL` brings them back\n")
        logged = [line for line in server.output.read_text().splitlines() if "blob-missing" in line]
        assert len(logged) == 3, logged  # one line per request, no traceback (checked at the end)
        assert all(f"file={lost.filename} sha256={lost.sha256}" in line for line in logged), logged

        status, out, err = fsck(server.data_dir)
        assert status == 1 and "missing" in out and lost.filename in out and "1 problem(s)" in err
        status, out, err = fsck(server.data_dir, "--repair", "--from-backup", str(backup))
        assert status == 0 and f"restored from the backup {backup} (sha256 checked)" in out
        assert "1 repaired, 0 left" in err

        assert raw_request(url)[2] == lost.path.read_bytes()
        assert raw_request(server.url + "healthz")[:1] == (200,)
        assert [(s, p, e["was"], e["source"]) for s, p, e in _events(server.data_dir, "blob-restored")] == [
            (f"file:{lost.filename}", "leaky", "missing", "backup")]
        assert fsck(server.data_dir)[0] == 0
    finally:
        server.stop()
    no_traceback(server.output.read_text())


def test_two_workers_report_the_store_degraded_until_fsck_restores_the_bytes_from_another_index(
        tmp_path: Path) -> None:
    """The degraded state is in the database: whichever worker answers /healthz knows it. The
    lost bytes come back from a second index serving the same file, fetched by its filename."""
    wheel = make_wheel(tmp_path / "dist", "twice", "1.0")
    other = make_wheel(tmp_path / "dist", "twice", "1.1")
    primary = start_server(tmp_path / "primary" / "data", workers=2)
    mirror = start_server(tmp_path / "mirror" / "data")
    try:
        _publish(primary, wheel, other)
        _publish(mirror, wheel)  # the same bytes under the same filename; not `other`
        _blob(primary.data_dir, wheel.sha256).unlink()
        _blob(primary.data_dir, other.sha256).unlink()
        assert raw_request(_file_url(primary, wheel))[0] == 503
        assert {raw_request(primary.url + "healthz")[0] for _ in range(12)} == {503}
        assert _metric(primary, "moorage_missing_blobs_total") == 1

        # --from-index takes the base URL or the /simple/ one.
        status, report = fsck_json(primary.data_dir, "--repair", "--from-index", mirror.simple)
        assert status == 1
        outcome = {f["subject"]: (f["kind"], f["repaired"], f["repair"]) for f in report["findings"]}
        assert outcome[wheel.filename] == ("missing", True, f"restored from the index {mirror.simple} "
                                                             "(sha256 checked)")
        assert outcome[other.filename] == ("missing", False, f"not restored: the index {mirror.simple} does not "
                                                             f"offer {other.filename}")
        assert {raw_request(primary.url + "healthz")[0] for _ in range(12)} == {503}  # one is still missing

        _publish(mirror, other)
        status, report = fsck_json(primary.data_dir, "--repair", "--from-index", mirror.url)
        assert status == 0 and [f["repaired"] for f in report["findings"]] == [True]
        assert {raw_request(primary.url + "healthz")[0] for _ in range(12)} == {200}
        for dist in (wheel, other):
            assert raw_request(_file_url(primary, dist))[2] == dist.path.read_bytes()
        assert [(s, e["source"]) for s, _p, e in _events(primary.data_dir, "blob-restored")] == [
            (f"file:{wheel.filename}", "index"), (f"file:{other.filename}", "index")]
    finally:
        primary.stop()
        mirror.stop()
    no_traceback(primary.output.read_text(), mirror.output.read_text())


# -- fsck on each kind of damage --------------------------------------------------------------------
def test_fsck_names_each_kind_of_damage_and_repair_leaves_the_store_clean(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        files = [make_wheel(tmp_path / "dist", "dented", v) for v in ("1.0", "1.1", "1.2")]
        _publish(server, *files)
    finally:
        server.stop()
    data = server.data_dir
    assert fsck_json(data)[0] == 0
    assert fsck_json(data, "--quick")[0] == 0

    missing, damaged, linked = files
    _blob(data, missing.sha256).unlink()
    blob = _blob(data, damaged.sha256)
    blob.write_bytes(bytes([blob.read_bytes()[0] ^ 1]) + blob.read_bytes()[1:])  # one bit, same size
    stray = hashlib.sha256(b"nobody's").hexdigest()
    _blob(data, stray).parent.mkdir(parents=True, exist_ok=True)
    _blob(data, stray).write_bytes(b"nobody's")
    (data / "blobs" / "tmp" / "half.part").write_bytes(b"half an upload")
    os.link(_blob(data, linked.sha256), data / "blobs" / "tmp" / "link.part")

    # Right after the damage everything is young: the leftovers may belong to uploads in progress.
    status, report = fsck_json(data)
    assert status == 1
    assert {(f["kind"], f["subject"]) for f in report["findings"]} == {
        ("missing", missing.filename), ("damaged", damaged.filename)}
    assert report["checked"]["in_progress"] == 3

    # A day later (the command's clock moved) the leftovers are damage too; the table names each.
    later = timedelta(days=2)
    status, out, err = fsck(data, offset=later)
    assert status == 1 and "5 problem(s)" in err
    for word in ("missing", "damaged", "unreferenced", "stale-temp", "temp-link", missing.filename,
                 damaged.filename, stray, "half.part", "link.part"):
        assert word in out, word
    status, quick = fsck_json(data, "--quick", offset=later)  # sizes only: the flipped bit is not seen
    assert status == 1 and {f["kind"] for f in quick["findings"]} == {"missing", "unreferenced", "stale-temp",
                                                                     "temp-link"}

    status, report = fsck_json(data, "--repair", offset=later)
    assert status == 1  # the lost and the damaged bytes need a copy
    assert {f["kind"] for f in report["findings"] if f["repaired"]} == {"unreferenced", "stale-temp", "temp-link"}
    assert not _blob(data, stray).exists() and list((data / "blobs" / "tmp").iterdir()) == []
    assert _blob(data, linked.sha256).read_bytes() == linked.path.read_bytes()
    (removed,) = _events(data, "temp-files-removed")
    assert removed[2]["count"] == 2
    (collected,) = _events(data, "blobs-collected")
    assert collected[2]["blobs"] == [stray]

    copies = tmp_path / "copies"
    for dist in (missing, damaged):
        _blob(copies, dist.sha256).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(dist.path, _blob(copies, dist.sha256))
    status, report = fsck_json(data, "--repair", "--from-backup", str(copies), offset=later)
    assert status == 0 and len(report["events"]) == 2
    status, report = fsck_json(data, offset=later)
    assert status == 0 and report["findings"] == []

    # The sources are for --repair; a source that is not there is refused before anything is checked.
    done = run_cli(data, "admin", "fsck", "--from-backup", str(copies), check=False)
    assert done.returncode == 2 and "add --repair" in done.stderr
    done = run_cli(data, "admin", "fsck", "--repair", "--from-backup", str(tmp_path / "nowhere"), check=False)
    assert done.returncode == 2 and "not a directory" in done.stderr
    no_traceback(done.stdout, done.stderr, server.output.read_text())


# -- what a start clears ---------------------------------------------------------------------------
def test_a_start_clears_temporary_files_older_than_an_hour(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        wheel = make_wheel(tmp_path / "dist", "sweepy", "1.0")
        _publish(server, wheel)
    finally:
        server.stop()
    tmp = server.data_dir / "blobs" / "tmp"
    hour_ago = (tmp / "old.part", tmp / "old-link.part")
    (tmp / "old.part").write_bytes(b"killed mid-upload")
    os.link(_blob(server.data_dir, wheel.sha256), tmp / "old-link.part")
    (tmp / "fresh.part").write_bytes(b"another host's upload, maybe")
    for path in hour_ago:
        os.utime(path, (path.stat().st_mtime - 3700, path.stat().st_mtime - 3700))

    again = start_server(server.data_dir)
    try:
        assert sorted(p.name for p in tmp.iterdir()) == ["fresh.part"]
        assert f"moorage: removed 2 temporary file(s) older than an hour from {tmp}" in again.output.read_text()
        assert raw_request(_file_url(again, wheel))[2] == wheel.path.read_bytes()  # the linked blob stays
    finally:
        again.stop()
    no_traceback(again.output.read_text())


# -- the S3 store ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    started = moto_or_skip(tmp_path_factory.mktemp("moto"))
    yield started
    started.stop()


@pytest.mark.slow
def test_the_s3_store_answers_503_for_a_lost_object_and_fsck_restores_it(moto: MotoServer, tmp_path: Path) -> None:
    s3 = moto.client()
    bucket = f"moorage-fsck-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    config = tmp_path / "moorage.toml"
    config.write_text(f'[blobs]\nstore = "s3"\nbucket = "{bucket}"\nendpoint_url = "{moto.endpoint}"\n')
    server = start_server(tmp_path / "data", config=config, extra_env=AWS_ENV)
    env = {**cli_env(server.data_dir), **AWS_ENV, "MOORAGE_CONFIG": str(config)}

    def key(sha: str) -> str:
        return f"moorage/{sha[:2]}/{sha[2:4]}/{sha}"

    try:
        lost, kept = make_wheel(tmp_path / "dist", "bucketed", "1.0"), make_wheel(tmp_path / "dist", "bucketed", "1.1")
        _publish(server, lost, kept)
        assert fsck_json(server.data_dir, env=env)[0] == 0

        s3.delete_object(Bucket=bucket, Key=key(lost.sha256))
        stray = hashlib.sha256(b"orphan").hexdigest()
        s3.put_object(Bucket=bucket, Key=key(stray), Body=b"orphan")
        url = _file_url(server, lost)
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-9"})):
            status, got, body = raw_request(url, method, headers)
            assert (status, got.get("x-moorage-rule")) == (503, "blob-missing"), (method, headers, status, body)
            if method == "GET":
                assert f"the bytes of {lost.filename} {MISSING}" in body.decode()
        assert raw_request(url + ".metadata")[0] == 200
        assert raw_request(_file_url(server, kept))[2] == kept.path.read_bytes()
        assert _metric(server, "moorage_missing_blobs_total") == 3
        assert raw_request(server.url + "healthz")[0] == 503

        status, report = fsck_json(server.data_dir, offset=timedelta(days=2), env=env)
        assert status == 1 and {(f["kind"], f["subject"]) for f in report["findings"]} == {
            ("missing", lost.filename), ("unreferenced", stray)}
        copies = tmp_path / "copies"
        _blob(copies, lost.sha256).parent.mkdir(parents=True)
        shutil.copy(lost.path, _blob(copies, lost.sha256))
        status, report = fsck_json(server.data_dir, "--repair", "--from-backup", str(copies),
                                   offset=timedelta(days=2), env=env)
        assert status == 0, report
        assert s3.get_object(Bucket=bucket, Key=key(lost.sha256))["Body"].read() == lost.path.read_bytes()
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=key(stray))
        assert raw_request(url)[2] == lost.path.read_bytes()
        assert raw_request(server.url + "healthz")[0] == 200
        assert fsck_json(server.data_dir, env=env)[0] == 0
    finally:
        server.stop()
    no_traceback(server.output.read_text())
