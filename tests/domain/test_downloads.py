"""The download counting rules: user agents, what counts, the dedupe window, the sums."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from moorage.config import DownloadSettings
from moorage.domain.clock import ManualClock
from moorage.domain.downloads import (
    DedupeWindow,
    DownloadSums,
    classify,
    counts_as_download,
    grace_wording,
    range_starts_at_zero,
    sums,
)

MIRRORS = DownloadSettings().mirror_agents
START = datetime(2026, 5, 4, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(("agent", "kind"), [
    ("bandersnatch/6.5.0 (cpython 3.12.1-final0, Linux x86_64)", "mirror"),
    ("devpi-server/6.10.0 (py3.11.7; linux)", "mirror"),
    ("Bandersnatch/6.5.0", "mirror"),  # case-insensitive
    ("Apache-Maven / Nexus Repository Manager 3.61", "mirror"),
    ('pip/24.0 {"ci":null,"cpython":"3.12.1","installer":{"name":"pip","version":"24.0"}}', "client"),
    ("uv/0.4.18", "client"),
    ("Python-urllib/3.11", "client"),
    ("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", "client"),
    ("", "client"),
    (None, "client"),
])
def test_user_agent_classification(agent: str | None, kind: str) -> None:
    assert classify(agent, MIRRORS) == kind


def test_classification_follows_the_configured_list() -> None:
    assert classify("my-internal-mirror/1.0", ("internal-mirror",)) == "mirror"
    assert classify("bandersnatch/6.5.0", ("internal-mirror",)) == "client"
    assert classify("bandersnatch/6.5.0", ()) == "client"


@pytest.mark.parametrize(("header", "expected"), [
    (None, True),
    ("bytes=0-", True),
    ("bytes=0-99", True),
    ("bytes = 0 - 99", True),
    ("bytes=0-99, 200-300", True),
    ("bytes=00-10", True),
    ("bytes=100-", False),
    ("bytes=1-", False),
    ("bytes=-500", False),
    ("bytes=200-300, 0-10", False),  # the first range decides
    ("items=5-", True),  # not a unit the server serves: the whole file goes out
    ("garbage", True),
])
def test_a_range_counts_only_from_byte_zero(header: str | None, expected: bool) -> None:
    assert range_starts_at_zero(header) is expected


@pytest.mark.parametrize(("method", "status", "request_range", "content_range", "expected"), [
    ("GET", 200, None, None, True),
    ("GET", 200, "bytes=500-", None, True),  # the range was ignored (If-Range): the whole file was sent
    ("GET", 206, "bytes=0-99", "bytes 0-99/1000", True),
    ("GET", 206, "bytes=100-", "bytes 100-999/1000", False),
    ("GET", 206, "bytes=-10", "bytes 990-999/1000", False),
    ("GET", 206, "bytes=0-9, 20-29", None, True),  # multipart: no Content-Range on the whole
    ("GET", 206, "bytes=20-29, 0-9", None, False),
    ("GET", 302, None, None, True),  # redirected to the bucket's presigned URL
    ("GET", 302, "bytes=100-", None, False),
    ("HEAD", 200, None, None, False),
    ("HEAD", 302, None, None, False),
    ("GET", 304, None, None, False),
    ("GET", 404, None, None, False),
    ("GET", 416, "bytes=5000-", None, False),
    ("GET", 503, None, None, False),
])
def test_what_counts_as_a_download(method: str, status: int, request_range: str | None,
                                   content_range: str | None, expected: bool) -> None:
    assert counts_as_download(method, status, request_range, content_range) is expected


def test_dedupe_window_counts_once_per_key_within_the_window() -> None:
    clock = ManualClock(START)
    window = DedupeWindow(timedelta(hours=1))
    key = ("alpha", "client", "192.0.2.1")
    assert window.admit(key, clock.now())
    clock.advance(timedelta(minutes=59, seconds=59))
    assert not window.admit(key, clock.now())
    # Other projects, kinds and addresses are their own keys.
    assert window.admit(("beta", "client", "192.0.2.1"), clock.now())
    assert window.admit(("alpha", "mirror", "192.0.2.1"), clock.now())
    assert window.admit(("alpha", "client", "192.0.2.2"), clock.now())
    # The window runs from the counted download, not from the last attempt.
    clock.advance(timedelta(seconds=1))
    assert window.admit(key, clock.now())
    clock.advance(timedelta(minutes=30))
    assert not window.admit(key, clock.now())


def test_dedupe_window_across_midnight_still_counts_once() -> None:
    clock = ManualClock(START)  # 23:30 UTC
    window = DedupeWindow(timedelta(hours=1))
    assert window.admit("k", clock.now())
    clock.advance(timedelta(minutes=45))  # 00:15 the next day
    assert not window.admit("k", clock.now())


def test_zero_window_counts_everything_and_remembers_nothing() -> None:
    window = DedupeWindow(timedelta(0))
    now = START
    assert all(window.admit("k", now) for _ in range(5))
    assert len(window) == 0


def test_prune_drops_only_expired_entries() -> None:
    clock = ManualClock(START)
    window = DedupeWindow(timedelta(hours=1))
    for i in range(10):
        window.admit(f"old-{i}", clock.now())
    clock.advance(timedelta(minutes=30))
    for i in range(5):
        window.admit(f"new-{i}", clock.now())
    # A re-counted key moves to the end (its new time): it must survive the prune below.
    clock.advance(timedelta(minutes=31))
    assert window.admit("old-0", clock.now())
    assert window.prune(clock.now()) == 9
    assert len(window) == 6
    assert not window.admit("new-0", clock.now())
    assert not window.admit("old-0", clock.now())
    assert window.admit("old-1", clock.now())
    clock.advance(timedelta(hours=2))
    assert window.prune(clock.now()) == 7
    assert len(window) == 0


def test_the_memory_is_bounded_whatever_the_traffic() -> None:
    window = DedupeWindow(timedelta(hours=1), max_entries=100)
    now = START
    for i in range(1000):
        assert window.admit(f"addr-{i}", now + timedelta(microseconds=i))
    assert len(window) == 100
    # The oldest went first: the newest are still remembered.
    assert not window.admit("addr-999", now + timedelta(seconds=1))
    assert window.admit("addr-0", now + timedelta(seconds=1))


def test_a_clock_moved_back_does_not_silence_a_key() -> None:
    window = DedupeWindow(timedelta(hours=1))
    assert window.admit("k", START)
    assert window.admit("k", START - timedelta(hours=3))
    assert not window.admit("k", START - timedelta(hours=3) + timedelta(minutes=5))


def test_sums_over_the_last_day_week_and_month() -> None:
    today = date(2026, 5, 31)
    rows = [
        (today, "client", 3), (today, "mirror", 100),
        (today - timedelta(days=1), "client", 5),
        (today - timedelta(days=6), "client", 7),  # the 7th day of the week
        (today - timedelta(days=7), "client", 11),  # outside the week
        (today - timedelta(days=29), "client", 13),  # the 30th day of the month
        (today - timedelta(days=30), "client", 17),  # outside the month
        (today + timedelta(days=1), "client", 19),  # the future (a clock moved back): left out
        (today, "bogus", 23),
    ]
    got = sums(rows, today)
    assert got["client"] == DownloadSums(last_day=3, last_week=15, last_month=39)
    assert got["mirror"] == DownloadSums(100, 100, 100)
    assert got["client"].as_dict() == {"last_day": 3, "last_week": 15, "last_month": 39}
    assert sums([], today)["client"] == DownloadSums(0, 0, 0)


def test_grace_wording() -> None:
    assert grace_wording(START + timedelta(days=1), START) == "from"
    assert grace_wording(START, START) == "since"
    assert grace_wording(START - timedelta(days=1), START) == "since"
