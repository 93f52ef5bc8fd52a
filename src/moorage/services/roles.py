"""Who may act for a project: owners and maintainers."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from moorage.domain.decisions import Denied, not_found
from moorage.domain.names import normalize
from moorage.services.accounts import user_id
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.store.tables import projects, roles, users

ROLES = ("owner", "maintainer")


@dataclass(frozen=True)
class RoleInfo:
    user: str
    role: str


def _lock_role(conn: sa.Connection, project: str, user: str) -> tuple[int, int, str | None]:
    """(project id, user id, the user's current role) with the project row locked."""
    project_id = conn.execute(
        sa.select(projects.c.id).where(projects.c.normalized_name == normalize(project)).with_for_update()
    ).scalar()
    if project_id is None:
        raise not_found(f"no project named {project!r}")
    uid = user_id(conn, user)
    current = conn.execute(
        sa.select(roles.c.role).where(roles.c.project_id == project_id, roles.c.user_id == uid)
    ).scalar()
    return int(project_id), uid, current


def _keep_an_owner(conn: sa.Connection, project_id: int, current: str | None, user: str, name: str) -> None:
    if current == "owner" and owner_count(conn, project_id) == 1:
        raise Denied.by("last-owner", f"{user!r} is the only owner of {name!r}; add another owner first")


def set_role(ctx: Context, project: str, user: str, role: str, *, actor: str) -> None:
    """Give ``user`` the ``role`` on ``project`` (adding or changing it); recorded as an event."""
    if role not in ROLES:
        raise Denied.by("invalid-role", f"unknown role {role!r}: use owner or maintainer")
    name = normalize(project)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, uid, current = _lock_role(conn, project, user)
        if current == role:
            return
        _keep_an_owner(conn, project_id, current, user, name)
        if current is None:
            conn.execute(roles.insert().values(project_id=project_id, user_id=uid, role=role))
            action = "role-added"
        else:
            conn.execute(roles.update().where(roles.c.project_id == project_id, roles.c.user_id == uid)
                         .values(role=role))
            action = "role-changed"
        append_event(conn, now=now, actor=actor, action=action, subject=f"project:{name}", project=name,
                     payload={"project": name, "user": user, "role": role, "previous": current})
    ctx.committed({name})


def remove_role(ctx: Context, project: str, user: str, *, actor: str) -> None:
    name = normalize(project)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, uid, current = _lock_role(conn, project, user)
        if current is None:
            raise not_found(f"{user!r} has no role on {name!r}")
        _keep_an_owner(conn, project_id, current, user, name)
        conn.execute(roles.delete().where(roles.c.project_id == project_id, roles.c.user_id == uid))
        append_event(conn, now=now, actor=actor, action="role-removed", subject=f"project:{name}", project=name,
                     payload={"project": name, "user": user, "role": current})
    ctx.committed({name})


def list_roles(ctx: Context, project: str) -> list[RoleInfo]:
    with ctx.db.read() as conn:
        project_id = conn.execute(
            sa.select(projects.c.id).where(projects.c.normalized_name == normalize(project))
        ).scalar()
        if project_id is None:
            raise not_found(f"no project named {project!r}")
        rows = conn.execute(
            sa.select(users.c.name, roles.c.role).join(users, users.c.id == roles.c.user_id)
            .where(roles.c.project_id == project_id).order_by(roles.c.role.desc(), users.c.name)
        ).all()
    return [RoleInfo(r.name, r.role) for r in rows]


def owner_count(conn: sa.Connection, project_id: int) -> int:
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(roles)
        .where(roles.c.project_id == project_id, roles.c.role == "owner")
    ).scalar_one())
