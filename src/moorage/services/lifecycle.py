"""Yank and unyank, reopen a closed release, project status and quarantine. Each is one event."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from packaging.version import Version
from sqlalchemy.engine import Connection

from moorage.domain.decisions import Decision, Denied, not_found, require
from moorage.domain.lifecycle import (
    ProjectFacts,
    check_days,
    may_change_status,
    may_quarantine_release,
    may_reopen,
    may_yank,
)
from moorage.domain.names import normalize
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.services.loading import OPERATOR as OPERATOR  # re-exported: the command line reads it here
from moorage.services.loading import acting, find_project, find_release, load_release_facts
from moorage.store.tables import files, projects, releases


def _targets(conn: Connection, release_id: int, name: str, version: str, filename: str | None) -> list[sa.Row]:
    query = sa.select(files.c.id, files.c.filename, files.c.yanked_at, files.c.yanked_reason).where(
        files.c.release_id == release_id)
    if filename is not None:
        query = query.where(files.c.filename == filename)
    rows = list(conn.execute(query.order_by(files.c.filename)).all())
    if not rows:
        raise not_found(f"no file {filename!r} in release {version} of {name}" if filename
                        else f"release {version} of {name} has no files")
    return rows


def yank(ctx: Context, project: str, version: str, filename: str | None = None, *, reason: str | None = None,
         as_user: str | None = None) -> list[str]:
    """Yank a file, or every file of a release (PEP 592). Returns the filenames newly yanked."""
    return _set_yanked(ctx, project, version, filename, True, (reason or "").strip() or None, as_user)


def unyank(ctx: Context, project: str, version: str, filename: str | None = None, *,
           as_user: str | None = None) -> list[str]:
    """Take a yank back. Returns the filenames no longer yanked."""
    return _set_yanked(ctx, project, version, filename, False, None, as_user)


def _set_yanked(ctx: Context, project: str, version: str, filename: str | None, yanked: bool,
                reason: str | None, as_user: str | None) -> list[str]:
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_yank(actor, name))
        release = find_release(conn, project_id, name, version)
        # Only what changes: yanking the yanked (or unyanking the rest) records nothing.
        targets = [r for r in _targets(conn, release.id, name, version, filename)
                   if (r.yanked_at is None) == yanked]
        if not targets:
            return []
        conn.execute(files.update().where(files.c.id.in_([r.id for r in targets]))
                     .values(yanked_at=now if yanked else None, yanked_reason=reason))
        action = f"{'file' if filename else 'release'}-{'yanked' if yanked else 'unyanked'}"
        subject = f"file:{filename}" if filename else f"release:{name}/{release.version}"
        before: dict[str, object] = {"yanked": not yanked}
        if not yanked:
            before["reasons"] = {r.filename: r.yanked_reason for r in targets}
        payload: dict[str, object] = {"project": name, "version": release.version,
                                      "files": [r.filename for r in targets], "before": before,
                                      "after": {"yanked": yanked}}
        if yanked:
            payload["reason"] = reason
        append_event(conn, now=now, actor=actor.name, action=action, subject=subject, project=name, payload=payload)
    ctx.committed({name})
    return [r.filename for r in targets]


def reopen(ctx: Context, project: str, version: str, *, reason: str, days: float | None = None,
           as_user: str | None = None) -> Decision:
    """Let a closed release accept new files again for a bounded time; recorded with its reason."""
    if not reason or not reason.strip():
        raise Denied.by("reason-required", "reopening a release needs a reason")
    require(check_days(days))
    policy = ctx.settings.lifecycle
    period = timedelta(days=days) if days is not None else policy.reopen_period
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        release = find_release(conn, project_id, name, version)
        fact = load_release_facts(conn, project_id, name)[Version(release.version)]
        decision = may_reopen(actor, fact, period, policy, now)
        require(decision)
        until = now + period
        conn.execute(releases.update().where(releases.c.id == release.id).values(reopened_until=until))
        append_event(conn, now=now, actor=actor.name, action="release-reopened",
                     subject=f"release:{name}/{release.version}", project=name,
                     payload={"project": name, "version": release.version, "reason": reason.strip(),
                              "before": {"reopened_until": fact.reopened_until.isoformat()
                                         if fact.reopened_until else None},
                              "after": {"reopened_until": until.isoformat()}})
    ctx.committed({name})
    return Decision.allow("reopen", f"release {release.version} of {name} accepts new files until "
                          f"{until:%Y-%m-%d %H:%M} UTC", until=until)


def set_status(ctx: Context, project: str, status: str, *, reason: str | None = None,
               successor: str | None = None, as_user: str | None = None) -> None:
    """Archive, deprecate, quarantine or make a project active again (PEP 792), with a reason."""
    reason = (reason or "").strip() or None
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        row = conn.execute(sa.select(projects.c.status, projects.c.status_reason, projects.c.successor)
                           .where(projects.c.id == project_id)).one()
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_change_status(actor, ProjectFacts(name, row.status, row.status_reason), status, reason))
        if successor is not None:
            if status != "deprecated":
                raise Denied.by("successor", "only a deprecated project names a successor")
            successor = normalize(successor)
            if successor == name:
                raise Denied.by("successor", "a project cannot succeed itself")
            if conn.execute(sa.select(projects.c.id).where(projects.c.normalized_name == successor)).first() is None:
                raise not_found(f"the successor {successor!r} is not a project on this index")
        if (row.status, row.status_reason, row.successor) == (status, reason, successor):
            return
        conn.execute(projects.update().where(projects.c.id == project_id).values(
            status=status, status_reason=reason, successor=successor, status_changed_at=now))
        append_event(conn, now=now, actor=actor.name, action="status-changed", subject=f"project:{name}",
                     project=name, payload={
                         "project": name, "reason": reason,
                         "before": {"status": row.status, "reason": row.status_reason, "successor": row.successor},
                         "after": {"status": status, "reason": reason, "successor": successor}})
    ctx.committed({name})


def quarantine_release(ctx: Context, project: str, version: str, *, reason: str, lift: bool = False,
                       as_user: str | None = None) -> bool:
    """Quarantine one release (its files are neither offered nor served), or lift it."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_quarantine_release(actor, reason))
        release = find_release(conn, project_id, name, version)
        current = conn.execute(sa.select(releases.c.quarantined_at, releases.c.quarantine_reason)
                               .where(releases.c.id == release.id)).one()
        if (current.quarantined_at is None) == lift:
            return False
        conn.execute(releases.update().where(releases.c.id == release.id).values(
            quarantined_at=None if lift else now, quarantine_reason=None if lift else reason.strip()))
        append_event(conn, now=now, actor=actor.name,
                     action="release-unquarantined" if lift else "release-quarantined",
                     subject=f"release:{name}/{release.version}", project=name,
                     payload={"project": name, "version": release.version, "reason": reason.strip(),
                              "before": {"quarantined": current.quarantined_at is not None},
                              "after": {"quarantined": not lift}})
    ctx.committed({name})
    return True
