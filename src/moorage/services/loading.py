"""What every management service loads first: the project (locked for update when the
service writes), the release, and who is acting (a user with their role here, or the
operator) under the 2FA rule."""

from __future__ import annotations

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from packaging.version import Version
from sqlalchemy.engine import Connection

from moorage.domain.accounts import check_two_factor
from moorage.domain.decisions import Decision, Denied, not_found, require
from moorage.domain.lifecycle import Actor, ReleaseFacts, release_facts
from moorage.domain.names import normalize
from moorage.services.context import Context
from moorage.store.accounts import critical_facts, has_second_factor
from moorage.store.tables import projects, releases, roles, users

# The operator at the server's own command line: an admin, and not an account.
OPERATOR = Actor("operator", is_admin=True)


def find_project(conn: Connection, project: str, *, lock: bool) -> tuple[int, str]:
    """The project's id and normalized name, or a not-found refusal. ``lock``: its row is locked for
    update (a writer's first step, so writers to one project take their turns)."""
    name = normalize(project)
    query = sa.select(projects.c.id).where(projects.c.normalized_name == name)
    pid = conn.execute(query.with_for_update() if lock else query).scalar()
    if pid is None:
        raise not_found(f"no project named {project!r}")
    return int(pid), name


def find_release(conn: Connection, project_id: int, name: str, version: str) -> sa.Row[tuple[int, str]]:
    """The release's id and version as uploaded (any spelling of the version finds it), or a not-found refusal."""
    try:
        canonical = canonicalize_version(Version(version))
    except ValueError:  # InvalidVersion, or a number too long to convert
        raise Denied.by("invalid-version", f"{version!r} is not a valid version") from None
    row = conn.execute(
        sa.select(releases.c.id, releases.c.version)
        .where(releases.c.project_id == project_id, releases.c.canonical_version == canonical)
    ).first()
    if row is None:
        raise not_found(f"no release {version} of {name}")
    return row


def load_release_facts(conn: Connection, project_id: int, name: str) -> dict[Version, ReleaseFacts]:
    """Every release's facts for the upload-window and reopen rules."""
    rows = conn.execute(sa.select(releases.c.version, releases.c.created_at, releases.c.reopened_until)
                        .where(releases.c.project_id == project_id)).all()
    return release_facts(name, [(Version(r.version), r.created_at, r.reopened_until) for r in rows])


def resolve_actor(conn: Connection, user: str | None, project_id: int) -> Actor:
    """The operator (an admin) when ``user`` is None, else that user with their role here."""
    if user is None:
        return OPERATOR
    row = conn.execute(sa.select(users.c.id, users.c.is_admin).where(users.c.name == user)).first()
    if row is None:
        raise not_found(f"no user named {user!r}")
    role = conn.execute(
        sa.select(roles.c.role).where(roles.c.project_id == project_id, roles.c.user_id == row.id)
    ).scalar()
    return Actor(user, is_admin=bool(row.is_admin), role=role)


def two_factor_decision(conn: Connection, ctx: Context, actor: Actor, project_id: int | None,
                        name: str | None) -> Decision:
    """The 2FA rule ([policy] require_2fa) for an account about to manage a project. The
    operator at the server's own command line is not an account: the rule is not for it."""
    if actor is OPERATOR:
        return Decision.allow()
    policy = ctx.settings.accounts
    if policy.require_2fa == "none":
        return Decision.allow()
    uid = conn.execute(sa.select(users.c.id).where(users.c.name == actor.name)).scalar()
    has_factor = uid is not None and has_second_factor(conn, int(uid))
    return check_two_factor(policy, name, critical_facts(conn, project_id), actor.name, has_factor, ctx.clock.now())


def acting(conn: Connection, ctx: Context, user: str | None, project_id: int, name: str) -> Actor:
    """The actor of a management action, refused when the 2FA rule applies to it and it has no factor."""
    actor = resolve_actor(conn, user, project_id)
    require(two_factor_decision(conn, ctx, actor, project_id, name))
    return actor
