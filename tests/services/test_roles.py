"""Owners and maintainers: who may upload, and that a project never loses its last owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.domain.decisions import Denied
from moorage.services import accounts, roles
from moorage.services.context import Context
from tests.services.helpers import all_events, upload
from tests.support.dists import make_wheel
from tests.support.refusals import raises_not_found


@pytest.fixture
def project(ctx: Context, token: str, dists: Path) -> str:
    upload(ctx, token, make_wheel(dists, "Shared.Work", "1.0"))
    return "shared-work"


def test_a_maintainer_may_upload_after_being_added(ctx: Context, project: str, dists: Path) -> None:
    accounts.add_user(ctx, "bob", password=None)
    bob = accounts.create_token(ctx, "bob")[1]
    with pytest.raises(Denied) as refused:
        upload(ctx, bob, make_wheel(dists, "Shared.Work", "1.1"))
    assert refused.value.decision.rule == "not-a-maintainer"
    roles.set_role(ctx, "Shared_Work", "bob", "maintainer", actor="alice")
    assert upload(ctx, bob, make_wheel(dists, "Shared.Work", "1.1")).outcome == "created"
    assert roles.list_roles(ctx, project) == [roles.RoleInfo("alice", "owner"), roles.RoleInfo("bob", "maintainer")]
    event = [e for e in all_events(ctx) if e.action == "role-added"][-1]
    assert event.payload == {"project": project, "user": "bob", "role": "maintainer", "previous": None}


def test_changing_and_removing_roles_is_recorded(ctx: Context, project: str) -> None:
    accounts.add_user(ctx, "carol", password=None)
    roles.set_role(ctx, project, "carol", "maintainer", actor="alice")
    roles.set_role(ctx, project, "carol", "owner", actor="alice")
    roles.remove_role(ctx, project, "alice", actor="carol")
    assert roles.list_roles(ctx, project) == [roles.RoleInfo("carol", "owner")]
    actions = [e.action for e in all_events(ctx)][-3:]
    assert actions == ["role-added", "role-changed", "role-removed"]


def test_the_last_owner_cannot_leave_or_be_demoted(ctx: Context, project: str) -> None:
    before = len(all_events(ctx))
    with pytest.raises(Denied) as refused:
        roles.remove_role(ctx, project, "alice", actor="alice")
    assert refused.value.decision.rule == "last-owner"
    with pytest.raises(Denied):
        roles.set_role(ctx, project, "alice", "maintainer", actor="alice")
    assert len(all_events(ctx)) == before
    assert roles.list_roles(ctx, project) == [roles.RoleInfo("alice", "owner")]


def test_unknown_project_user_or_role(ctx: Context, project: str) -> None:
    with raises_not_found():
        roles.set_role(ctx, "nope", "alice", "owner", actor="x")
    with raises_not_found():
        roles.set_role(ctx, project, "nobody", "owner", actor="x")
    with pytest.raises(Denied) as refused:
        roles.set_role(ctx, project, "alice", "admin", actor="x")
    assert refused.value.decision.rule == "invalid-role"
