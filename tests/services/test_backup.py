"""Backup and restore of the embedded default (services/backup.py), in-process on SQLite.

The same with a live server and uploads arriving is in tests/e2e/test_backup.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from moorage.config import Settings
from moorage.domain.clock import ManualClock
from moorage.log.keys import load_or_create
from moorage.services import accounts, backup, deletion
from moorage.services.context import Context, open_context
from moorage.store.database import Database
from tests.services.conftest import START
from tests.services.helpers import snapshot, upload
from tests.support.dists import Dist, make_sdist, make_wheel


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Context]:
    """An embedded index (SQLite + blobs) with a log key and a web secret."""
    settings = Settings(data_dir=tmp_path / "live")
    ctx = open_context(settings, ManualClock(START), migrate=True)
    load_or_create(settings.log_key_file)
    (settings.data_dir / "web-secret").write_bytes(b"s" * 32)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def uploaded(live: Context, dists: Path) -> dict[str, Dist]:
    accounts.add_user(live, "alice", password=None)
    token = accounts.create_token(live, "alice")[1]
    files = {"wheel": make_wheel(dists, "Kept", "1.0"), "sdist": make_sdist(dists, "Kept", "1.0"),
             "gone": make_wheel(dists, "Kept", "2.0")}
    for dist in files.values():
        upload(live, token, dist)
    deletion.delete(live, "kept", "2.0", files["gone"].filename, reason="test", as_user=None)
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _blob(root: Path, sha: str) -> Path:
    return root / sha[:2] / sha[2:4] / sha


def test_a_backup_restores_every_row_every_blob_and_the_keys(live: Context, uploaded: dict[str, Dist],
                                                             tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    done = backup.backup(live.settings, dest)
    # Two wheels and an sdist with their metadata files; the deleted wheel's bytes too.
    assert (done.files, done.deleted_files, done.blobs, done.purged_blobs) == (3, 1, 6, 0)
    assert done.keys == ("log-signing-key", "web-secret")
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["database"]["sha256"] == hashlib.sha256((dest / "moorage.db").read_bytes()).hexdigest()
    assert manifest["counts"] == {"files": 3, "deleted_files": 1, "blobs": 6, "purged_blobs": 0}
    assert manifest["total_bytes"] == done.total_bytes > 0
    assert (dest / "log-signing-key").stat().st_mode & 0o777 == 0o600

    target = Settings(data_dir=tmp_path / "restored")
    restored = backup.restore(target, dest)
    assert (restored.files, restored.blobs, restored.total_bytes) == (3, 6, done.total_bytes)
    again = open_context(target, ManualClock(START))
    try:
        assert snapshot(again) == snapshot(live)
        live_blobs = {k: v for k, v in _tree(live.settings.blob_dir).items() if not k.startswith("tmp")}
        assert {k: v for k, v in _tree(target.blob_dir).items() if not k.startswith("tmp")} == live_blobs
        for name in ("log-signing-key", "web-secret"):
            assert (target.data_dir / name).read_bytes() == (live.settings.data_dir / name).read_bytes()
            assert (target.data_dir / name).stat().st_mode & 0o777 == 0o600
        # The deleted file's bytes came along: an admin can still restore it.
        gone = uploaded["gone"].filename
        assert deletion.restore(again, "kept", "2.0", gone, reason="test") == [gone]
    finally:
        again.close()


def test_a_tampered_blob_is_refused_naming_the_file_and_nothing_is_written(
        live: Context, uploaded: dict[str, Dist], tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    backup.backup(live.settings, dest)
    victim = _blob(dest / "blobs", uploaded["sdist"].sha256)
    victim.write_bytes(victim.read_bytes()[:-1] + b"X")
    target = Settings(data_dir=tmp_path / "restored")
    with pytest.raises(backup.BackupFailed, match=rf"{uploaded['sdist'].filename}: its blob .* does not match"):
        backup.restore(target, dest)
    assert not target.data_dir.exists()
    target.data_dir.mkdir()  # an empty directory stays empty
    with pytest.raises(backup.BackupFailed):
        backup.restore(target, dest)
    assert list(target.data_dir.iterdir()) == []


def test_a_damaged_database_or_a_missing_manifest_is_refused(live: Context, uploaded: dict[str, Dist],
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    backup.backup(live.settings, dest)
    target = Settings(data_dir=tmp_path / "restored")
    db = dest / "moorage.db"
    original = db.read_bytes()
    db.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(backup.BackupFailed, match="does not match the sha256 in the manifest"):
        backup.restore(target, dest)
    db.write_bytes(original)
    _blob(dest / "blobs", uploaded["wheel"].sha256).unlink()
    with pytest.raises(backup.BackupFailed, match=rf"{uploaded['wheel'].filename}: its blob .* is missing"):
        backup.restore(target, dest)
    (dest / "manifest.json").unlink()
    with pytest.raises(backup.BackupFailed, match="no manifest.json: .* did not finish"):
        backup.restore(target, dest)
    assert not target.data_dir.exists()


def test_restore_never_overwrites_a_database_or_another_key(live: Context, uploaded: dict[str, Dist],
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    backup.backup(live.settings, dest)
    with pytest.raises(backup.BackupRefused, match="moorage.db already exists: restore-backup never overwrites"):
        backup.restore(live.settings, dest)
    other = Settings(data_dir=tmp_path / "other")
    load_or_create(other.log_key_file)  # a different key, and no database yet
    before = _tree(other.data_dir)
    with pytest.raises(backup.BackupRefused, match="log-signing-key already exists and holds another key"):
        backup.restore(other, dest)
    assert _tree(other.data_dir) == before


def test_backup_refuses_postgresql_and_a_destination_that_is_not_empty(live: Context, tmp_path: Path) -> None:
    pg = Settings(data_dir=tmp_path / "pg", database_url="postgresql+psycopg://moorage:secret@db.example/moorage")
    with pytest.raises(backup.BackupRefused, match="embedded default .* database_url is postgresql") as refused:
        backup.backup(pg, tmp_path / "b")
    assert "secret" not in str(refused.value)
    with pytest.raises(backup.BackupRefused, match="postgresql"):
        backup.restore(pg, tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("mine")
    with pytest.raises(backup.BackupRefused, match="is not empty"):
        backup.backup(live.settings, full)
    assert _tree(full) == {"keep": b"mine"}
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(backup.BackupRefused, match="is not a directory"):
        backup.backup(live.settings, afile)
    assert not (tmp_path / "b").exists()


def test_purged_bytes_are_accepted_as_missing_and_other_missing_bytes_fail(
        live: Context, uploaded: dict[str, Dist], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(live.clock, ManualClock)
    live.clock.advance(live.settings.lifecycle.retention + timedelta(days=1))
    gone = uploaded["gone"].filename
    assert deletion.purge(live) == [gone]
    done = backup.backup(live.settings, tmp_path / "one")
    assert (done.blobs, done.purged_blobs) == (4, 2)  # the wheel and its metadata
    restored = backup.restore(Settings(data_dir=tmp_path / "r1"), tmp_path / "one")
    assert (restored.blobs, restored.purged_blobs) == (4, 2)

    # A blob the database does not say was purged: the backup fails, naming the file, and
    # leaves nothing behind.
    monkeypatch.setattr(backup, "_SETTLE_WAIT", 0.1)
    _blob(live.settings.blob_dir, uploaded["wheel"].sha256).unlink()
    with pytest.raises(backup.BackupFailed, match=rf"{uploaded['wheel'].filename}: the blob .* is missing"):
        backup.backup(live.settings, tmp_path / "two")
    assert not (tmp_path / "two").exists()


def test_a_purge_after_the_snapshot_fails_the_backup_with_a_retry_hint(
        live: Context, uploaded: dict[str, Dist], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(live.clock, ManualClock)
    live.clock.advance(live.settings.lifecycle.retention + timedelta(days=1))
    snapshot_then_purge = backup.snapshot

    def snap(db_path: Path, target: Path) -> None:
        snapshot_then_purge(db_path, target)
        deletion.purge(live)

    monkeypatch.setattr(backup, "snapshot", snap)
    with pytest.raises(backup.BackupFailed, match=rf"{uploaded['gone'].filename}: its bytes were purged .* again"):
        backup.backup(live.settings, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_backup_of_an_older_schema_is_migrated_on_restore(tmp_path: Path) -> None:
    old = Settings(data_dir=tmp_path / "old")
    old.data_dir.mkdir()
    db = Database(old.db_url)
    db.upgrade("0004")
    db.dispose()
    backup.backup(old, tmp_path / "b")
    target = Settings(data_dir=tmp_path / "new")
    restored = backup.restore(target, tmp_path / "b")
    head = Database(target.db_url)
    try:
        assert restored.previous_revision == "0004"
        assert restored.revision == head.head_revision() == head.current_revision()
    finally:
        head.dispose()
    assert sorted(p.name for p in target.data_dir.iterdir()) == ["blobs", "moorage.db"]  # no -wal, no temp
