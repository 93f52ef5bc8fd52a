"""Delete within the window, tombstones, the one-way switch and restore as it was."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts, deletion
from moorage.services.context import Context
from moorage.store import queries
from tests.services.helpers import all_events, blob_listing, snapshot, upload
from tests.support.dists import make_sdist, make_wheel
from tests.support.refusals import raises_not_found


@pytest.fixture
def project(ctx: Context, token: str, dists: Path) -> dict[str, str]:
    files = {
        "wheel": make_wheel(dists, "Gone.Soon", "1.0"),
        "sdist": make_sdist(dists, "Gone.Soon", "1.0"),
        "next": make_wheel(dists, "Gone.Soon", "2.0b1"),
    }
    for dist in files.values():
        upload(ctx, token, dist)
    return {key: dist.filename for key, dist in files.items()}


def _offered(ctx: Context) -> list[str]:
    with ctx.db.read() as conn:
        view = queries.load_project(conn, "gone-soon")
    return [] if view is None else [f.filename for f in view.files]


def test_an_owner_deletes_a_file_inside_the_window_and_not_after(ctx: Context, clock: ManualClock,
                                                                 project: dict[str, str]) -> None:
    clock.advance(timedelta(hours=71, minutes=59))
    assert deletion.delete(ctx, "gone-soon", "1.0", project["wheel"], as_user="alice") == [project["wheel"]]
    assert project["wheel"] not in _offered(ctx)
    clock.advance(timedelta(minutes=2))
    before = snapshot(ctx)
    with pytest.raises(Denied) as refused:
        deletion.delete(ctx, "gone-soon", "1.0", project["sdist"], as_user="alice")
    assert refused.value.decision.rule == "deletion-window"
    assert snapshot(ctx) == before
    # A pre-release may go at any time.
    assert deletion.delete(ctx, "gone-soon", "2.0b1", as_user="alice") == [project["next"]]
    event = all_events(ctx)[-1]
    assert (event.action, event.actor, event.payload["version"]) == ("release-deleted", "alice", "2.0b1")
    assert event.payload["files"][0]["filename"] == project["next"]


def test_deleted_bytes_stay_and_the_filename_is_never_uploaded_again(ctx: Context, token: str, dists: Path,
                                                                    project: dict[str, str]) -> None:
    blobs = blob_listing(ctx)
    deletion.delete(ctx, "gone-soon", "1.0", project["wheel"], as_user="alice")
    assert blob_listing(ctx) == blobs  # retention: nothing removed
    with pytest.raises(Denied) as refused:
        upload(ctx, token, make_wheel(dists, "Gone.Soon", "1.0"))  # the very same bytes
    assert refused.value.decision.rule == "file-deleted"


def test_a_deleted_project_is_a_tombstone(ctx: Context, token: str, dists: Path, project: dict[str, str]) -> None:
    deletion.delete(ctx, "gone-soon", as_user="alice")
    with ctx.db.read() as conn:
        assert queries.load_project(conn, "gone-soon") is None
        assert "gone-soon" not in [n for _, n in queries.project_names(conn)]
    accounts.add_user(ctx, "squatter", password=None)
    squatter = accounts.create_token(ctx, "squatter")[1]
    with pytest.raises(Denied) as refused:
        upload(ctx, squatter, make_wheel(dists, "gone-soon", "9.0"))
    assert refused.value.decision.rule == "name-tombstoned"
    with pytest.raises(Denied) as look_alike:
        upload(ctx, squatter, make_wheel(dists, "gonesoon", "9.0"))
    assert look_alike.value.decision.rule == "similar-name"
    # The previous owner may take the name again.
    assert upload(ctx, token, make_wheel(dists, "Gone.Soon", "3.0")).outcome == "created"
    assert _offered(ctx) == ["gone_soon-3.0-py3-none-any.whl"]
    assert "project-reregistered" in [e.action for e in all_events(ctx)]


def test_admins_delete_with_a_reason_and_restore_as_it_was(ctx: Context, clock: ManualClock,
                                                          project: dict[str, str]) -> None:
    clock.advance(timedelta(days=30))
    with pytest.raises(Denied) as no_reason:
        deletion.delete(ctx, "gone-soon", "1.0")
    assert no_reason.value.decision.rule == "reason-required"
    deletion.delete(ctx, "gone-soon", "2.0b1", reason="pulled by the owner")  # an owner could too
    before_project_delete = _offered(ctx)
    deletion.delete(ctx, "gone-soon", reason="legal request")
    assert _offered(ctx) == []
    with pytest.raises(Denied):
        deletion.restore(ctx, "gone-soon", reason="x", as_user="alice")  # owners do not restore
    restored = deletion.restore(ctx, "gone-soon", reason="request withdrawn")
    assert sorted(restored) == sorted([project["wheel"], project["sdist"]])
    # As it was: the pre-release deleted before the project deletion stays deleted.
    assert _offered(ctx) == before_project_delete
    deletion.restore(ctx, "gone-soon", "2.0b1", reason="the owner asked")
    assert sorted(_offered(ctx)) == sorted(project.values())
    actions = [e.action for e in all_events(ctx)][-4:]
    assert actions == ["release-deleted", "project-deleted", "project-restored", "release-restored"]


def test_the_one_way_switch(ctx: Context, project: dict[str, str]) -> None:
    assert deletion.disable_deletions(ctx, "gone-soon", as_user="alice")
    assert not deletion.disable_deletions(ctx, "gone-soon", as_user="alice")
    with pytest.raises(Denied) as refused:
        deletion.delete(ctx, "gone-soon", "2.0b1", as_user="alice")
    assert refused.value.decision.rule == "deletions-disabled"
    assert deletion.delete(ctx, "gone-soon", "2.0b1", reason="admin override")


def test_restore_refuses_when_the_bytes_are_gone(ctx: Context, project: dict[str, str]) -> None:
    deletion.delete(ctx, "gone-soon", "1.0", project["wheel"], as_user="alice")
    with ctx.db.read() as conn:
        found = [f for f in queries.load_project(conn, "gone-soon", offered_only=False).files  # type: ignore[union-attr]
                 if f.filename == project["wheel"]]
    ctx.blobs.path(found[0].sha256).unlink()
    with pytest.raises(Denied) as refused:
        deletion.restore(ctx, "gone-soon", "1.0", project["wheel"], reason="please")
    assert refused.value.decision.rule == "retention-expired"


def test_unknown_targets(ctx: Context, project: dict[str, str]) -> None:
    with raises_not_found():
        deletion.delete(ctx, "gone-soon", "1.0", "nope-1.0.tar.gz", as_user="alice")
    with raises_not_found():
        deletion.restore(ctx, "gone-soon", reason="not deleted")


def test_purge_removes_bytes_only_after_retention(ctx: Context, clock: ManualClock, project: dict[str, str]) -> None:
    deletion.delete(ctx, "gone-soon", "1.0", project["wheel"], as_user="alice")
    with ctx.db.read() as conn:
        view = queries.load_project(conn, "gone-soon", offered_only=False)
    assert view is not None
    wheel = next(f for f in view.files if f.filename == project["wheel"])
    clock.advance(timedelta(days=89))
    assert deletion.purge(ctx) == []
    assert ctx.blobs.exists(wheel.sha256)
    clock.advance(timedelta(days=2))
    assert deletion.purge(ctx, dry_run=True) == [project["wheel"]]
    assert ctx.blobs.exists(wheel.sha256)
    assert deletion.purge(ctx) == [project["wheel"]]
    assert not ctx.blobs.exists(wheel.sha256)
    # The sdist is untouched, and metadata still shared with a live file is kept.
    assert all(ctx.blobs.exists(f.sha256) for f in view.files if f.filename != project["wheel"])
    assert all_events(ctx)[-1].action == "bytes-purged"
    with pytest.raises(Denied) as refused:
        deletion.restore(ctx, "gone-soon", "1.0", project["wheel"], reason="too late")
    assert refused.value.decision.rule == "retention-expired"
    assert deletion.purge(ctx) == []
