"""The index's own projects as a source, and the opt-in root of pending removals around it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.services import lifecycle, removal
from moorage.services.context import Context
from moorage.services.deletion import delete
from moorage.sources import LocalBytes, LocalSource, PendingSource
from tests.services.helpers import all_events, upload
from tests.support.dists import Dist, make_sdist, make_wheel


@pytest.fixture
def leaving(ctx: Context, token: str, dists: Path) -> tuple[Dist, Dist]:
    wheel, sdist = make_wheel(dists, "leaving", "1.0"), make_sdist(dists, "leaving", "1.0")
    upload(ctx, token, wheel)
    upload(ctx, token, sdist)
    upload(ctx, token, make_wheel(dists, "staying", "2.0"))
    return wheel, sdist


def test_the_local_source_offers_the_projects_their_files_and_their_bytes(
        ctx: Context, leaving: tuple[Dist, Dist]) -> None:
    wheel, sdist = leaving
    local = LocalSource(ctx.db, ctx.blobs)
    now = ctx.clock.now()
    listed = local.project_list()
    assert listed.projects == [("leaving", "leaving"), ("staying", "staying")]
    assert listed.serial == all_events(ctx)[-1].serial
    page = local.project("leaving", now)
    assert page is not None and page.until is None
    assert sorted(f.filename for f in page.view.files) == sorted([wheel.filename, sdist.filename])
    assert [r.version for r in page.view.releases] == ["1.0"]
    assert local.project("nothing-here", now) is None

    found = local.file(wheel.filename, now)
    assert found is not None and (found.project, found.until, found.file.sha256) == ("leaving", None, wheel.sha256)
    data = local.locate(found)
    assert isinstance(data, LocalBytes) and data.path.read_bytes() == wheel.path.read_bytes()
    metadata = local.locate(found, metadata=True)
    assert isinstance(metadata, LocalBytes) and metadata.path.read_bytes().startswith(b"Metadata-Version:")
    assert local.file("leaving-9.9.tar.gz", now) is None


def test_what_changed_since_a_serial_most_recent_first(ctx: Context, token: str, dists: Path,
                                                       leaving: tuple[Dist, Dist]) -> None:
    local = LocalSource(ctx.db, ctx.blobs)
    start = local.changes_since(0)
    assert start.projects == ("staying", "leaving")  # every project, the most recently changed first
    assert local.changes_since(start.serial).projects == ()
    upload(ctx, token, make_wheel(dists, "leaving", "1.1"))
    later = local.changes_since(start.serial)
    assert later.projects == ("leaving",) and later.serial == all_events(ctx)[-1].serial


def test_the_record_keeps_what_the_offer_leaves_out(ctx: Context, leaving: tuple[Dist, Dist]) -> None:
    wheel, _sdist = leaving
    local = LocalSource(ctx.db, ctx.blobs)
    delete(ctx, "leaving", "1.0", wheel.filename, as_user="alice")
    lifecycle.quarantine_release(ctx, "staying", "2.0", reason="under review")
    now = ctx.clock.now()
    offered = local.project("leaving", now)
    assert offered is not None and wheel.filename not in [f.filename for f in offered.view.files]
    record = local.record("leaving", now)
    assert record is not None
    assert [(f.filename, f.deleted_at is not None) for f in record.files if f.filename == wheel.filename] == [
        (wheel.filename, True)]
    assert local.file(wheel.filename, now) is None
    held = local.record("staying", now)
    assert held is not None and [r.quarantined for r in held.releases] == [True]
    staying = local.project("staying", now)
    assert staying is not None and staying.view.files == [] and staying.view.releases == []


def test_the_pending_root_offers_what_a_removal_in_effect_withholds(
        ctx: Context, clock: ManualClock, leaving: tuple[Dist, Dist]) -> None:
    wheel, sdist = leaving
    local = LocalSource(ctx.db, ctx.blobs)
    pending = PendingSource(local)
    removal.announce_removal(ctx, "leaving", as_user="alice")
    at = clock.now() + timedelta(days=30)

    # Announced: both roots offer the files; the default root's answer holds until the instant.
    before = local.project("leaving", clock.now())
    assert before is not None and before.until == at and len(before.view.files) == 2
    found = local.file(wheel.filename, clock.now())
    assert found is not None and found.until == at
    opted = pending.project("leaving", clock.now())
    assert opted is not None and opted.until is None and opted.view.files == before.view.files
    opted_file = pending.file(wheel.filename, clock.now())
    assert opted_file is not None and opted_file.until is None

    # In effect: the default root keeps the name and status, and withholds files and versions.
    clock.advance(timedelta(days=30))
    after = local.project("leaving", clock.now())
    assert after is not None and after.until is None
    assert (after.view.files, after.view.releases, after.view.removal_at) == ([], [], at)
    assert local.file(wheel.filename, clock.now()) is None
    assert local.file(sdist.filename, clock.now()) is None
    # ... which the pending root offers, with their bytes, and keeps every other project as it was.
    opted = pending.project("leaving", clock.now())
    assert opted is not None and opted.until is None
    assert sorted(f.filename for f in opted.view.files) == sorted([wheel.filename, sdist.filename])
    assert [r.version for r in opted.view.releases] == ["1.0"]
    opted_file = pending.file(sdist.filename, clock.now())
    assert opted_file is not None and opted_file.project == "leaving"
    data = pending.locate(opted_file)
    assert isinstance(data, LocalBytes) and data.path.read_bytes() == sdist.path.read_bytes()
    assert pending.project("staying", clock.now()) == local.project("staying", clock.now())
    assert pending.project_list() == local.project_list()
    assert pending.changes_since(0) == local.changes_since(0)
    assert pending.record("leaving", clock.now()) == local.record("leaving", clock.now())
