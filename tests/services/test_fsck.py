"""`moorage admin fsck` (services/fsck.py) on SQLite and PostgreSQL with the file store.

Each kind of damage is made by hand in the blob directory; ages are file times set relative to
the test's clock. The same against the real server, the S3 store and another index is in
tests/e2e/test_fsck.py.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from moorage.domain.clock import ManualClock
from moorage.domain.events import PUBLIC_ACTIONS
from moorage.services import deletion, fsck
from moorage.services.context import Context
from moorage.store.blobs import FileBlobStore
from moorage.store.tables import blob_faults, files, log_entries
from tests.services.helpers import all_events, upload
from tests.support.dists import Dist, make_sdist, make_wheel


@pytest.fixture
def index(ctx: Context, token: str, dists: Path) -> dict[str, Dist]:
    got = {"wheel": make_wheel(dists, "Sound", "1.0"), "sdist": make_sdist(dists, "Sound", "1.0"),
           "other": make_wheel(dists, "Sound", "1.1")}
    for dist in got.values():
        upload(ctx, token, dist)
    return got


def _store(ctx: Context) -> FileBlobStore:
    assert isinstance(ctx.blobs, FileBlobStore)
    return ctx.blobs


def _age(ctx: Context, path: Path, delta: timedelta) -> None:
    """Make the file look written ``delta`` before the test clock's now."""
    when = (ctx.clock.now() - delta).timestamp()
    os.utime(path, (when, when), follow_symlinks=False)


def _metadata_sha(ctx: Context, filename: str) -> str:
    with ctx.db.read() as conn:
        return str(conn.execute(sa.select(files.c.metadata_sha256).where(files.c.filename == filename)).scalar_one())


def _kinds(report: fsck.Report) -> list[tuple[str, str]]:
    return [(f.kind, f.subject) for f in report.findings]


def _faults(ctx: Context) -> dict[str, str]:
    with ctx.db.read() as conn:
        return {r.filename: r.kind for r in conn.execute(sa.select(blob_faults))}


def _actions(ctx: Context) -> list[str]:
    return [e.action for e in all_events(ctx)]


def test_a_clean_index_has_nothing_wrong(ctx: Context, index: dict[str, Dist]) -> None:
    for quick in (False, True):
        report = fsck.fsck(ctx, quick=quick)
        assert report.ok and report.findings == []
        assert (report.files, report.deleted_files) == (3, 0)
        assert report.referenced_blobs == 6  # three files and their metadata
        assert report.blobs_in_store == 6
        files_bytes = sum(len(d.path.read_bytes()) for d in index.values())
        assert report.hashed_bytes == 0 if quick else report.hashed_bytes > files_bytes  # and the metadata
        assert report.log_size == report.events == len(all_events(ctx)) > 0
    with ctx.db.read() as conn:
        assert fsck.degraded(conn) == (0, 0)


def test_missing_bytes_are_found_named_and_kept_for_healthz(ctx: Context, index: dict[str, Dist]) -> None:
    wheel = index["wheel"]
    _store(ctx).path(wheel.sha256).unlink()
    meta = _metadata_sha(ctx, index["sdist"].filename)
    _store(ctx).path(meta).unlink()

    for quick in (True, False):
        report = fsck.fsck(ctx, quick=quick)
        assert not report.ok
        assert set(_kinds(report)) == {("missing", index["sdist"].filename + ".metadata"),
                                       ("missing", wheel.filename)}
        assert wheel.sha256 in next(f.detail for f in report.findings if f.subject == wheel.filename)
        assert _faults(ctx) == {wheel.filename: "missing", index["sdist"].filename + ".metadata": "missing"}
        with ctx.db.read() as conn:
            assert fsck.degraded(conn) == (2, 2)

    # --repair without a source says what it needs, removes nothing and records nothing.
    before = _actions(ctx)
    report = fsck.fsck(ctx, repair=True)
    assert [f.repair for f in report.findings] == ["not restored: give a copy with --from-backup DIR or "
                                                   "--from-index URL"] * 2
    assert _actions(ctx) == before


def test_bytes_of_a_deleted_file_in_retention_are_checked_and_purged_ones_are_not(
        ctx: Context, index: dict[str, Dist], clock: ManualClock) -> None:
    gone = index["other"]
    deletion.delete(ctx, "sound", "1.1", gone.filename, reason="test", as_user=None)
    _store(ctx).path(gone.sha256).unlink()
    report = fsck.fsck(ctx)
    assert _kinds(report) == [("missing", gone.filename)]
    assert report.deleted_files == 1

    # Past retention, purge removes the rest of its bytes and says so: nothing is missing then.
    clock.advance(ctx.settings.lifecycle.retention + timedelta(days=1))
    assert deletion.purge(ctx) == [gone.filename]
    report = fsck.fsck(ctx)
    assert report.ok, _kinds(report)
    assert report.purged_blobs == 2
    assert _faults(ctx) == {}


