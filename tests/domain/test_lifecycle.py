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
from moorage.web.statuses import status_of

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
    assert at_close.rule == "upload-window" and status_of(at_close) == 400
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
        assert not refused.allowed and refused.rule == "not-an-owner" and status_of(refused) == 403


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


# -- deletion -----------------------------------------------------------------------------------
from moorage.domain.lifecycle import (  # noqa: E402
    FileFacts,
    may_delete_file,
    may_delete_files,
    may_register_deleted_name,
    may_restore,
)

FINAL = FileFacts("demo-1.0-py3-none-any.whl", Version("1.0"), T0)
PRE = FileFacts("demo-2.0b1-py3-none-any.whl", Version("2.0b1"), T0)


def test_a_file_is_deletable_for_72_hours_after_its_upload() -> None:
    at_71h59 = may_delete_file(OWNER, "demo", None, FINAL, POLICY, T0 + timedelta(hours=71, minutes=59))
    assert at_71h59.allowed and at_71h59.until == T0 + timedelta(hours=72)
    at_72h01 = may_delete_file(OWNER, "demo", None, FINAL, POLICY, T0 + timedelta(hours=72, minutes=1))
    assert not at_72h01.allowed and at_72h01.rule == "deletion-window" and status_of(at_72h01) == 403
    assert "within 72 hours of upload" in at_72h01.reason and "uploaded 2026-11-02 09:14 UTC" in at_72h01.reason
    assert at_72h01.until is None


def test_a_pre_release_is_deletable_at_any_time_unless_configured_otherwise() -> None:
    late = T0 + timedelta(days=400)
    assert may_delete_file(OWNER, "demo", None, PRE, POLICY, late).allowed
    strict = LifecyclePolicy(prereleases_deletable=False)
    assert not may_delete_file(OWNER, "demo", None, PRE, strict, late).allowed


def test_a_release_is_deletable_only_when_every_file_is() -> None:
    new = FileFacts("demo-1.0-cp311-cp311-linux_x86_64.whl", Version("1.0"), T0 + timedelta(hours=70))
    now = T0 + timedelta(hours=73)
    refused = may_delete_files(OWNER, "demo", None, [new, FINAL], POLICY, now)
    assert not refused.allowed and FINAL.filename in refused.reason
    earlier = T0 + timedelta(hours=10)
    allowed = may_delete_files(OWNER, "demo", None, [new, FINAL], POLICY, earlier)
    assert allowed.allowed and allowed.until == T0 + timedelta(hours=72)  # the earliest window decides


def test_the_switch_stops_owners_but_not_admins() -> None:
    switched = T0 - timedelta(days=1)
    refused = may_delete_file(OWNER, "demo", switched, PRE, POLICY, T0)
    assert not refused.allowed and refused.rule == "deletions-disabled" and "2026-11-01 09:14 UTC" in refused.reason
    assert not may_delete_files(OWNER, "demo", switched, [], POLICY, T0).allowed
    assert may_delete_file(ADMIN, "demo", switched, FINAL, POLICY, T0 + timedelta(days=999)).allowed
    assert may_delete_files(ADMIN, "demo", switched, [FINAL], POLICY, T0 + timedelta(days=999)).allowed


def test_only_owners_delete_and_only_admins_restore() -> None:
    for actor in (MAINTAINER, STRANGER):
        assert may_delete_file(actor, "demo", None, PRE, POLICY, T0).rule == "not-an-owner"
        assert not may_delete_files(actor, "demo", None, [PRE], POLICY, T0).allowed
    assert not may_restore(OWNER, "oops").allowed
    assert not may_restore(ADMIN, " ").allowed and may_restore(ADMIN, "oops").allowed


def test_a_tombstoned_name_is_for_previous_owners_and_admins() -> None:
    assert may_register_deleted_name(STRANGER, "demo", was_owner=True).allowed
    assert may_register_deleted_name(ADMIN, "demo", was_owner=False).allowed
    refused = may_register_deleted_name(STRANGER, "demo", was_owner=False)
    assert not refused.allowed and refused.rule == "name-tombstoned"


@given(hours=st.integers(min_value=0, max_value=24 * 365), final=st.booleans())
def test_a_non_admin_never_deletes_a_final_file_outside_its_window(hours: int, final: bool) -> None:
    file = FINAL if final else PRE
    decision = may_delete_file(OWNER, "demo", None, file, POLICY, T0 + timedelta(hours=hours))
    if final:
        assert decision.allowed == (hours < 72)
    else:
        assert decision.allowed
