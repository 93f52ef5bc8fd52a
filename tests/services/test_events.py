"""The event log: one row per change, serials in the order the changes were made."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts
from moorage.services.context import Context
from moorage.store import queries
from moorage.store.tables import projects
from tests.services.helpers import all_events, rows, upload
from tests.support.dists import make_sdist, make_wheel


def test_serial_order_is_the_order_of_the_changes(ctx: Context, clock: ManualClock, dists: Path) -> None:
    expected: list[tuple[str, str | None]] = []
    seen = 0

    def tick(*actions: tuple[str, str | None]) -> None:
        nonlocal seen
        expected.extend(actions)
        evs = all_events(ctx)
        assert [(e.action, e.project) for e in evs] == expected
        assert all(e.created_at == clock.now() for e in evs[seen:])
        seen = len(evs)
        clock.advance(timedelta(seconds=1))

    accounts.add_user(ctx, "alice", password=None)
    tick(("user-created", None))
    tid, tok = accounts.create_token(ctx, "alice")
    tick(("token-created", None))
    upload(ctx, tok, make_wheel(dists, "alpha", "1.0"))
    tick(("project-created", "alpha"), ("role-added", "alpha"), ("release-created", "alpha"),
         ("file-added", "alpha"))
    accounts.add_user(ctx, "bob", password=None)
    tick(("user-created", None))
    upload(ctx, tok, make_wheel(dists, "beta", "0.1"))
    tick(("project-created", "beta"), ("role-added", "beta"), ("release-created", "beta"),
         ("file-added", "beta"))
    upload(ctx, tok, make_sdist(dists, "alpha", "1.0"))
    tick(("file-added", "alpha"))
    with pytest.raises(Denied):
        upload(ctx, tok, make_sdist(dists, "alpha", "1.0.0"))
    tick()  # a refusal appends nothing
    upload(ctx, tok, make_wheel(dists, "alpha", "1.0"))  # identical: nothing either
    tick()
    upload(ctx, tok, make_wheel(dists, "alpha", "2.0"))
    tick(("release-created", "alpha"), ("file-added", "alpha"))
    accounts.revoke_token(ctx, tid)
    tick(("token-revoked", None))

    evs = all_events(ctx)
    serials = [e.serial for e in evs]
    assert all(a < b for a, b in zip(serials, serials[1:], strict=False))
    times = [e.created_at for e in evs]
    assert times == sorted(times)

    # Each project remembers the serial of its newest event; the index, the newest of all.
    last = {}
    for e in evs:
        if e.project:
            last[e.project] = e.serial
    assert {p.normalized_name: p.last_serial for p in rows(ctx, projects)} == last
    with ctx.db.read() as conn:
        assert queries.global_serial(conn) == serials[-1]


def test_events_are_never_rewritten(ctx: Context, clock: ManualClock, dists: Path) -> None:
    """Later changes leave earlier events exactly as they were."""
    accounts.add_user(ctx, "alice", password=None)
    tid, tok = accounts.create_token(ctx, "alice", expires_days=10)
    history = [all_events(ctx)]
    for version in ("1.0", "1.1", "2.0"):
        clock.advance(timedelta(hours=1))
        upload(ctx, tok, make_wheel(dists, "demo", version))
        history.append(all_events(ctx))
    accounts.revoke_token(ctx, tid)
    history.append(all_events(ctx))
    for earlier, later in zip(history, history[1:], strict=False):
        assert later[: len(earlier)] == earlier
        assert len(later) > len(earlier)