def test_damaged_bytes_are_found_by_their_hash_and_by_size_when_quick(ctx: Context, index: dict[str, Dist]) -> None:
    wheel, sdist = index["wheel"], index["sdist"]
    path = _store(ctx).path(wheel.sha256)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    _store(ctx).path(sdist.sha256).write_bytes(b"short")

    report = fsck.fsck(ctx)
    assert set(_kinds(report)) == {("damaged", sdist.filename), ("damaged", wheel.filename)}
    assert "do not match their sha256" in next(f.detail for f in report.findings if f.subject == wheel.filename)
    assert _faults(ctx) == {wheel.filename: "damaged", sdist.filename: "damaged"}

    quick = fsck.fsck(ctx, quick=True)  # sizes only: the flipped byte is not seen, the short blob is
    assert _kinds(quick) == [("damaged", sdist.filename)]
    assert "5 bytes, the database says" in quick.findings[0].detail
    assert _faults(ctx) == {wheel.filename: "damaged", sdist.filename: "damaged"}  # kept for a full run


def test_repair_restores_missing_and_damaged_bytes_from_a_backup_after_checking_them(
        ctx: Context, index: dict[str, Dist], tmp_path: Path) -> None:
    wheel, sdist = index["wheel"], index["sdist"]
    copy = tmp_path / "copy"
    shutil.copytree(_store(ctx).root, copy / "blobs", ignore=shutil.ignore_patterns("tmp"))
    _store(ctx).path(wheel.sha256).unlink()
    _store(ctx).path(sdist.sha256).write_bytes(b"damaged")
    # A third blob is missing, and the backup's copy of it is damaged too: it is not used.
    other = index["other"]
    _store(ctx).path(other.sha256).unlink()
    (copy / "blobs" / other.sha256[:2] / other.sha256[2:4] / other.sha256).write_bytes(b"also damaged")
    fsck.fsck(ctx)
    with ctx.db.read() as conn:
        assert fsck.degraded(conn) == (3, 3)

    report = fsck.fsck(ctx, repair=True, from_backup=copy)
    repairs = {f.subject: (f.repaired, f.repair) for f in report.findings}
    assert repairs[wheel.filename] == (True, f"restored from the backup {copy} (sha256 checked)")
    assert repairs[sdist.filename][0] is True
    assert repairs[other.filename] == (False, f"not restored: the copy in {copy} does not match the sha256")
    assert not report.ok and [f.subject for f in report.damage] == [other.filename]
    assert _store(ctx).path(wheel.sha256).read_bytes() == wheel.path.read_bytes()
    assert _store(ctx).path(sdist.sha256).read_bytes() == sdist.path.read_bytes()
    assert not _store(ctx).path(other.sha256).exists()
    assert list(_store(ctx).tmp.iterdir()) == []  # the rejected copy is not left behind

    restored = [e for e in all_events(ctx) if e.action == "blob-restored"]
    assert {(e.subject, e.project, e.payload["was"], e.payload["source"], e.payload["blob"]) for e in restored} == {
        (f"file:{sdist.filename}", "sound", "damaged", "backup", "file"),
        (f"file:{wheel.filename}", "sound", "missing", "backup", "file")}
    assert "blob-restored" in PUBLIC_ACTIONS
    assert _faults(ctx) == {other.filename: "missing"}
    with ctx.db.read() as conn:
        assert fsck.degraded(conn) == (1, 1)

    # The rest from a plain copy of the blob directory (DIR/aa/bb/<sha256>), then all is well.
    plain = tmp_path / "plain"
    (plain / other.sha256[:2] / other.sha256[2:4]).mkdir(parents=True)
    shutil.copy(other.path, plain / other.sha256[:2] / other.sha256[2:4] / other.sha256)
    assert fsck.fsck(ctx, repair=True, from_backup=plain).ok
    assert fsck.fsck(ctx).ok
    with ctx.db.read() as conn:
        assert fsck.degraded(conn) == (0, 0)


def test_unreferenced_blobs_are_reported_after_an_hour_and_removed_after_a_day(
        ctx: Context, index: dict[str, Dist]) -> None:
    store = _store(ctx)
    young, middle, old = (FileBlobStore.path(store, c * 64) for c in "abc")
    for path in (young, middle, old):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"nobody's bytes")
    _age(ctx, middle, timedelta(hours=3))
    _age(ctx, old, timedelta(days=2))

    report = fsck.fsck(ctx)
    assert _kinds(report) == [("unreferenced", "b" * 64), ("unreferenced", "c" * 64)]
    assert report.in_progress == 1  # the young one: an upload may be about to commit it

    report = fsck.fsck(ctx, repair=True)
    repairs = {f.subject: (f.repaired, f.repair) for f in report.findings}
    assert repairs["c" * 64] == (True, "removed")
    assert repairs["b" * 64][0] is False and repairs["b" * 64][1].startswith("kept until ")
    assert young.exists() and middle.exists() and not old.exists()
    collected = [e for e in all_events(ctx) if e.action == "blobs-collected"]
    assert [(e.payload["count"], e.payload["blobs"], e.project) for e in collected] == [(1, ["c" * 64], None)]
    assert "blobs-collected" not in PUBLIC_ACTIONS
    assert fsck.fsck(ctx).ok is False  # the middle one is still there, and still reported


