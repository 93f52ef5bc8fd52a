"""May I? The decision an action would meet, without doing it (`moorage policy check`)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from packaging.version import Version

from moorage.domain.decisions import Decision, Denied
from moorage.domain.lifecycle import (
    ProjectFacts,
    may_change_status,
    may_disable_deletions,
    may_quarantine_release,
    may_reopen,
    may_restore,
    may_yank,
)
from moorage.services.context import Context
from moorage.services.deletion import plan_delete
from moorage.services.loading import (
    find_project,
    find_release,
    load_release_facts,
    resolve_actor,
    two_factor_decision,
)
from moorage.store.tables import projects

ACTIONS = ("yank", "unyank", "delete", "reopen", "archive", "unarchive", "deprecate", "undeprecate",
           "quarantine", "unquarantine", "disable-deletions", "restore")
_STATUS_FOR = {"archive": "archived", "unarchive": "active", "deprecate": "deprecated", "undeprecate": "active",
               "quarantine": "quarantined", "unquarantine": "active"}


def check(ctx: Context, action: str, project: str, version: str | None = None, filename: str | None = None, *,
          as_user: str | None, reason: str | None = "checking") -> Decision:
    if action not in ACTIONS:
        raise Denied.by("invalid-action", f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    with ctx.db.read() as conn:
        if action == "delete":
            decision, _plan = plan_delete(conn, ctx, project, version, filename, as_user, lock=False)
            return decision
        project_id, name = find_project(conn, project, lock=False)
        actor = resolve_actor(conn, as_user, project_id)
        two_factor = two_factor_decision(conn, ctx, actor, project_id, name)
        if not two_factor.allowed:
            return two_factor
        if action in ("yank", "unyank"):
            return may_yank(actor, name)
        if action == "disable-deletions":
            return may_disable_deletions(actor, name)
        if action == "restore":
            return may_restore(actor, reason)
        if action in ("quarantine", "unquarantine") and version is not None:
            return may_quarantine_release(actor, reason)
        if action == "reopen":
            if version is None:
                raise Denied.by("missing-version", "name the release to reopen")
            release = find_release(conn, project_id, name, version)
            facts = load_release_facts(conn, project_id, name)
            period: timedelta = ctx.settings.lifecycle.reopen_period
            return may_reopen(actor, facts[Version(release.version)], period, ctx.settings.lifecycle,
                              ctx.clock.now())
        row = conn.execute(sa.select(projects.c.status, projects.c.status_reason)
                           .where(projects.c.id == project_id)).one()
        return may_change_status(actor, ProjectFacts(name, row.status, row.status_reason), _STATUS_FOR[action],
                                 reason)
