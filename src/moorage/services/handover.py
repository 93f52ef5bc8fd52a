"""Invite, accept, transfer, leave; the last owner leaving orphans the project; adoption."""

from __future__ import annotations

import sqlalchemy as sa

from moorage.domain.decisions import Denied, not_found, require
from moorage.domain.lifecycle import ORPHANED, ProjectFacts, may_adopt, may_invite, may_leave
from moorage.services.accounts import user_id
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.services.loading import acting, find_project, resolve_actor
from moorage.services.roles import owner_count
from moorage.store.tables import invitations, projects, roles, users


def invite(ctx: Context, project: str, user: str, *, role: str = "maintainer", transfer: bool = False,
           as_user: str | None = None) -> int:
    """Invite ``user`` to a role; a transfer invites as owner and hands the inviter's place over."""
    if role not in ("owner", "maintainer"):
        raise Denied.by("invalid-role", f"unknown role {role!r}: use owner or maintainer")
    if transfer:
        role = "owner"
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_invite(actor, name))
        if transfer and actor.role is None:
            raise Denied.by("no-role", "a transfer hands over the inviter's own place; the operator uses "
                            "`moorage role set` or `moorage admin adopt`")
        uid = user_id(conn, user)
        if conn.execute(sa.select(roles.c.role).where(roles.c.project_id == project_id,
                                                      roles.c.user_id == uid)).scalar() == role:
            raise Denied.by("already-has-role", f"{user} is already {role} of {name}")
        invitation_id = conn.execute(invitations.insert().values(
            project_id=project_id, user_id=uid, role=role, transfer=transfer, invited_by=actor.name,
            created_at=now).returning(invitations.c.id)).scalar_one()
        append_event(conn, now=now, actor=actor.name, action="invitation-sent", subject=f"project:{name}",
                     project=name, payload={"project": name, "user": user, "role": role, "transfer": transfer,
                                            "invitation": invitation_id})
    return int(invitation_id)


def answer(ctx: Context, project: str, *, as_user: str, accept: bool = True) -> str:
    """The invitee accepts (or declines) their newest open invitation to the project."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        uid = user_id(conn, as_user)
        inv = conn.execute(
            sa.select(invitations).where(invitations.c.project_id == project_id, invitations.c.user_id == uid,
                                         invitations.c.answered_at.is_(None))
            .order_by(invitations.c.id.desc())
        ).first()
        if inv is None:
            raise not_found(f"{as_user} has no open invitation to {name}")
        conn.execute(invitations.update().where(invitations.c.id == inv.id)
                     .values(answered_at=now, accepted=accept))
        if not accept:
            append_event(conn, now=now, actor=as_user, action="invitation-declined", subject=f"project:{name}",
                         project=name, payload={"project": name, "invitation": inv.id})
            return "declined"
        before = conn.execute(sa.select(roles.c.role).where(roles.c.project_id == project_id,
                                                            roles.c.user_id == uid)).scalar()
        if before is None:
            conn.execute(roles.insert().values(project_id=project_id, user_id=uid, role=inv.role))
        else:
            conn.execute(roles.update().where(roles.c.project_id == project_id, roles.c.user_id == uid)
                         .values(role=inv.role))
        append_event(conn, now=now, actor=as_user, action="invitation-accepted", subject=f"project:{name}",
                     project=name, payload={"project": name, "user": as_user, "invitation": inv.id,
                                            "before": {"role": before}, "after": {"role": inv.role}})
        if inv.transfer:
            inviter = conn.execute(sa.select(users.c.id).where(users.c.name == inv.invited_by)).scalar()
            if inviter is not None and inviter != uid:
                conn.execute(roles.delete().where(roles.c.project_id == project_id, roles.c.user_id == inviter))
                append_event(conn, now=now, actor=as_user, action="role-removed", subject=f"project:{name}",
                             project=name, payload={"project": name, "user": inv.invited_by, "role": "owner",
                                                    "transfer": True})
    ctx.committed({name})
    return inv.role


def leave(ctx: Context, project: str, *, as_user: str) -> bool:
    """Give up one's role. The last owner leaving orphans the project: kept, archived as
    "orphaned", and open for an admin to hand to an adopter. Returns whether it orphaned it."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = resolve_actor(conn, as_user, project_id)  # a way out: never behind 2FA
        require(may_leave(actor, name))
        uid = user_id(conn, as_user)
        conn.execute(roles.delete().where(roles.c.project_id == project_id, roles.c.user_id == uid))
        append_event(conn, now=now, actor=as_user, action="role-removed", subject=f"project:{name}", project=name,
                     payload={"project": name, "user": as_user, "role": actor.role, "left": True})
        orphaned = actor.role == "owner" and owner_count(conn, project_id) == 0
        if orphaned:
            row = conn.execute(sa.select(projects.c.status, projects.c.status_reason)
                               .where(projects.c.id == project_id)).one()
            conn.execute(projects.update().where(projects.c.id == project_id)
                         .values(status="archived", status_reason=ORPHANED, status_changed_at=now))
            append_event(conn, now=now, actor=as_user, action="project-orphaned", subject=f"project:{name}",
                         project=name, payload={"project": name,
                                                "before": {"status": row.status, "reason": row.status_reason},
                                                "after": {"status": "archived", "reason": ORPHANED}})
    ctx.committed({name})
    return orphaned


def adopt(ctx: Context, project: str, user: str, *, reason: str, as_user: str | None = None) -> None:
    """An admin hands an orphaned project to a new owner; it becomes active again."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        row = conn.execute(sa.select(projects.c.status, projects.c.status_reason)
                           .where(projects.c.id == project_id)).one()
        require(may_adopt(actor, ProjectFacts(name, row.status, row.status_reason), owner_count(conn, project_id),
                          reason))
        uid = user_id(conn, user)
        conn.execute(roles.delete().where(roles.c.project_id == project_id, roles.c.user_id == uid))
        conn.execute(roles.insert().values(project_id=project_id, user_id=uid, role="owner"))
        status, status_reason = row.status, row.status_reason
        if (row.status, row.status_reason) == ("archived", ORPHANED):
            status, status_reason = "active", None
        conn.execute(projects.update().where(projects.c.id == project_id)
                     .values(status=status, status_reason=status_reason, status_changed_at=now))
        append_event(conn, now=now, actor=actor.name, action="project-adopted", subject=f"project:{name}",
                     project=name, payload={"project": name, "user": user, "reason": reason.strip(),
                                            "before": {"status": row.status, "reason": row.status_reason},
                                            "after": {"status": status, "reason": status_reason}})
    ctx.committed({name})
