"""Pending removal: announced ahead, in force after the grace period, opt-in root, cancel."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import removal
from moorage.services.context import Context
from moorage.store import queries
from moorage.web.simple import PageCache
from tests.services.helpers import all_events, upload
from tests.support.dists import make_wheel


@pytest.fixture
def wheel(ctx: Context, token: str, dists: Path) -> str:
    dist = make_wheel(dists, "leaving", "1.0")
    upload(ctx, token, dist)
    return dist.filename


def _files(ctx: Context, clock: ManualClock, *, pending_root: bool = False) -> list[str]:
    with ctx.db.read() as conn:
        view = queries.load_project(conn, "leaving", now=clock.now(), pending_root=pending_root)
    assert view is not None
    return [f.filename for f in view.files]


def test_a_removal_takes_effect_after_the_grace_period(ctx: Context, clock: ManualClock, wheel: str) -> None:
    with pytest.raises(Denied) as too_soon:
        removal.announce_removal(ctx, "leaving", days=7, as_user="alice")
    assert too_soon.value.decision.rule == "removal-grace"
    decision = removal.announce_removal(ctx, "leaving", reason="the API is shutting down", as_user="alice")
    ends = clock.now() + timedelta(days=30)
    assert decision.until == ends
    with ctx.db.read() as conn:
        view = queries.load_project(conn, "leaving", now=clock.now())
    assert view is not None and view.status == "deprecated"
    assert view.status_reason == (f"pending removal: its files leave the default index on {ends:%Y-%m-%d %H:%M} UTC; "
                                  "the API is shutting down")
    clock.advance(timedelta(days=30) - timedelta(seconds=1))
    assert _files(ctx, clock) == [wheel]
    clock.advance(timedelta(seconds=1))
    assert _files(ctx, clock) == []
    assert _files(ctx, clock, pending_root=True) == [wheel]
    with ctx.db.read() as conn:
        assert queries.find_file(conn, wheel, now=clock.now()) is None
        assert queries.find_file(conn, wheel, now=clock.now(), pending_root=True) is not None
    with pytest.raises(Denied) as late:
        removal.cancel_removal(ctx, "leaving", as_user="alice")
    assert late.value.decision.rule == "removal-done"
    removal.cancel_removal(ctx, "leaving")  # an admin still can
    assert _files(ctx, clock) == [wheel]


def test_cancel_before_the_end_restores_the_status(ctx: Context, clock: ManualClock, wheel: str) -> None:
    removal.announce_removal(ctx, "leaving", as_user="alice")
    clock.advance(timedelta(days=3))
    removal.cancel_removal(ctx, "leaving", as_user="alice")
    with ctx.db.read() as conn:
        view = queries.load_project(conn, "leaving", now=clock.now())
    assert view is not None and (view.status, view.status_reason, view.removal_at) == ("active", None, None)
    assert [e.action for e in all_events(ctx)][-2:] == ["removal-announced", "removal-cancelled"]
    with pytest.raises(Denied) as nothing:
        removal.cancel_removal(ctx, "leaving", as_user="alice")
    assert nothing.value.decision.rule == "no-removal"


def test_a_cached_page_lasts_only_until_the_removal(ctx: Context, clock: ManualClock, wheel: str) -> None:
    removal.announce_removal(ctx, "leaving", as_user="alice")
    cache = PageCache(ctx.db, check_interval=3600, wall=clock.now)
    cache.get("leaving")
    page = cache.build_project("leaving")
    assert page is not None and wheel.encode() in page.html.body
    assert cache.get("leaving") is page
    clock.advance(timedelta(days=30))
    assert cache.get("leaving") is None  # no commit happened: the instant alone changes the page
    rebuilt = cache.build_project("leaving")
    assert rebuilt is not None and wheel.encode() not in rebuilt.html.body
