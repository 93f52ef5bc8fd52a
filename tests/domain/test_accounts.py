"""The account rules: who must use a second factor, which projects are critical, token disuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from moorage.domain.accounts import (
    AccountPolicy,
    CriticalFacts,
    CriticalRule,
    check_token_use,
    check_two_factor,
    check_upload_token,
    critical_threshold,
    is_jump,
)
from moorage.web.statuses import status_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CRITICAL = CriticalFacts(since=NOW - timedelta(days=20), grace_until=NOW - timedelta(days=6))
IN_GRACE = CriticalFacts(since=NOW - timedelta(days=1), grace_until=NOW + timedelta(days=13))


def test_require_none_never_asks() -> None:
    policy = AccountPolicy(require_2fa="none")
    assert check_two_factor(policy, "p", CRITICAL, "mallory", False, NOW).allowed
    assert check_upload_token(policy, "p", CRITICAL, False, NOW).allowed


def test_require_all_asks_every_account_for_everything() -> None:
    policy = AccountPolicy(require_2fa="all")
    denied = check_two_factor(policy, "p", None, "bob", False, NOW)
    assert (denied.allowed, denied.rule, status_of(denied)) == (False, "two-factor-required", 403)
    assert "every account must use two-factor authentication: bob has no second factor" in (denied.reason or "")
    assert check_two_factor(policy, "p", None, "bob", True, NOW).allowed
    upload = check_upload_token(policy, "p", None, False, NOW)
    assert not upload.allowed and "uploads need an API token created by an account with a second factor" in (
        upload.reason or "")
    assert check_upload_token(policy, "p", None, True, NOW).allowed


def test_require_critical_waits_for_the_grace_period_then_applies_to_critical_projects_only() -> None:
    policy = AccountPolicy(require_2fa="critical")
    assert check_two_factor(policy, "p", None, "bob", False, NOW).allowed  # not critical
    assert check_two_factor(policy, "p", IN_GRACE, "bob", False, NOW).allowed  # in its grace period
    assert check_upload_token(policy, "p", IN_GRACE, False, NOW).allowed
    denied = check_two_factor(policy, "p", CRITICAL, "bob", False, NOW)
    assert not denied.allowed and denied.reason == (
        "p is a critical project (since 2026-11-02 12:00 UTC; the grace period ended 2026-11-16 12:00 UTC), and "
        "its maintainers must use two-factor authentication: bob has no second factor; enrol one (TOTP app or "
        "security key) on the account page")
    upload = check_upload_token(policy, "p", CRITICAL, False, NOW)
    assert upload.reason == ("p is a critical project (its grace period ended 2026-11-16 12:00 UTC): uploads need "
                             "an API token created by an account with a second factor; enrol a factor on the "
                             "account page, then create a new token")
    # The grace period's last instant still allows; its end does not.
    edge = CriticalFacts(since=NOW - timedelta(days=14), grace_until=NOW)
    assert not check_upload_token(policy, "p", edge, False, NOW).allowed
    assert check_upload_token(policy, "p", edge, False, NOW - timedelta(microseconds=1)).allowed


def test_top_percent_designates_the_most_downloaded_with_ties_at_the_boundary() -> None:
    policy = AccountPolicy(critical=CriticalRule("top", 1.0))
    counts = {f"p{i}": i for i in range(1, 201)}  # 200 projects with downloads: the top 2
    assert critical_threshold(policy, counts) == {"p200", "p199"}
    counts["p198"] = 199  # a tie with the second
    assert critical_threshold(policy, counts) == {"p200", "p199", "p198"}
    assert critical_threshold(policy, {"a": 5, "b": 0}) == {"a"}  # at least one; no downloads: never
    assert critical_threshold(policy, {"a": 0}) == set()
    assert critical_threshold(AccountPolicy(critical=CriticalRule("top", 10.0)), counts) >= {"p200"}


def test_a_list_and_none() -> None:
    listed = AccountPolicy(critical=CriticalRule("list", names=frozenset({"core"})))
    assert critical_threshold(listed, {"core": 0, "other": 10_000}) == {"core"}
    assert critical_threshold(AccountPolicy(critical=CriticalRule("none")), {"other": 10_000}) == set()


def test_a_jump_is_more_than_the_factor_week_over_week() -> None:
    policy = AccountPolicy(download_jump=20.0)
    assert not is_jump(policy, 200, 10)  # 20x exactly
    assert is_jump(policy, 201, 10)
    assert is_jump(policy, 21, 0)  # from a quiet week: from one
    assert not is_jump(policy, 20, 0)


def test_a_token_unused_for_the_configured_time_stops_working() -> None:
    created = NOW - timedelta(days=100)
    assert check_token_use(AccountPolicy(), created, None, NOW).allowed  # no expiry by default
    policy = AccountPolicy(token_unused_expiry=timedelta(days=90))
    used = check_token_use(policy, created, NOW - timedelta(days=89), NOW)
    assert used.allowed and used.until == NOW + timedelta(days=1)
    denied = check_token_use(policy, created, None, NOW)
    assert (denied.allowed, denied.rule) == (False, "token-unused")
    assert denied.reason == ("this token was not used since 2026-08-14 12:00 UTC and expired on 2026-11-12 12:00 UTC "
                             "(tokens unused for 90 days stop working); create a new one")
