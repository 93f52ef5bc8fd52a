"""Pending removal: announce a withdrawal ahead; after the grace period the files are
offered only under the opt-in root (/pending/simple/); cancel before the end."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from moorage.domain.decisions import Decision, require
from moorage.domain.lifecycle import check_days, may_announce_removal, may_cancel_removal, removal_reason
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.services.loading import acting, find_project
from moorage.store.tables import events, projects


def announce_removal(ctx: Context, project: str, *, days: float | None = None, reason: str | None = None,
                     as_user: str | None = None) -> Decision:
    require(check_days(days))
    policy = ctx.settings.lifecycle
    grace = timedelta(days=days) if days is not None else policy.removal_grace
    reason = (reason or "").strip() or None
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_announce_removal(actor, name, grace, policy))
        row = conn.execute(sa.select(projects.c.status, projects.c.status_reason, projects.c.removal_at)
                           .where(projects.c.id == project_id)).one()
        removal_at = now + grace
        # The status says it: deprecated, with the date the files leave the default index.
        status_reason = removal_reason(removal_at, reason)
        conn.execute(projects.update().where(projects.c.id == project_id).values(
            removal_at=removal_at, status="deprecated", status_reason=status_reason, status_changed_at=now))
        append_event(conn, now=now, actor=actor.name, action="removal-announced", subject=f"project:{name}",
                     project=name, payload={
                         "project": name, "reason": reason, "removal_at": removal_at.isoformat(),
                         "before": {"status": row.status, "reason": row.status_reason,
                                    "removal_at": row.removal_at.isoformat() if row.removal_at else None},
                         "after": {"status": "deprecated", "reason": status_reason,
                                   "removal_at": removal_at.isoformat()}})
    ctx.committed({name})
    return Decision.allow("removal-announced", status_reason, until=removal_at)


def cancel_removal(ctx: Context, project: str, *, as_user: str | None = None) -> None:
    """Take an announced removal back; the status returns to what it was before."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        row = conn.execute(sa.select(projects.c.status, projects.c.status_reason, projects.c.removal_at)
                           .where(projects.c.id == project_id)).one()
        require(may_cancel_removal(actor, name, row.removal_at, now))
        announced = conn.execute(
            sa.select(events.c.payload).where(events.c.project == name, events.c.action == "removal-announced")
            .order_by(events.c.serial.desc()).limit(1)
        ).scalar()
        before = (announced or {}).get("before", {})
        status, status_reason = before.get("status", "active"), before.get("reason")
        conn.execute(projects.update().where(projects.c.id == project_id).values(
            removal_at=None, status=status, status_reason=status_reason, status_changed_at=now))
        append_event(conn, now=now, actor=actor.name, action="removal-cancelled", subject=f"project:{name}",
                     project=name, payload={
                         "project": name,
                         "before": {"status": row.status, "reason": row.status_reason,
                                    "removal_at": row.removal_at.isoformat()},
                         "after": {"status": status, "reason": status_reason, "removal_at": None}})
    ctx.committed({name})
