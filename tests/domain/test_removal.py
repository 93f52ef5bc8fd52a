"""The pending-removal rule at the instants around a removal, with time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from moorage.domain.lifecycle import Actor, may_cancel_removal
from moorage.domain.removal import RemovalOffer, removal_in_effect, removal_offer

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def test_a_removal_is_in_effect_from_its_instant_on_and_not_a_moment_before() -> None:
    assert not removal_in_effect(AT, AT - timedelta(days=30))
    assert not removal_in_effect(AT, AT - TICK)
    assert removal_in_effect(AT, AT)
    assert removal_in_effect(AT, AT + TICK)
    assert removal_in_effect(AT, AT + timedelta(days=3650))


def test_no_announced_removal_is_never_in_effect() -> None:
    assert not removal_in_effect(None, AT)
    assert removal_offer(None, AT) == RemovalOffer(files=True, until=None)
    assert removal_offer(None, AT, opted_in=True) == RemovalOffer(files=True, until=None)


def test_the_default_root_offers_the_files_until_the_instant_and_says_so() -> None:
    assert removal_offer(AT, AT - timedelta(days=30)) == RemovalOffer(files=True, until=AT)
    assert removal_offer(AT, AT - TICK) == RemovalOffer(files=True, until=AT)
    assert removal_offer(AT, AT) == RemovalOffer(files=False, until=None)
    assert removal_offer(AT, AT + timedelta(days=1)) == RemovalOffer(files=False, until=None)


def test_the_opt_in_root_offers_the_files_at_every_instant_for_good() -> None:
    for now in (AT - timedelta(days=30), AT - TICK, AT, AT + TICK, AT + timedelta(days=3650)):
        assert removal_offer(AT, now, opted_in=True) == RemovalOffer(files=True, until=None)


@given(offset=st.integers(min_value=-10**12, max_value=10**12))
def test_the_offer_and_the_rule_agree_at_any_instant(offset: int) -> None:
    now = AT + timedelta(microseconds=offset)
    offer = removal_offer(AT, now)
    assert offer.files is not removal_in_effect(AT, now)
    # An answer that holds "until" an instant changes exactly there.
    if offer.until is not None:
        assert now < offer.until and not removal_offer(AT, offer.until).files


def test_cancelling_after_the_instant_is_for_an_admin_only() -> None:
    owner, admin = Actor("ann", role="owner"), Actor("root", is_admin=True)
    assert may_cancel_removal(owner, "demo", AT, AT - TICK).allowed
    refused = may_cancel_removal(owner, "demo", AT, AT)
    assert not refused.allowed and refused.rule == "removal-done"
    assert may_cancel_removal(admin, "demo", AT, AT + timedelta(days=1)).allowed
