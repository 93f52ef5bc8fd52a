"""The daily critical-project job, the 2FA rule in the services, and tokens revisited."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from moorage.domain.accounts import AccountPolicy, CriticalRule
from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts, checks, critical, lifecycle
from moorage.services.context import Context
from moorage.services.manage_view import manage_view
from moorage.store.tables import critical_projects, download_counts, events, projects, second_factors, tokens, users
from tests.services.helpers import upload
from tests.support.dists import make_wheel


def with_policy(ctx: Context, **kwargs: object) -> Context:
    return dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, accounts=AccountPolicy(**kwargs)))


def downloads(ctx: Context, project: str, per_day: dict[int, int]) -> None:
    """Client downloads on the days `ago` days before today (the counters' input)."""
    today = ctx.clock.now().date()
    with ctx.db.write() as conn:
        pid = conn.execute(sa.select(projects.c.id).where(projects.c.normalized_name == project)).scalar_one()
        for ago, count in per_day.items():
            day = today - timedelta(days=ago)
            where = (download_counts.c.project_id == pid, download_counts.c.day == day,
                     download_counts.c.kind == "client")
            if conn.execute(sa.select(download_counts.c.count).where(*where)).first() is None:
                conn.execute(download_counts.insert().values(project_id=pid, day=day, kind="client", count=count))
            else:
                conn.execute(download_counts.update().where(*where).values(count=download_counts.c.count + count))


def give_factor(ctx: Context, user: str) -> None:
    with ctx.db.write() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == user)).scalar_one()
        conn.execute(second_factors.insert().values(id=secrets.token_hex(8), user_id=uid, kind="totp", label="app",
                                                    created_at=ctx.clock.now(), totp_secret="JBSWY3DPEHPK3PXP"))


@pytest.fixture
def index(ctx: Context, token: str, dists: Path) -> Context:
    """Projects big, small and quiet, uploaded by alice; 30-day downloads 900, 30 and 0."""
    for name in ("big", "small", "quiet"):
        upload(ctx, token, make_wheel(dists, name, "1.0"))
    downloads(ctx, "big", {day: 30 for day in range(30)})
    downloads(ctx, "small", {day: 1 for day in range(30)})
    return ctx


def test_the_daily_job_designates_the_top_project_with_a_grace_period_once_a_day(
        index: Context, clock: ManualClock) -> None:
    ctx = with_policy(index, critical=CriticalRule("top", 1.0), critical_grace=timedelta(days=14))
    report = critical.run_daily(ctx)
    assert (report.ran, report.designated, report.critical, report.flagged) == (True, ["big"], ["big"], [])
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(critical_projects)).one()
        event = conn.execute(sa.select(events).where(events.c.action == "project-became-critical")).one()
    assert (row.since, row.grace_until, row.rule, row.downloads_30d) == (
        clock.now(), clock.now() + timedelta(days=14), "top 1% by 30-day downloads", 900)
    assert (event.project, event.payload["grace_until"]) == ("big", (clock.now() + timedelta(days=14)).isoformat())
    again = critical.run_daily(ctx)
    assert not again.ran and again.next_run == clock.now() + timedelta(days=1)
    clock.advance(timedelta(days=1))
    downloads(ctx, "small", {0: 5000, 1: 5000, 8: 2000})  # now the most downloaded, without a jump
    report = critical.run_daily(ctx)
    assert report.designated == ["small"] and report.critical == ["big", "small"]  # a designation stays


def test_a_jump_is_flagged_for_an_admin_not_designated(index: Context, clock: ManualClock) -> None:
    ctx = with_policy(index, critical=CriticalRule("top", 1.0))
    downloads(ctx, "quiet", {0: 50_000})  # nothing the week before: a swarm
    report = critical.run_daily(ctx)
    assert (report.flagged, report.designated) == (["quiet"], ["big"])
    assert "quiet" not in report.critical
    (flag,) = critical.list_flags(ctx)
    assert (flag.project, flag.week, flag.previous_week) == ("quiet", 50_000, 0)
    clock.advance(timedelta(days=1))
    assert "quiet" not in critical.run_daily(ctx).critical  # still waiting for the admin
    with pytest.raises(Denied) as refused:
        critical.review_flag(ctx, "quiet", "dismiss", reason=" ", actor="root")
    assert refused.value.decision.rule == "reason-required"
    critical.review_flag(ctx, "quiet", "dismiss", reason="one address, a bot", actor="root")
    clock.advance(timedelta(days=1))
    assert "quiet" not in critical.run_daily(ctx).critical  # held out after a dismissal
    assert critical.list_flags(ctx) == [] and critical.list_flags(ctx, open_only=False)[0].decision == "dismissed"


def test_a_confirmed_jump_is_designated_on_the_next_run(index: Context, clock: ManualClock) -> None:
    ctx = with_policy(index, critical=CriticalRule("top", 1.0))
    downloads(ctx, "quiet", {0: 50_000})
    critical.run_daily(ctx)
    critical.review_flag(ctx, "quiet", "confirm", reason="a real release went viral", actor="root")
    clock.advance(timedelta(days=1))
    assert "quiet" in critical.run_daily(ctx).designated


