"""The simple-page cache: rendered once, dropped on change, bounded in memory."""

from __future__ import annotations

from pathlib import Path

from moorage.services.context import Context
from moorage.web.simple import PageCache
from tests.services.helpers import upload
from tests.support.dists import make_wheel


def test_a_page_is_rendered_once_and_dropped_when_its_project_changes(ctx: Context, token: str,
                                                                      dists: Path) -> None:
    cache = PageCache(ctx.db, check_interval=3600)
    ctx.hooks.append(cache.invalidate)
    upload(ctx, token, make_wheel(dists, "cached", "1.0"))
    assert cache.get("cached") is None
    page = cache.build_project("cached")
    assert page is not None and cache.get("cached") is page
    upload(ctx, token, make_wheel(dists, "cached", "1.1"))
    assert cache.get("cached") is None
    rebuilt = cache.build_project("cached")
    assert rebuilt is not None and b"cached-1.1-py3-none-any.whl" in rebuilt.html.body


def test_another_process_change_is_seen_through_the_serial(ctx: Context, token: str, dists: Path) -> None:
    clock = [0.0]
    cache = PageCache(ctx.db, check_interval=0.005, clock=lambda: clock[0])  # no hook: as another process
    upload(ctx, token, make_wheel(dists, "elsewhere", "1.0"))
    cache.get("elsewhere")
    assert cache.build_project("elsewhere") is not None
    upload(ctx, token, make_wheel(dists, "elsewhere", "2.0"))
    assert cache.get("elsewhere") is not None  # within the check interval: still the old page
    clock[0] += 0.01
    assert cache.get("elsewhere") is None


def test_unknown_names_are_remembered_until_a_project_appears(ctx: Context, token: str, dists: Path) -> None:
    cache = PageCache(ctx.db, check_interval=3600)
    ctx.hooks.append(cache.invalidate)
    assert cache.build_project("later") is None
    assert cache.known_missing("later")
    upload(ctx, token, make_wheel(dists, "later", "1.0"))
    assert not cache.known_missing("later")
    assert cache.build_project("later") is not None


def test_the_cache_stays_within_its_byte_budget(ctx: Context, token: str, dists: Path) -> None:
    for i in range(6):
        upload(ctx, token, make_wheel(dists, f"bounded{i}", "1.0"))
    one = PageCache(ctx.db, check_interval=3600).build_project("bounded0")
    assert one is not None
    budget = one.size * 3
    cache = PageCache(ctx.db, check_interval=3600, max_bytes=budget)
    assert cache.get("bounded0") is None  # as in the server: a lookup (and serial check) comes first
    for i in range(6):
        assert cache.build_project(f"bounded{i}") is not None
        assert cache.cached_bytes <= budget
    assert cache.get("bounded5") is not None  # the newest stay
    assert cache.get("bounded0") is None  # the oldest went first


def test_warming_renders_the_most_recently_changed_projects_first(ctx: Context, token: str,
                                                                  dists: Path) -> None:
    for i in range(5):
        upload(ctx, token, make_wheel(dists, f"warm{i}", "1.0"))
    probe = PageCache(ctx.db, check_interval=3600).build_project("warm0")
    assert probe is not None
    cache = PageCache(ctx.db, check_interval=3600, max_bytes=probe.size * 3)
    rendered = cache.warm()
    assert 1 <= rendered <= 4
    assert cache.get("warm4") is not None and cache.get("warm3") is not None
    assert cache.get("warm0") is None
    assert cache.cached_bytes <= probe.size * 3
    everything = PageCache(ctx.db, check_interval=3600)
    assert everything.warm() == 5
    assert all(everything.get(f"warm{i}") is not None for i in range(5))
