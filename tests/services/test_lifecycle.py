"""Yank, unyank, reopen and the upload window, against a real database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts, lifecycle
from moorage.services.context import Context
from moorage.store.queries import load_project
from tests.services.helpers import all_events, snapshot, upload
from tests.support.dists import make_sdist, make_wheel
from tests.support.refusals import raises_not_found


@pytest.fixture
def release(ctx: Context, token: str, dists: Path) -> list[str]:
    wheel = make_wheel(dists, "Life.Cycle", "1.0")
    sdist = make_sdist(dists, "Life.Cycle", "1.0")
    upload(ctx, token, wheel)
    upload(ctx, token, sdist)
    return [wheel.filename, sdist.filename]


def _files(ctx: Context) -> dict[str, tuple[bool, str | None]]:
    with ctx.db.read() as conn:
        view = load_project(conn, "life-cycle")
    assert view is not None
    return {f.filename: (f.yanked, f.yanked_reason) for f in view.files}


def test_yank_a_file_then_the_release_then_unyank(ctx: Context, release: list[str]) -> None:
    wheel, sdist = release
    assert lifecycle.yank(ctx, "Life_Cycle", "1.0", wheel, reason="broken wheel", as_user="alice") == [wheel]
    assert _files(ctx) == {wheel: (True, "broken wheel"), sdist: (False, None)}
    assert lifecycle.yank(ctx, "life-cycle", "1.0", reason="bad release", as_user="alice") == [sdist]
    assert _files(ctx) == {wheel: (True, "broken wheel"), sdist: (True, "bad release")}
    assert lifecycle.yank(ctx, "life-cycle", "1.0", as_user="alice") == []  # nothing left: no event
    assert lifecycle.unyank(ctx, "life-cycle", "1.0", as_user="alice") == sorted([wheel, sdist])
    assert _files(ctx) == {wheel: (False, None), sdist: (False, None)}
    actions = [(e.action, e.actor, e.payload.get("files")) for e in all_events(ctx)][-3:]
    assert actions == [("file-yanked", "alice", [wheel]), ("release-yanked", "alice", [sdist]),
                       ("release-unyanked", "alice", sorted([wheel, sdist]))]


def test_only_owners_and_admins_yank(ctx: Context, release: list[str]) -> None:
    accounts.add_user(ctx, "mallory", password=None)
    before = snapshot(ctx)
    with pytest.raises(Denied) as refused:
        lifecycle.yank(ctx, "life-cycle", "1.0", as_user="mallory")
    assert refused.value.decision.rule == "not-an-owner"
    assert snapshot(ctx) == before
    assert lifecycle.yank(ctx, "life-cycle", "1.0", reason="operator")  # the operator is an admin
    assert [e.actor for e in all_events(ctx)][-1] == "operator"


def test_unknown_targets(ctx: Context, release: list[str]) -> None:
    with raises_not_found():
        lifecycle.yank(ctx, "nope", "1.0")
    with raises_not_found():
        lifecycle.yank(ctx, "life-cycle", "9.9")
    with raises_not_found():
        lifecycle.yank(ctx, "life-cycle", "1.0", "other-1.0.tar.gz")
    with pytest.raises(Denied) as refused:
        lifecycle.yank(ctx, "life-cycle", "not a version")
    assert refused.value.decision.rule == "invalid-version"


def test_the_upload_window_closes_and_an_owner_reopens_it(ctx: Context, token: str, clock: ManualClock,
                                                          release: list[str], dists: Path) -> None:
    clock.advance(timedelta(days=14) - timedelta(seconds=1))
    assert upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.0", tag="py2-none-any")).outcome == "created"
    clock.advance(timedelta(seconds=2))
    late = make_wheel(dists, "Life.Cycle", "1.0", tag="py312-none-any")
    before = snapshot(ctx)
    with pytest.raises(Denied) as refused:
        upload(ctx, token, late)
    assert refused.value.decision.rule == "upload-window"
    assert "stopped accepting new files" in refused.value.decision.reason
    assert snapshot(ctx) == before
    # An identical re-upload of an accepted file still succeeds after the window closed.
    assert upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.0")).outcome == "exists"
    # A new release opens its own window.
    assert upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.1")).outcome == "created"

    with pytest.raises(Denied) as too_long:
        lifecycle.reopen(ctx, "life-cycle", "1.0", reason="forgot a wheel", days=8, as_user="alice")
    assert too_long.value.decision.rule == "reopen-period"
    with pytest.raises(Denied):
        lifecycle.reopen(ctx, "life-cycle", "1.0", reason=" ", as_user="alice")
    decision = lifecycle.reopen(ctx, "life-cycle", "1.0", reason="forgot a wheel", days=2, as_user="alice")
    assert decision.until == clock.now() + timedelta(days=2)
    assert upload(ctx, token, late).outcome == "created"
    event = [e for e in all_events(ctx) if e.action == "release-reopened"][-1]
    assert event.payload["reason"] == "forgot a wheel" and event.actor == "alice"
    clock.advance(timedelta(days=2))
    with pytest.raises(Denied):
        upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.0", tag="py313-none-any"))


def test_close_on_newer_release(ctx: Context, token: str, clock: ManualClock, release: list[str],
                                dists: Path) -> None:
    ctx.settings = dataclasses.replace(
        ctx.settings, lifecycle=dataclasses.replace(ctx.settings.lifecycle, close_on_newer_release=True))
    clock.advance(timedelta(hours=1))
    upload(ctx, token, make_wheel(dists, "Life.Cycle", "2.0"))
    clock.advance(timedelta(seconds=1))
    with pytest.raises(Denied) as refused:
        upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.0", tag="py2-none-any"))
    assert "a newer release has files" in refused.value.decision.reason
    # A post-release of the old line is a newer version too, but the newest release stays open.
    assert upload(ctx, token, make_wheel(dists, "Life.Cycle", "2.0", tag="py2-none-any")).outcome == "created"


def test_archive_refuses_uploads_with_its_reason_and_unarchive_lifts_it(
        ctx: Context, token: str, release: list[str], dists: Path) -> None:
    lifecycle.set_status(ctx, "life-cycle", "archived", reason="moved to a monorepo", as_user="alice")
    before = snapshot(ctx)
    with pytest.raises(Denied) as refused:
        upload(ctx, token, make_wheel(dists, "Life.Cycle", "2.0"))
    assert refused.value.decision.rule == "project-archived"
    assert refused.value.decision.reason == (
        "life-cycle is archived and accepts no new uploads: moved to a monorepo; an owner may unarchive it")
    assert snapshot(ctx) == before
    with ctx.db.read() as conn:
        view = load_project(conn, "life-cycle")
    assert view is not None and (view.status, view.status_reason) == ("archived", "moved to a monorepo")
    assert len(view.files) == 2  # archived files are still offered
    lifecycle.set_status(ctx, "life-cycle", "active", as_user="alice")
    assert upload(ctx, token, make_wheel(dists, "Life.Cycle", "2.0")).outcome == "created"
    changes = [(e.payload["before"]["status"], e.payload["after"]["status"])
               for e in all_events(ctx) if e.action == "status-changed"]
    assert changes == [("active", "archived"), ("archived", "active")]


def test_deprecate_with_a_successor(ctx: Context, token: str, release: list[str], dists: Path) -> None:
    with raises_not_found():
        lifecycle.set_status(ctx, "life-cycle", "deprecated", successor="nowhere", as_user="alice")
    upload(ctx, token, make_wheel(dists, "next-gen", "1.0"))
    lifecycle.set_status(ctx, "life-cycle", "deprecated", reason="use next-gen", successor="Next_Gen",
                         as_user="alice")
    with ctx.db.read() as conn:
        view = load_project(conn, "life-cycle")
    assert view is not None and (view.status, view.successor) == ("deprecated", "next-gen")
    # Everything still works for a deprecated project, uploads included.
    assert upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.0", tag="py2-none-any")).outcome == "created"
    with pytest.raises(Denied):
        lifecycle.set_status(ctx, "life-cycle", "archived", successor="next-gen", as_user="alice")


def test_quarantine_is_for_admins_and_withholds_everything(ctx: Context, token: str, release: list[str],
                                                           dists: Path) -> None:
    with pytest.raises(Denied) as refused:
        lifecycle.set_status(ctx, "life-cycle", "quarantined", reason="malware", as_user="alice")
    assert refused.value.decision.rule == "admin-only"
    with pytest.raises(Denied) as no_reason:
        lifecycle.set_status(ctx, "life-cycle", "quarantined")
    assert no_reason.value.decision.rule == "reason-required"
    lifecycle.set_status(ctx, "life-cycle", "quarantined", reason="malware reported")
    with ctx.db.read() as conn:
        view = load_project(conn, "life-cycle")
        everything = load_project(conn, "life-cycle", offered_only=False)
        from moorage.store import queries
        assert "life-cycle" not in [n for _, n in queries.project_names(conn)]
        assert queries.find_file(conn, release[0]) is None
    assert view is not None and view.files == [] and view.releases == []
    assert everything is not None and len(everything.files) == 2
    with pytest.raises(Denied) as upload_refused:
        upload(ctx, token, make_wheel(dists, "Life.Cycle", "3.0"))
    assert upload_refused.value.decision.rule == "project-quarantined"
    with pytest.raises(Denied):  # an owner cannot lift it either
        lifecycle.set_status(ctx, "life-cycle", "active", reason="it is fine", as_user="alice")
    lifecycle.set_status(ctx, "life-cycle", "active", reason="false alarm")
    with ctx.db.read() as conn:
        restored = load_project(conn, "life-cycle")
    assert restored is not None and len(restored.files) == 2


def test_quarantine_one_release(ctx: Context, token: str, release: list[str], dists: Path) -> None:
    upload(ctx, token, make_wheel(dists, "Life.Cycle", "2.0"))
    with pytest.raises(Denied):
        lifecycle.quarantine_release(ctx, "life-cycle", "1.0", reason="bad", as_user="alice")
    assert lifecycle.quarantine_release(ctx, "life-cycle", "1.0", reason="compromised build")
    assert not lifecycle.quarantine_release(ctx, "life-cycle", "1.0", reason="again")
    with ctx.db.read() as conn:
        view = load_project(conn, "life-cycle")
    assert view is not None and [r.version for r in view.releases] == ["2.0"]
    assert all(f.version == "2.0" for f in view.files)
    with pytest.raises(Denied) as refused:
        upload(ctx, token, make_wheel(dists, "Life.Cycle", "1.0", tag="py2-none-any"))
    assert refused.value.decision.rule == "release-quarantined"
    assert lifecycle.quarantine_release(ctx, "life-cycle", "1.0", reason="cleared", lift=True)
    with ctx.db.read() as conn:
        view = load_project(conn, "life-cycle")
    assert view is not None and [r.version for r in view.releases] == ["1.0", "2.0"]