def test_a_list_is_followed_exactly_and_none_designates_nothing(index: Context, clock: ManualClock) -> None:
    listed = with_policy(index, critical=CriticalRule("list", names=frozenset({"quiet"})))
    assert critical.run_daily(listed).critical == ["quiet"]
    clock.advance(timedelta(days=1))
    report = critical.run_daily(with_policy(index, critical=CriticalRule("none")))
    assert (report.released, report.critical) == (["quiet"], [])


def test_the_2fa_rule_stops_management_and_uploads_after_the_grace_period(
        index: Context, clock: ManualClock, dists: Path) -> None:
    ctx = with_policy(index, require_2fa="critical", critical=CriticalRule("top", 1.0),
                      critical_grace=timedelta(days=14))
    critical.run_daily(ctx)
    old_token = accounts.create_token(ctx, "alice")[1]
    upload(ctx, old_token, make_wheel(dists, "big", "1.1"))  # in the grace period: as before
    lifecycle.yank(ctx, "big", "1.1", reason="testing", as_user="alice")
    clock.advance(timedelta(days=14))
    with pytest.raises(Denied) as refused:
        lifecycle.unyank(ctx, "big", "1.1", as_user="alice")
    assert refused.value.decision.rule == "two-factor-required"
    assert checks.check(ctx, "yank", "big", "1.1", as_user="alice").rule == "two-factor-required"
    assert checks.check(ctx, "delete", "big", "1.1", as_user="alice").rule == "two-factor-required"
    view = manage_view(ctx, "big", as_user="alice")
    assert view.yank.rule == "two-factor-required" and view.leave.allowed  # leaving stays open
    with pytest.raises(Denied) as refused:
        upload(ctx, old_token, make_wheel(dists, "big", "1.2"))
    assert refused.value.decision.rule == "two-factor-required"
    lifecycle.yank(ctx, "small", "1.0", reason="not critical", as_user="alice")  # other projects: as before
    upload(ctx, old_token, make_wheel(dists, "small", "1.1"))
    lifecycle.unyank(ctx, "big", "1.1")  # the operator at the command line is not an account

    give_factor(ctx, "alice")
    lifecycle.yank(ctx, "big", "1.1", reason="with a factor", as_user="alice")
    with pytest.raises(Denied):  # the old token was made without a factor
        upload(ctx, old_token, make_wheel(dists, "big", "1.3"))
    new_token = accounts.create_token(ctx, "alice")[1]
    assert upload(ctx, new_token, make_wheel(dists, "big", "1.3")).outcome == "created"


def test_require_all_applies_to_new_projects_too(ctx: Context, token: str, dists: Path) -> None:
    strict = with_policy(ctx, require_2fa="all")
    with pytest.raises(Denied) as refused:
        upload(strict, token, make_wheel(dists, "fresh", "1.0"))
    assert "every account" in (refused.value.decision.reason or "")
    give_factor(strict, "alice")
    assert upload(strict, accounts.create_token(strict, "alice")[1], make_wheel(dists, "fresh", "1.0")).outcome \
        == "created"


def test_revoke_every_token_of_an_account(ctx: Context, token: str, dists: Path) -> None:
    second = accounts.create_token(ctx, "alice", description="ci")[1]
    accounts.add_user(ctx, "bob", password=None)
    bobs = accounts.create_token(ctx, "bob")[1]
    revoked = accounts.revoke_all_tokens(ctx, "alice", actor="root", reason="laptop stolen")
    assert len(revoked) == 2
    for t in (token, second):
        with pytest.raises(Denied):
            upload(ctx, t, make_wheel(dists, "anything", "1.0"))
    assert upload(ctx, bobs, make_wheel(dists, "anything", "1.0")).outcome == "created"
    with ctx.db.read() as conn:
        event = conn.execute(sa.select(events).where(events.c.action == "tokens-revoked-all")).one()
    assert event.payload == {"user": "alice", "tokens": revoked, "reason": "laptop stolen"}
    assert accounts.revoke_all_tokens(ctx, "alice", actor="root") == []  # nothing left, still recorded


def test_token_use_is_recorded_with_its_address_and_disuse_expires_it(
        ctx: Context, token: str, clock: ManualClock, dists: Path) -> None:
    with ctx.db.read() as conn:
        found = accounts.find_token(conn, token)
    assert found is not None
    accounts.record_token_use(ctx, found[0], "192.0.2.7", force=True)
    (info,) = accounts.list_tokens(ctx, "alice")
    assert (info.last_used_at, info.last_used_address) == (clock.now(), "192.0.2.7")
    expiring = with_policy(ctx, token_unused_expiry=timedelta(days=90))
    clock.advance(timedelta(days=89))
    upload(expiring, token, make_wheel(dists, "used", "1.0"))  # a use renews it
    clock.advance(timedelta(days=91))
    with pytest.raises(Denied) as refused:
        upload(expiring, token, make_wheel(dists, "used", "1.1"))
    assert refused.value.decision.rule == "token-unused"
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(tokens.c.last_used_address)).scalar() is None  # the upload gave none


def test_a_token_remembers_whether_its_account_had_a_factor(ctx: Context, token: str) -> None:
    give_factor(ctx, "alice")
    accounts.create_token(ctx, "alice")
    assert [t.with_second_factor for t in accounts.list_tokens(ctx, "alice")] == [False, True]
