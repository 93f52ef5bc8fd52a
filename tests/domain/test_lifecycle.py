"""Lifecycle rules at their boundary instants, with time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from moorage.domain.lifecycle import (
    Actor,
    LifecyclePolicy,
    ReleaseFacts,
    check_upload_window,
    may_reopen,
    may_yank,
    release_facts,
    upload_window_closes,
)

T0 = datetime(2026, 11, 2, 9, 14, tzinfo=UTC)
POLICY = LifecyclePolicy()
OWNER = Actor("ann", role="owner")
MAINTAINER = Actor("max", role="maintainer")
STRANGER = Actor("sam")
ADMIN = Actor("root", is_admin=True)


def release(**kw: object) -> ReleaseFacts:
    return ReleaseFacts(**{"project": "demo", "version": Version("1.0"), "opened_at": T0, **kw})  # type: ignore[arg-type]


def test_the_window_is_open_until_14_days_after_the_first_file() -> None:
    just_before = check_upload_window(release(), POLICY, T0 + timedelta(days=14) - timedelta(minutes=1))
    assert just_before.allowed and just_before.until == T0 + timedelta(days=14)
    at_close = check_upload_window(release(), POLICY, T0 + timedelta(days=14))
    assert not at_close.allowed
    assert at_close.rule == "upload-window" and at_close.status == 400
    assert "2026-11-16 09:14 UTC" in at_close.reason and "14 days after its first file" in at_close.reason


def test_a_newer_release_closes_the_window_only_when_configured() -> None:
    newer = release(newer_release_at=T0 + timedelta(days=2))
    assert check_upload_window(newer, POLICY, T0 + timedelta(days=3)).allowed
    strict = LifecyclePolicy(close_on_newer_release=True)
    assert upload_window_closes(newer, strict) == T0 + timedelta(days=2)
    refused = check_upload_window(newer, strict, T0 + timedelta(days=3))
    assert not refused.allowed and "a newer release has files" in refused.reason
    # A newer release after the window closed does not change the reason.
    late = release(newer_release_at=T0 + timedelta(days=20))
    assert "14 days" in check_upload_window(late, strict, T0 + timedelta(days=21)).reason


def test_a_reopened_release_accepts_files_until_the_reopening_ends() -> None:
    reopened = release(reopened_until=T0 + timedelta(days=30))
    during = check_upload_window(reopened, POLICY, T0 + timedelta(days=29, hours=23))
    assert during.allowed and during.rule == "reopened" and during.until == T0 + timedelta(days=30)
    assert not check_upload_window(reopened, POLICY, T0 + timedelta(days=30)).allowed


def test_who_may_yank() -> None:
    assert may_yank(OWNER, "demo").allowed and may_yank(ADMIN, "demo").allowed
    for actor in (MAINTAINER, STRANGER):
        refused = may_yank(actor, "demo")
        assert not refused.allowed and refused.rule == "not-an-owner" and refused.status == 403


def test_reopen_is_bounded_for_owners_not_for_admins() -> None:
    closed = release()
    now = T0 + timedelta(days=20)
    ok = may_reopen(OWNER, closed, timedelta(days=7), POLICY, now)
    assert ok.allowed and ok.until == now + timedelta(days=7)
    too_long = may_reopen(OWNER, closed, timedelta(days=7, seconds=1), POLICY, now)
    assert not too_long.allowed and too_long.rule == "reopen-period" and "7 days" in too_long.reason
    assert may_reopen(ADMIN, closed, timedelta(days=60), POLICY, now).allowed
    assert not may_reopen(MAINTAINER, closed, timedelta(days=1), POLICY, now).allowed
    assert not may_reopen(OWNER, closed, timedelta(0), POLICY, now).allowed


def test_release_facts_find_the_earliest_newer_release() -> None:
    facts = release_facts("demo", [
        (Version("1.0"), T0, None),
        (Version("2.0"), T0 + timedelta(days=5), None),
        (Version("1.5"), T0 + timedelta(days=9), None),
        (Version("1.0.post1"), T0 + timedelta(days=1), None),
    ])
    assert facts[Version("2.0")].newer_release_at is None
    assert facts[Version("1.5")].newer_release_at == T0 + timedelta(days=5)
    assert facts[Version("1.0.post1")].newer_release_at == T0 + timedelta(days=5)
    assert facts[Version("1.0")].newer_release_at == T0 + timedelta(days=1)


@given(offset=st.integers(min_value=-10**7, max_value=10**7), window=st.integers(min_value=0, max_value=10**7))
def test_the_window_answer_depends_only_on_the_instant(offset: int, window: int) -> None:
    policy = LifecyclePolicy(upload_window=timedelta(seconds=window))
    now = T0 + timedelta(seconds=offset)
    assert check_upload_window(release(), policy, now).allowed == (offset < window)
