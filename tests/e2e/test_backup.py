"""`moorage backup` while a real server serves and uploads keep arriving, then
`moorage restore-backup` into a fresh data directory: a server starts on it, serves every
file of the backup's moment byte for byte, its log verifies, and uploads continue. And the
refusals: a tampered blob, a data directory with a database, PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import pytest

from moorage.config import Settings
from moorage.log.keys import load_or_create
from moorage.log.verify import verify as verify_client
from moorage.services import deletion
from moorage.services.context import open_context
from moorage.store.database import Database
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.index import small_index
from tests.support.server import Server, cli_env, run_cli, start_server
from tests.support.upload import post_upload

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

JSON_V1 = {"Accept": "application/vnd.pypi.simple.v1+json"}


def served(server: Server, project: str) -> dict[str, str]:
    """filename -> sha256 of the bytes actually downloaded, for every file the index offers."""
    url = server.simple + project + "/"
    try:
        page = json.loads(urllib.request.urlopen(urllib.request.Request(url, headers=JSON_V1), timeout=30).read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise
    out = {}
    for f in page["files"]:
        data = urllib.request.urlopen(urljoin(url, f["url"]), timeout=30).read()
        assert hashlib.sha256(data).hexdigest() == f["hashes"]["sha256"]
        out[f["filename"]] = hashlib.sha256(data).hexdigest()
    return out


def verify(server: Server, key: str, state: Path) -> None:
    """`moorage verify --files` as a client, in a subprocess."""
    result = run_cli(server.data_dir, "verify", "--index", server.url, "--key", key, "--state", str(state),
                     "--files", check=False)
    assert result.returncode == 0 and "ok: the index agrees with its log" in result.stdout, result.stdout


def verify_here(server: Server, key: str, state: Path) -> None:
    """The same client in this process (saves a start-up)."""
    report = verify_client(server.url, key=key, state_file=state, files=True)
    assert report.ok, report.findings


def as_operator(data_dir: Path, action: object, *args: object, **kwargs: object) -> object:
    """A service called as the operator's CLI would, on a data directory a server is serving."""
    ctx = open_context(Settings(data_dir=data_dir))
    try:
        return action(ctx, *args, **kwargs)  # type: ignore[operator]
    finally:
        ctx.close()


