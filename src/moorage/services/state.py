"""A project's lifecycle state as its managers see it, with the caller's decisions.

Read-only; it feeds the management API (and, later, the management pages): every release's
upload window, and for each file whether the caller may delete it and until when.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from packaging.version import Version

from moorage.domain.decisions import not_found
from moorage.domain.lifecycle import (
    FileFacts,
    check_upload_window,
    may_delete_file,
    release_facts,
    upload_window_closes,
)
from moorage.services.context import Context
from moorage.services.loading import resolve_actor
from moorage.store.queries import load_project
from moorage.store.tables import projects, roles, users


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def project_state(ctx: Context, project: str, *, as_user: str | None) -> dict[str, Any]:
    now = ctx.clock.now()
    policy = ctx.settings.lifecycle
    with ctx.db.read() as conn:
        view = load_project(conn, project, offered_only=False, now=now)
        if view is None:
            raise not_found(f"no project named {project!r}")
        project_id = conn.execute(sa.select(projects.c.id).where(projects.c.normalized_name == view.normalized_name)
                                  ).scalar_one()
        actor = resolve_actor(conn, as_user, project_id)
        people = conn.execute(sa.select(users.c.name, roles.c.role).join(users, users.c.id == roles.c.user_id)
                              .where(roles.c.project_id == project_id).order_by(users.c.name)).all()
    facts = release_facts(view.normalized_name, [(Version(r.version), r.created_at, r.reopened_until)
                                                 for r in view.releases])
    releases = []
    for r in view.releases:
        fact = facts[Version(r.version)]
        window = check_upload_window(fact, policy, now)
        files = []
        for f in (f for f in view.files if f.version == r.version):
            may = may_delete_file(actor, view.normalized_name, view.deletions_disabled_at,
                                  FileFacts(f.filename, Version(f.version), f.upload_time), policy, now)
            files.append({"filename": f.filename, "size": f.size, "sha256": f.sha256,
                          "upload_time": _iso(f.upload_time), "yanked": f.yanked, "yanked_reason": f.yanked_reason,
                          "deleted": f.deleted_at is not None,
                          "may_delete": None if f.deleted_at is not None else may.as_dict()})
        releases.append({"version": r.version, "upload_window_closes": _iso(upload_window_closes(fact, policy)),
                         "reopened_until": _iso(r.reopened_until), "accepts_uploads": window.allowed,
                         "upload_window": window.as_dict(), "quarantined": r.quarantined, "deleted": r.deleted,
                         "files": files})
    return {
        "project": view.normalized_name, "name": view.name, "status": view.status,
        "status_reason": view.status_reason, "successor": view.successor,
        "deleted": view.deleted_at is not None, "deletions_disabled_at": _iso(view.deletions_disabled_at),
        "removal_at": _iso(view.removal_at),
        "roles": [{"user": p.name, "role": p.role} for p in people],
        "you": {"user": actor.name, "admin": actor.is_admin, "role": actor.role},
        "releases": releases,
    }
