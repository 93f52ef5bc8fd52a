"""Sign-in sessions, their rate limit, and the prohibited names admins keep."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts, prohibited, sessions
from moorage.services.context import Context
from moorage.store.tables import events, sign_in_failures, web_sessions
from moorage.web.statuses import status_of
from tests.services.helpers import count, rows, snapshot, upload
from tests.support.dists import make_wheel
from tests.support.refusals import raises_not_found

PASSWORD = "correct horse battery staple"


def _user(ctx: Context, name: str = "alice", admin: bool = False) -> None:
    accounts.add_user(ctx, name, password=PASSWORD, is_admin=admin)


def test_a_session_stores_only_a_hash_and_ends_after_its_lifetime(ctx: Context, clock: ManualClock) -> None:
    _user(ctx)
    session_id = sessions.sign_in(ctx, "alice", PASSWORD, address="127.0.0.1")
    (row,) = rows(ctx, web_sessions)
    assert session_id not in repr(tuple(row))
    who = sessions.current_user(ctx, session_id)
    assert who is not None and who.name == "alice" and not who.is_admin
    clock.advance(ctx.settings.web.session_lifetime - timedelta(seconds=1))
    assert sessions.current_user(ctx, session_id) is not None
    clock.advance(timedelta(seconds=1))
    assert sessions.current_user(ctx, session_id) is None
    assert sessions.current_user(ctx, "made-up") is None


def test_signing_out_ends_the_session(ctx: Context) -> None:
    _user(ctx)
    session_id = sessions.sign_in(ctx, "alice", PASSWORD, address="127.0.0.1")
    sessions.sign_out(ctx, session_id)
    assert sessions.current_user(ctx, session_id) is None
    assert count(ctx, web_sessions) == 0


def test_five_failures_lock_the_account_for_the_lockout_then_it_opens(ctx: Context, clock: ManualClock) -> None:
    _user(ctx)
    for _ in range(5):
        with pytest.raises(Denied) as wrong:
            sessions.sign_in(ctx, "alice", "guess", address="10.0.0.9")
        assert (wrong.value.decision.rule, status_of(wrong.value.decision)) == ("sign-in-failed", 401)
        clock.advance(timedelta(seconds=10))
    with pytest.raises(Denied) as locked:
        sessions.sign_in(ctx, "alice", PASSWORD, address="10.0.0.9")  # even the right password
    assert (locked.value.decision.rule, status_of(locked.value.decision)) == ("sign-in-rate-limit", 429)
    # The lock lifts when the oldest of the five failures is older than the lockout.
    assert locked.value.decision.until is not None
    clock.set(locked.value.decision.until)
    assert sessions.sign_in(ctx, "alice", PASSWORD, address="10.0.0.9")
    assert count(ctx, sign_in_failures) == 0  # a success clears the count


def test_an_unknown_user_and_a_user_without_password_fail_the_same_way(ctx: Context) -> None:
    accounts.add_user(ctx, "nopass", password=None)
    for name in ("nobody", "nopass"):
        with pytest.raises(Denied) as refused:
            sessions.sign_in(ctx, name, "anything", address="127.0.0.1")
        assert refused.value.decision.reason == "the user name or the password is wrong"


def test_sign_ins_are_not_events_the_log_is_public(ctx: Context) -> None:
    _user(ctx)
    before = count(ctx, events)
    sessions.sign_in(ctx, "alice", PASSWORD, address="192.0.2.1")
    assert count(ctx, events) == before


def test_an_admin_prohibits_a_name_with_a_reason_and_uploads_of_it_and_look_alikes_are_refused(
        ctx: Context, tmp_path: Path) -> None:
    _user(ctx, "root", admin=True)
    _user(ctx, "bob")
    with pytest.raises(Denied) as not_admin:
        prohibited.prohibit(ctx, "pillow2", reason="typosquat", as_user="bob")
    assert not_admin.value.decision.rule == "admin-only"
    with pytest.raises(Denied) as no_reason:
        prohibited.prohibit(ctx, "pillow2", reason=" ", as_user="root")
    assert no_reason.value.decision.rule == "reason-required"
    assert prohibited.prohibit(ctx, "Pillow_2", reason="typosquat", as_user="root") is True
    assert prohibited.prohibit(ctx, "pillow-2", reason="again", as_user="root") is False
    assert [p.name for p in prohibited.list_prohibited(ctx)] == ["pillow-2"]
    _id, token = accounts.create_token(ctx, "bob")
    for name in ("pillow-2", "pillow.2", "pi11ow-2", "PILL0W_2"):
        before = snapshot(ctx)
        with pytest.raises(Denied) as refused:
            upload(ctx, token, make_wheel(tmp_path / name, name, "1.0"))
        assert refused.value.decision.rule == "prohibited-name", name
        assert snapshot(ctx) == before
    prohibited.lift_prohibition(ctx, "pillow-2", reason="released to its owner", as_user="root")
    upload(ctx, token, make_wheel(tmp_path / "ok", "pillow-2", "1.0"))
    with raises_not_found():
        prohibited.lift_prohibition(ctx, "pillow-2", reason="twice", as_user="root")
    actions = [e.action for e in rows(ctx, events) if e.action.startswith("name-")]
    assert actions == ["name-prohibited", "name-unprohibited"]
