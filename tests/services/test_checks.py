"""`policy check`: the same decision the action would meet, and nothing changes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts, checks, deletion
from moorage.services.context import Context
from tests.services.helpers import snapshot, upload
from tests.support.dists import make_wheel


@pytest.fixture
def wheel(ctx: Context, token: str, dists: Path) -> str:
    accounts.add_user(ctx, "bob", password=None)
    dist = make_wheel(dists, "checked", "1.0")
    upload(ctx, token, dist)
    return dist.filename


def test_checks_answer_like_the_actions_and_change_nothing(ctx: Context, clock: ManualClock, wheel: str) -> None:
    before = snapshot(ctx)
    allowed = checks.check(ctx, "delete", "checked", "1.0", wheel, as_user="alice")
    assert allowed.allowed and allowed.until == clock.now() + timedelta(hours=72)
    assert not checks.check(ctx, "delete", "checked", "1.0", wheel, as_user="bob").allowed
    assert checks.check(ctx, "yank", "checked", as_user="alice").allowed
    assert checks.check(ctx, "yank", "checked", as_user="bob").rule == "not-an-owner"
    assert checks.check(ctx, "quarantine", "checked", as_user="alice").rule == "admin-only"
    assert checks.check(ctx, "archive", "checked", as_user="alice").allowed
    assert checks.check(ctx, "restore", "checked", as_user="alice").rule == "admin-only"
    assert snapshot(ctx) == before
    clock.advance(timedelta(hours=72, minutes=1))
    later = checks.check(ctx, "delete", "checked", "1.0", wheel, as_user="alice")
    assert later.rule == "deletion-window" and not later.allowed
    with pytest.raises(Denied) as done:
        deletion.delete(ctx, "checked", "1.0", wheel, as_user="alice")
    assert done.value.decision == later


def test_unknown_action(ctx: Context, wheel: str) -> None:
    with pytest.raises(Denied) as refused:
        checks.check(ctx, "explode", "checked", as_user="alice")
    assert refused.value.decision.rule == "invalid-action"
