"""The pure second-factor rules: TOTP steps and replay, recovery codes, fresh checks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from moorage.domain import factors as rules
from moorage.domain.factors import TotpOutcome
from moorage.web.statuses import status_of

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
# 10 s into a 30-second step, so "now" is plainly inside one step.
NOW = datetime(2026, 11, 24, 9, 14, 10, tzinfo=UTC)


def _code(step: int) -> str:
    return rules.totp_code(SECRET, step)


def _wrong_code(now: datetime) -> str:
    """A code none of the three accepted steps shows (the first such, deterministically)."""
    step = rules.totp_step(now)
    right = {_code(step + d) for d in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in right)


def test_the_codes_agree_with_pyotp_and_rfc_6238_steps() -> None:
    assert rules.totp_step(NOW) == int(NOW.timestamp()) // 30
    assert _code(rules.totp_step(NOW)) == pyotp.TOTP(SECRET).at(NOW)
    # RFC 6238 appendix B's SHA-1 vector, 8 digits at T=59 is 94287082: its last 6 digits.
    ascii_key = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert rules.totp_code(ascii_key, 59 // 30) == "287082"


def test_previous_current_and_next_steps_are_accepted_and_a_further_one_is_not() -> None:
    step = rules.totp_step(NOW)
    for delta in (-1, 0, 1):
        check = rules.check_totp(SECRET, _code(step + delta), NOW, None)
        assert check.accepted and check.step == step + delta, delta
    for delta in (-3, -2, 2, 3):
        assert rules.check_totp(SECRET, _code(step + delta), NOW, None).outcome is TotpOutcome.WRONG, delta


def test_a_code_is_accepted_once_only_steps_after_the_last_one_count() -> None:
    step = rules.totp_step(NOW)
    used = rules.check_totp(SECRET, _code(step), NOW, None)
    assert used.accepted
    again = rules.check_totp(SECRET, _code(step), NOW, used.step)
    assert again.outcome is TotpOutcome.REUSED and not again.accepted
    # The previous step's code is older than the one used: refused as a replay too.
    assert rules.check_totp(SECRET, _code(step - 1), NOW, used.step).outcome is TotpOutcome.REUSED
    # The next step's code is newer: accepted, and then the current one is spent as well.
    later = rules.check_totp(SECRET, _code(step + 1), NOW, used.step)
    assert later.accepted and later.step == step + 1
    assert rules.check_totp(SECRET, _code(step), NOW, later.step).outcome is TotpOutcome.REUSED


def test_wrong_and_malformed_codes_are_refused_with_their_own_sentences() -> None:
    assert rules.check_totp(SECRET, _wrong_code(NOW), NOW, None).outcome is TotpOutcome.WRONG
    for bad in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        assert rules.check_totp(SECRET, bad, NOW, None).outcome is TotpOutcome.MALFORMED, bad
    spaced = _code(rules.totp_step(NOW))
    assert rules.check_totp(SECRET, f" {spaced[:3]} {spaced[3:]} ", NOW, None).accepted  # as apps show them
    reasons = {o: rules.totp_refusal(rules.TotpCheck(o)).reason for o in
               (TotpOutcome.WRONG, TotpOutcome.REUSED, TotpOutcome.MALFORMED)}
    assert "wrong" in reasons[TotpOutcome.WRONG]
    assert "already used" in reasons[TotpOutcome.REUSED]
    assert "6 digits" in reasons[TotpOutcome.MALFORMED]
    assert all(status_of(rules.totp_refusal(rules.TotpCheck(o))) == 401 for o in reasons)


def test_the_otpauth_address_names_the_issuer_and_the_account() -> None:
    uri = rules.totp_uri(SECRET, "alice")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp" and parts.path == "/moorage:alice"
    query = parse_qs(parts.query)
    assert query["secret"] == [SECRET] and query["issuer"] == ["moorage"]
    assert rules.group(SECRET) == "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
    assert rules.valid_totp_secret(SECRET)
    assert not rules.valid_totp_secret(SECRET[:-1]) and not rules.valid_totp_secret(SECRET.lower())
    assert not rules.valid_totp_secret("1" * 32)


def test_recovery_codes_are_formatted_normalized_and_hashed() -> None:
    code = rules.format_recovery_code(bytes(range(10)))
    assert code == "aaaq-eaye-auda-ocaj"
    for typed in (code, code.upper(), code.replace("-", ""), " aaaq eaye auda ocaj "):
        assert rules.normalize_recovery_code(typed) == "aaaqeayeaudaocaj", typed
    for bad in ("", "aaaq-eaye-auda", "aaaq-eaye-audb-oca1", "aaaq-eaye-audA-ocaj-x"):
        assert rules.normalize_recovery_code(bad) is None, bad
    assert rules.hash_recovery_code("aaaqeayeaudaocaj") == hashlib.sha256(b"aaaqeayeaudaocaj").hexdigest()
    with pytest.raises(ValueError):
        rules.format_recovery_code(b"short")


def test_a_fresh_check_is_asked_only_of_accounts_with_a_factor_and_lasts_the_window() -> None:
    window = timedelta(minutes=15)
    no_factor = rules.check_fresh_factor(has_factor=False, factor_at=None, now=NOW, window=window, what="x")
    assert no_factor.allowed
    never = rules.check_fresh_factor(has_factor=True, factor_at=None, now=NOW, window=window,
                                     what="creating an API token")
    assert not never.allowed and never.rule == "fresh-factor-required"
    assert never.reason == ("creating an API token needs a second-factor check within the last 15 minutes; "
                            "this session has not passed one yet")
    at = NOW - timedelta(minutes=14, seconds=59)
    fresh = rules.check_fresh_factor(has_factor=True, factor_at=at, now=NOW, window=window, what="x")
    assert fresh.allowed and fresh.until == at + window
    stale = rules.check_fresh_factor(has_factor=True, factor_at=NOW - window, now=NOW, window=window, what="x")
    assert not stale.allowed and "the last was at 24 Nov 2026 08:59 UTC" in stale.reason


def test_labels_are_one_trimmed_line() -> None:
    assert rules.clean_label("  my\nphone\x00 ", "App") == "my phone"
    assert rules.clean_label("   ", "App") == "App"
    assert len(rules.clean_label("x" * 500, "App")) == rules.LABEL_LENGTH