def test_a_backup_taken_under_uploads_restores_into_a_working_index(tmp_path: Path) -> None:
    dists = tmp_path / "dist"
    live = start_server(tmp_path / "live" / "data")
    accepted: dict[str, tuple[str, float]] = {}  # filename -> (sha256, when the upload returned)
    stop, failures = threading.Event(), []
    try:
        token = live.admin_token
        first = [make_wheel(dists, "steady", "1.0"), make_sdist(dists, "steady", "1.0"),
                 make_wheel(dists, "steady", "1.1")]
        for d in first:
            assert post_upload(live.legacy, token, d.path)[0] == 200
            accepted[d.filename] = (d.sha256, time.monotonic())
        # A deleted file: its bytes are kept for retention, so the backup keeps them too.
        as_operator(live.data_dir, deletion.delete, "steady", "1.1", first[2].filename, reason="kept for restore")
        key = load_or_create(live.data_dir / "log-signing-key").verifier.vkey()
        state = tmp_path / "verify-state"
        verify_here(live, key, state)  # the client has seen the log up to here

        def keep_uploading() -> None:
            for i in range(10_000):
                if stop.is_set():
                    return
                dist = make_wheel(dists, "busy", f"2.{i}")
                status, reason, body = post_upload(live.legacy, token, dist.path)
                if status != 200:
                    failures.append(f"{dist.filename}: {status} {reason} {body}")
                    return
                accepted[dist.filename] = (dist.sha256, time.monotonic())

        uploader = threading.Thread(target=keep_uploading)
        uploader.start()
        while len(accepted) < 6 and uploader.is_alive():
            time.sleep(0.01)
        started = time.monotonic()
        backup = live.cli("backup", str(tmp_path / "backup"))
        finished = time.monotonic()
        while sum(t > finished for _, t in accepted.values()) < 2 and uploader.is_alive():
            time.sleep(0.01)
        stop.set()
        uploader.join(30)
        assert not failures, failures
        during = [f for f, (_, t) in accepted.items() if started < t < finished]
        assert during, "no upload was accepted while the backup ran"
    finally:
        stop.set()
        live.stop()
    assert "backed up" in backup.stderr

    fresh = tmp_path / "restored" / "data"
    restored = run_cli(fresh, "restore-backup", str(tmp_path / "backup"))
    assert "restored" in restored.stderr and "log-signing-key" in restored.stderr
    again = start_server(fresh)
    try:
        offered = {**served(again, "steady"), **served(again, "busy")}
        manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
        assert len(offered) + 1 == manifest["counts"]["files"]  # the deleted file is not offered
        # Every file accepted before the backup began is there, byte for byte; none accepted
        # after it ended is; a file the index offers is always the accepted bytes.
        for filename, (sha, when) in accepted.items():
            if filename == first[2].filename:
                continue
            if when < started:
                assert offered.get(filename) == sha, filename
            elif when > finished:
                assert filename not in offered
        assert all(accepted[f][0] == sha for f, sha in offered.items())
        # The same log, signed with the same key, extends what the client saw before.
        verify(again, key, state)
        # The deleted file's bytes came along: the operator can still bring it back.
        as_operator(fresh, deletion.restore, "steady", "1.1", first[2].filename, reason="after the restore")
        assert served(again, "steady")[first[2].filename] == first[2].sha256
        # Uploads continue, with the token issued before the backup.
        later = make_wheel(dists, "steady", "3.0")
        assert post_upload(again.legacy, token, later.path)[0] == 200
        assert served(again, "steady")[later.filename] == later.sha256
        verify_here(again, key, state)
    finally:
        again.stop()


@pytest.fixture
def small_backup(tmp_path: Path) -> tuple[Path, Dist]:
    """A backup (made by the CLI) of a small index built in-process: (its path, one wheel)."""
    settings, wheel = small_index(tmp_path)
    run_cli(settings.data_dir, "backup", str(tmp_path / "backup"))
    return tmp_path / "backup", wheel


def test_restore_refuses_a_tampered_blob_and_writes_nothing(tmp_path: Path, small_backup: tuple[Path, Dist]) -> None:
    backup, wheel = small_backup
    blob = backup / "blobs" / wheel.sha256[:2] / wheel.sha256[2:4] / wheel.sha256
    blob.write_bytes(blob.read_bytes() + b"\0")
    target = tmp_path / "target"
    result = run_cli(target, "restore-backup", str(backup), check=False)
    assert result.returncode == 1, result.stderr
    assert f"moorage: restore-backup failed: {wheel.filename}: its blob {wheel.sha256} in the backup does not " \
           "match its sha256" in result.stderr
    assert not target.exists()


def test_restore_refuses_a_data_directory_with_a_database(tmp_path: Path, small_backup: tuple[Path, Dist]) -> None:
    backup, _ = small_backup
    target = tmp_path / "target"
    db = Database(Settings(data_dir=target).db_url)
    db.upgrade()
    db.dispose()
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    result = run_cli(target, "restore-backup", str(backup), check=False)
    assert result.returncode == 2
    assert "moorage.db already exists: restore-backup never overwrites a database" in result.stderr
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before


def test_backup_refuses_postgresql_with_the_reason(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    env["MOORAGE_DATABASE_URL"] = "postgresql+psycopg://moorage:secret@127.0.0.1:1/moorage"
    result = run_cli(tmp_path / "data", "backup", str(tmp_path / "backup"), check=False, env=env)
    assert result.returncode == 2
    assert "moorage: backup refused: backup and restore-backup cover the embedded default (SQLite and the blob " \
           "directory) only; the configured database_url is postgresql" in result.stderr
    assert "secret" not in result.stderr
    assert not (tmp_path / "backup").exists()
