"""Invitations, transfers, leaving, orphaning and adoption."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.domain.decisions import Denied
from moorage.services import accounts, handover, roles
from moorage.services.context import Context
from moorage.store import queries
from tests.services.helpers import all_events, upload
from tests.support.dists import make_wheel
from tests.support.refusals import raises_not_found


@pytest.fixture
def project(ctx: Context, token: str, dists: Path) -> str:
    upload(ctx, token, make_wheel(dists, "handed", "1.0"))
    for user in ("bob", "carol"):
        accounts.add_user(ctx, user, password=None)
    return "handed"


def _roles(ctx: Context) -> list[tuple[str, str]]:
    return [(r.user, r.role) for r in roles.list_roles(ctx, "handed")]


def test_an_invitation_takes_effect_when_accepted(ctx: Context, project: str) -> None:
    with pytest.raises(Denied) as refused:
        handover.invite(ctx, project, "carol", as_user="bob")
    assert refused.value.decision.rule == "not-an-owner"
    handover.invite(ctx, project, "bob", role="maintainer", as_user="alice")
    assert _roles(ctx) == [("alice", "owner")]
    assert handover.answer(ctx, project, as_user="bob") == "maintainer"
    assert _roles(ctx) == [("alice", "owner"), ("bob", "maintainer")]
    with raises_not_found():
        handover.answer(ctx, project, as_user="bob")  # nothing open any more
    handover.invite(ctx, project, "carol", as_user="alice")
    assert handover.answer(ctx, project, as_user="carol", accept=False) == "declined"
    assert ("carol", "maintainer") not in _roles(ctx)


def test_a_transfer_hands_the_place_over_on_acceptance(ctx: Context, project: str) -> None:
    handover.invite(ctx, project, "carol", transfer=True, as_user="alice")
    assert _roles(ctx) == [("alice", "owner")]
    handover.answer(ctx, project, as_user="carol")
    assert _roles(ctx) == [("carol", "owner")]


def test_the_last_owner_leaving_orphans_the_project_and_an_admin_hands_it_on(
        ctx: Context, token: str, dists: Path, project: str) -> None:
    handover.invite(ctx, project, "bob", as_user="alice")
    handover.answer(ctx, project, as_user="bob")
    assert not handover.leave(ctx, project, as_user="bob")
    assert handover.leave(ctx, project, as_user="alice")
    with ctx.db.read() as conn:
        view = queries.load_project(conn, project)
    assert view is not None and (view.status, view.status_reason) == ("archived", "orphaned")
    assert len(view.files) == 1  # kept and still served
    with pytest.raises(Denied) as no_upload:
        upload(ctx, token, make_wheel(dists, "handed", "1.1"))
    assert no_upload.value.decision.rule in ("project-archived", "not-a-maintainer")
    with pytest.raises(Denied):
        handover.adopt(ctx, project, "carol", reason="volunteer", as_user="carol")
    handover.adopt(ctx, project, "carol", reason="carol volunteered to maintain it")
    with ctx.db.read() as conn:
        view = queries.load_project(conn, project)
    assert view is not None and view.status == "active" and _roles(ctx) == [("carol", "owner")]
    with pytest.raises(Denied) as has_owner:
        handover.adopt(ctx, project, "bob", reason="again")
    assert has_owner.value.decision.rule == "not-orphaned"
    actions = [e.action for e in all_events(ctx)]
    assert actions[-3:] == ["role-removed", "project-orphaned", "project-adopted"]


def test_leaving_without_a_role(ctx: Context, project: str) -> None:
    with pytest.raises(Denied) as refused:
        handover.leave(ctx, project, as_user="carol")
    assert refused.value.decision.rule == "no-role"