def test_repair_never_removes_a_blob_a_file_uses(ctx: Context, index: dict[str, Dist],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The references are checked again inside the collecting transaction: a file committed
    after fsck read them (here: a reading that missed one) keeps its bytes."""
    wheel = index["wheel"]
    _age(ctx, _store(ctx).path(wheel.sha256), timedelta(days=3))
    real = fsck.read_references

    def stale_read(conn: sa.Connection) -> tuple[object, object]:
        refs, uses = real(conn)
        refs.blobs.pop(wheel.sha256)
        uses.pop(wheel.sha256)
        return refs, uses

    monkeypatch.setattr(fsck, "read_references", stale_read)
    report = fsck.fsck(ctx, repair=True)
    assert [(f.kind, f.subject, f.repair) for f in report.findings] == [
        ("unreferenced", wheel.sha256, "kept: a file committed meanwhile uses it")]
    assert _store(ctx).path(wheel.sha256).read_bytes() == wheel.path.read_bytes()
    assert "blobs-collected" not in _actions(ctx)


def test_stale_temporary_files_and_hard_links_are_found_and_removed(ctx: Context, index: dict[str, Dist]) -> None:
    store = _store(ctx)
    fresh = store.tmp / "fresh.part"
    fresh.write_bytes(b"an upload in progress")
    stale = store.tmp / "stale.part"
    stale.write_bytes(b"half an upload")
    link = store.tmp / "link.part"
    os.link(store.path(index["wheel"].sha256), link)  # what an upload killed before `settle` leaves
    _age(ctx, stale, timedelta(hours=2))
    _age(ctx, link, timedelta(hours=2))

    report = fsck.fsck(ctx)
    assert _kinds(report) == [("temp-link", "link.part"), ("stale-temp", "stale.part")]
    assert f"a hard link to the blob {index['wheel'].sha256} (the bytes of {index['wheel'].filename})" in \
        report.findings[0].detail
    assert report.temp_files == 3 and report.in_progress == 1

    report = fsck.fsck(ctx, repair=True)
    assert report.ok and all(f.repair == "removed" for f in report.findings)
    assert sorted(p.name for p in store.tmp.iterdir()) == ["fresh.part"]
    assert store.path(index["wheel"].sha256).read_bytes() == index["wheel"].path.read_bytes()  # the blob stays
    removed = [e for e in all_events(ctx) if e.action == "temp-files-removed"]
    assert [(e.payload["count"], sorted(e.payload["files"])) for e in removed] == [(2, ["link.part", "stale.part"])]
    assert fsck.fsck(ctx).ok


def drop_append_only_guard(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only"))
    else:
        conn.execute(sa.text("DROP TRIGGER log_entries_no_update"))
        conn.execute(sa.text("DROP TRIGGER log_entries_no_delete"))


def test_the_log_is_checked_against_the_events(ctx: Context, index: dict[str, Dist]) -> None:
    assert fsck.fsck(ctx).ok
    with ctx.db.write() as conn:  # storage damage: a leaf's entry rewritten, another entry gone
        drop_append_only_guard(conn)  # by someone holding the database, who can drop the guard first
        first = conn.execute(sa.select(log_entries).order_by(log_entries.c.idx).limit(1)).one()
        conn.execute(log_entries.update().where(log_entries.c.idx == first.idx)
                     .values(entry=first.entry.replace(b'"actor":"', b'"actor":"x')))
        top = conn.execute(sa.select(sa.func.max(log_entries.c.idx))).scalar_one()
        conn.execute(log_entries.delete().where(log_entries.c.idx == top))
    report = fsck.fsck(ctx)
    details = [f.detail for f in report.findings if f.kind == "log"]
    assert "the log entry 0 does not match its leaf hash" in details
    assert any(d.startswith("the log entry 0 is not what event") for d in details)
    assert any(d.startswith("event ") and d.endswith("has no log entry") for d in details)
    assert any(d.startswith("the log's state says") for d in details)
    assert not report.ok and not fsck.fsck(ctx, repair=True).ok  # nothing to repair it with


def test_a_download_notes_missing_bytes_until_fsck_finds_them(ctx: Context, index: dict[str, Dist]) -> None:
    wheel = index["wheel"]
    assert fsck.note_missing(ctx, wheel.sha256, wheel.filename) is True
    assert fsck.note_missing(ctx, wheel.sha256, wheel.filename) is False  # once
    with ctx.db.read() as conn:
        assert fsck.degraded(conn) == (1, 1)
    assert fsck.fsck(ctx).ok  # the bytes are there after all
    with ctx.db.read() as conn:
        assert fsck.degraded(conn) == (0, 0)


def test_a_repair_source_that_cannot_be_used_is_refused(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(fsck.FsckRefused, match="not a directory"):
        fsck.fsck(ctx, repair=True, from_backup=tmp_path / "nowhere")
    with pytest.raises(fsck.FsckRefused, match="http"):
        fsck.fsck(ctx, repair=True, from_index="ftp://example.invalid/")
