"""Decisions and the Denied exception; the clock that is passed in instead of read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.domain.clock import ManualClock, isoformat_z
from moorage.domain.decisions import NOT_FOUND, Decision, Denied, not_found
from moorage.services.clocks import SystemClock


def test_allow() -> None:
    decision = Decision.allow()
    assert decision.allowed and decision.rule == "allowed" and decision.reason == "" and decision.until is None


def test_deny() -> None:
    decision = Decision.deny("some-rule", "because")
    assert (decision.allowed, decision.rule, decision.reason, decision.until) == (False, "some-rule", "because", None)
    # A decision says nothing of HTTP: the web's table gives the status, by rule (web/statuses.py).
    assert [f.name for f in dataclasses.fields(Decision)] == ["allowed", "rule", "reason", "until"]


def test_as_dict() -> None:
    until = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert Decision.deny("r", "why", until=until).as_dict() == {
        "allowed": False, "rule": "r", "reason": "why", "until": "2026-01-02T03:04:05+00:00"}
    assert Decision.allow().as_dict() == {"allowed": True, "rule": "allowed", "reason": "", "until": None}


def test_decisions_are_immutable() -> None:
    decision = Decision.deny("r", "why")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.allowed = True  # type: ignore[misc]


def test_denied_carries_its_decision() -> None:
    until = datetime(2026, 1, 2, tzinfo=UTC)
    denied = Denied.by("the-rule", "the reason", until=until)
    assert isinstance(denied, Denied)
    assert str(denied) == "the reason"
    assert denied.decision == Decision.deny("the-rule", "the reason", until=until)
    with pytest.raises(Denied) as info:
        raise denied
    assert info.value.decision.rule == "the-rule"


def test_not_found_is_a_denial_by_its_rule() -> None:
    missing = not_found("no project named 'nope'")
    assert isinstance(missing, Denied) and str(missing) == "no project named 'nope'"
    assert missing.decision == Decision.deny(NOT_FOUND, "no project named 'nope'") and NOT_FOUND == "not-found"


# -- clock ----------------------------------------------------------------------------------
def test_the_manual_clock_moves_only_when_told() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == clock.now() == start
    clock.advance(timedelta(hours=2))
    assert clock.now() == start + timedelta(hours=2)
    clock.set(datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)


def test_the_manual_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))


def test_the_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().utcoffset() == timedelta(0)


def test_isoformat_z() -> None:
    assert isoformat_z(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"
    east = timezone(timedelta(hours=5, minutes=30))
    assert isoformat_z(datetime(2026, 1, 2, 9, 0, tzinfo=east)) == "2026-01-02T03:30:00.000000Z"


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_isoformat_z_round_trips(instant: datetime) -> None:
    text = isoformat_z(instant)
    assert text.endswith("Z")
    # Compared in UTC: an aware time in a repeated hour never equals one in another zone.
    assert datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) == instant.astimezone(UTC)
