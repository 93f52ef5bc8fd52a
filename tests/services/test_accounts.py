"""Users and API tokens: what is stored, what is refused, and the event of each change."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.domain.policy import check_token
from moorage.services import accounts
from moorage.services.context import Context
from moorage.store.tables import events, tokens, users
from tests.services.conftest import START
from tests.services.helpers import all_events, rows, snapshot
from tests.support.refusals import raises_not_found

PASSWORD = "correct horse battery staple"


def _all_text(ctx: Context, table: sa.Table) -> str:
    """Every value of every row of a table, as one string (to look for leaked secrets)."""
    return "\n".join(repr(tuple(r)) for r in rows(ctx, table))


def test_add_user_stores_an_argon2_hash_not_the_password(ctx: Context) -> None:
    uid = accounts.add_user(ctx, "alice", password=PASSWORD)
    (row,) = rows(ctx, users)
    assert row.id == uid
    assert row.name == "alice"
    assert row.is_admin is False
    assert row.created_at == START
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in _all_text(ctx, users)
    assert PASSWORD not in _all_text(ctx, events)

    assert accounts.verify_password(ctx, "alice", PASSWORD)
    assert not accounts.verify_password(ctx, "alice", PASSWORD + "!")
    assert not accounts.verify_password(ctx, "alice", "")
    assert not accounts.verify_password(ctx, "nobody", PASSWORD)


def test_user_without_password_cannot_log_in(ctx: Context) -> None:
    accounts.add_user(ctx, "robot", password=None)
    (row,) = rows(ctx, users)
    assert row.password_hash is None
    assert not accounts.verify_password(ctx, "robot", "")
    assert not accounts.verify_password(ctx, "robot", "anything")


def test_add_user_appends_one_event(ctx: Context, clock: ManualClock) -> None:
    accounts.add_user(ctx, "alice", password=None)
    clock.advance(timedelta(seconds=5))
    accounts.add_user(ctx, "root", password=None, is_admin=True, actor="admin")
    evs = all_events(ctx)
    assert [(e.action, e.actor, e.subject, e.project, e.payload, e.created_at) for e in evs] == [
        ("user-created", "system", "user:alice", None, {"user": "alice", "admin": False}, START),
        ("user-created", "admin", "user:root", None, {"user": "root", "admin": True},
         START + timedelta(seconds=5)),
    ]
    assert evs[0].serial < evs[1].serial
    assert [r.is_admin for r in rows(ctx, users)] == [False, True]


def test_duplicate_user_is_refused(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=None)
    before = snapshot(ctx)
    with pytest.raises(Denied) as err:
        accounts.add_user(ctx, "alice", password=PASSWORD)
    assert err.value.decision.rule == "user-exists"
    assert not err.value.decision.allowed
    assert snapshot(ctx) == before


@pytest.mark.parametrize("name", ["", "-alice", "al ice", "a/b", "x" * 101, "élise"])
def test_invalid_user_name_is_refused(ctx: Context, name: str) -> None:
    with pytest.raises(Denied) as err:
        accounts.add_user(ctx, name, password=None)
    assert err.value.decision.rule == "invalid-user-name"
    assert rows(ctx, users) == []
    assert all_events(ctx) == []


def test_create_token_stores_only_the_sha256(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=None)
    token_id, token = accounts.create_token(ctx, "alice", description="laptop")
    assert token.startswith(f"{accounts.TOKEN_PREFIX}-{token_id}-")
    secret = token.removeprefix(f"{accounts.TOKEN_PREFIX}-{token_id}-")
    assert len(secret) >= 40  # 32 random bytes, url-safe base64

    (row,) = rows(ctx, tokens)
    assert row.id == token_id
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.description == "laptop"
    assert row.projects == []
    assert row.created_at == START
    assert row.expires_at is None
    assert row.revoked_at is None
    for table in (tokens, events, users):
        text = _all_text(ctx, table)
        assert token not in text
        assert secret not in text


def test_tokens_are_unique(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=None)
    made = [accounts.create_token(ctx, "alice") for _ in range(5)]
    assert len({t for _, t in made}) == 5
    assert len({i for i, _ in made}) == 5
    assert len({r.token_hash for r in rows(ctx, tokens)}) == 5


def test_token_scope_is_normalized(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=None)
    token_id, token = accounts.create_token(ctx, "alice",
                                            projects=["My_Project", "my.project", "Other--One", "zed"])
    (row,) = rows(ctx, tokens)
    assert row.projects == ["my-project", "other-one", "zed"]
    (event,) = [e for e in all_events(ctx) if e.action == "token-created"]
    assert event.payload["projects"] == ["my-project", "other-one", "zed"]
    with ctx.db.read() as conn:
        found = accounts.find_token(conn, token)
    assert found is not None
    assert found[0].projects == frozenset({"my-project", "other-one", "zed"})


def test_token_with_invalid_project_is_refused(ctx: Context) -> None:
    accounts.add_user(ctx, "alice", password=None)
    before = snapshot(ctx)
    with pytest.raises(Denied) as err:
        accounts.create_token(ctx, "alice", projects=["good", "-bad-"])
    assert err.value.decision.rule == "invalid-name"
    assert snapshot(ctx) == before


@pytest.mark.parametrize("days", [0, -1])
def test_token_expiry_must_be_positive(ctx: Context, days: int) -> None:
    accounts.add_user(ctx, "alice", password=None)
    before = snapshot(ctx)
    with pytest.raises(Denied) as err:
        accounts.create_token(ctx, "alice", expires_days=days)
    assert err.value.decision.rule == "invalid-expiry"
    assert snapshot(ctx) == before


def test_token_for_unknown_user(ctx: Context) -> None:
    with raises_not_found():
        accounts.create_token(ctx, "nobody")
    assert rows(ctx, tokens) == []
    assert all_events(ctx) == []
    with raises_not_found():
        accounts.list_tokens(ctx, "nobody")


def test_token_expires_days_after_the_clock(ctx: Context, clock: ManualClock) -> None:
    accounts.add_user(ctx, "alice", password=None)
    clock.advance(timedelta(hours=7, microseconds=3))
    now = clock.now()
    token_id, token = accounts.create_token(ctx, "alice", expires_days=30)
    (row,) = rows(ctx, tokens)
    assert row.created_at == now
    assert row.expires_at == now + timedelta(days=30)
    (event,) = [e for e in all_events(ctx) if e.action == "token-created"]
    assert event.payload == {"token": token_id, "user": "alice", "projects": [],
                             "expires_at": (now + timedelta(days=30)).isoformat(), "with_second_factor": False}

    with ctx.db.read() as conn:
        found = accounts.find_token(conn, token)
    assert found is not None
    view, _ = found
    assert view.expires_at == now + timedelta(days=30)
    assert check_token(view, now + timedelta(days=30) - timedelta(microseconds=1)).allowed
    expired = check_token(view, now + timedelta(days=30))
    assert not expired.allowed and expired.rule == "token-expired"


def test_list_tokens(ctx: Context, clock: ManualClock) -> None:
    accounts.add_user(ctx, "alice", password=None)
    accounts.add_user(ctx, "bob", password=None)
    first, _ = accounts.create_token(ctx, "alice", description="one", projects=["A"])
    clock.advance(timedelta(minutes=1))
    accounts.create_token(ctx, "bob", description="bob's")
    clock.advance(timedelta(minutes=1))
    second, _ = accounts.create_token(ctx, "alice", description="two", expires_days=1)
    clock.advance(timedelta(minutes=1))
    accounts.revoke_token(ctx, first)

    listed = accounts.list_tokens(ctx, "alice")
    assert [(t.id, t.user, t.description, t.projects) for t in listed] == [
        (first, "alice", "one", ["a"]), (second, "alice", "two", [])]
    assert listed[0].created_at == START
    assert listed[0].revoked_at == START + timedelta(minutes=3)
    assert listed[0].expires_at is None
    assert listed[1].created_at == START + timedelta(minutes=2)
    assert listed[1].expires_at == START + timedelta(minutes=2, days=1)
    assert listed[1].revoked_at is None
    assert [t.description for t in accounts.list_tokens(ctx, "bob")] == ["bob's"]
    accounts.add_user(ctx, "carol", password=None)
    assert accounts.list_tokens(ctx, "carol") == []


def test_revoke_token(ctx: Context, clock: ManualClock) -> None:
    accounts.add_user(ctx, "alice", password=None)
    token_id, token = accounts.create_token(ctx, "alice")
    clock.advance(timedelta(days=2))
    accounts.revoke_token(ctx, token_id, actor="admin")

    (row,) = rows(ctx, tokens)
    assert row.revoked_at == START + timedelta(days=2)
    last = all_events(ctx)[-1]
    assert (last.action, last.actor, last.subject, last.payload, last.created_at) == (
        "token-revoked", "admin", f"token:{token_id}", {"token": token_id, "user": "alice"},
        START + timedelta(days=2))

    # Revoking again changes nothing and appends nothing.
    before = snapshot(ctx)
    clock.advance(timedelta(days=1))
    accounts.revoke_token(ctx, token_id)
    assert snapshot(ctx) == before

    with raises_not_found():
        accounts.revoke_token(ctx, "0123456789ab")
    assert snapshot(ctx) == before


def test_find_token(ctx: Context, clock: ManualClock) -> None:
    uid = accounts.add_user(ctx, "alice", password=None)
    token_id, token = accounts.create_token(ctx, "alice", projects=["Foo"])
    with ctx.db.read() as conn:
        found = accounts.find_token(conn, token)
        assert found is not None
        view, user_id = found
        assert user_id == uid
        assert (view.token_id, view.user_name, view.projects, view.expires_at, view.revoked_at) == (
            token_id, "alice", frozenset({"foo"}), None, None)
        assert check_token(view, clock.now()).allowed

        # Unknown tokens: a forged secret, a token of another shape, nothing at all.
        assert accounts.find_token(conn, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert accounts.find_token(conn, f"{accounts.TOKEN_PREFIX}-{token_id}-") is None
        assert accounts.find_token(conn, hashlib.sha256(token.encode()).hexdigest()) is None
        assert accounts.find_token(conn, "") is None
        assert accounts.find_token(conn, "pypi-" + token) is None

    clock.advance(timedelta(seconds=1))
    accounts.revoke_token(ctx, token_id)
    with ctx.db.read() as conn:
        found = accounts.find_token(conn, token)
    assert found is not None
    view, _ = found
    assert view.revoked_at == START + timedelta(seconds=1)
    decision = check_token(view, clock.now())
    assert not decision.allowed and decision.rule == "invalid-token"


def test_each_change_appends_exactly_one_event(ctx: Context, clock: ManualClock) -> None:
    steps = []

    def step(action: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        before = all_events(ctx)
        clock.advance(timedelta(seconds=1))
        result = fn(ctx, *args, **kwargs)
        after = all_events(ctx)
        assert after[: len(before)] == before, "an earlier event changed"
        assert len(after) == len(before) + 1, f"{action}: {len(after) - len(before)} events"
        new = after[-1]
        assert new.action == action
        assert new.created_at == clock.now()
        assert not before or new.serial > before[-1].serial
        steps.append(new)
        return result

    step("user-created", accounts.add_user, "alice", password=None)
    step("user-created", accounts.add_user, "bob", password=None, actor="alice")
    tid, _ = step("token-created", accounts.create_token, "alice", projects=["x"])
    tid2, _ = step("token-created", accounts.create_token, "bob", actor="admin")
    step("token-revoked", accounts.revoke_token, tid)
    step("token-revoked", accounts.revoke_token, tid2)
    assert [s.actor for s in steps] == ["system", "alice", "alice", "admin", "system", "system"]
    assert [s.payload for s in steps] == [
        {"user": "alice", "admin": False},
        {"user": "bob", "admin": False},
        {"token": tid, "user": "alice", "projects": ["x"], "expires_at": None, "with_second_factor": False},
        {"token": tid2, "user": "bob", "projects": [], "expires_at": None, "with_second_factor": False},
        {"token": tid, "user": "alice"},
        {"token": tid2, "user": "bob"},
    ]
    serials = [s.serial for s in steps]
    assert serials == sorted(serials) and len(set(serials)) == len(serials)
