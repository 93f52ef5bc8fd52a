"""Delete a file, a release or a project within the rules; restore it; the deletions switch.

Deletion never removes a row or a byte: the rows stay as tombstones (a filename is never
reused, a deleted project's name is kept for its previous owners) and the bytes stay in the
blob store for the retention period, so `restore` brings back exactly what was deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from packaging.version import Version
from sqlalchemy.engine import Connection

from moorage.domain.decisions import Decision, Denied, not_found, require
from moorage.domain.lifecycle import (
    Actor,
    FileFacts,
    may_delete_file,
    may_delete_files,
    may_disable_deletions,
    may_restore,
)
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.services.loading import acting, find_project, find_release, resolve_actor, two_factor_decision
from moorage.store.tables import events, files, projects, releases


def _admin_reason(actor: Actor, reason: str | None) -> None:
    if actor.is_admin and not (reason and reason.strip()):
        raise Denied.by("reason-required", "an admin deletes with a reason; give --reason")


def _live_files(conn: Connection, where: sa.ColumnElement[bool]) -> list[sa.Row]:
    return list(conn.execute(
        sa.select(files.c.id, files.c.filename, files.c.sha256, files.c.size, files.c.upload_time,
                  files.c.release_id, releases.c.version)
        .join(releases, releases.c.id == files.c.release_id)
        .where(where, files.c.deleted_at.is_(None)).order_by(files.c.filename)
    ).all())


def _facts(rows: list[sa.Row]) -> list[FileFacts]:
    return [FileFacts(r.filename, Version(r.version), r.upload_time) for r in rows]


def _mark_deleted(conn: Connection, rows: list[sa.Row], project_id: int, now: datetime, reason: str | None) -> None:
    if not rows:
        return
    conn.execute(files.update().where(files.c.id.in_([r.id for r in rows]))
                 .values(deleted_at=now, deleted_reason=reason))
    conn.execute(projects.update().where(projects.c.id == project_id)
                 .values(total_size=projects.c.total_size - sum(int(r.size) for r in rows)))


@dataclass
class DeletePlan:
    project_id: int
    name: str
    actor: Actor
    rows: list[sa.Row]
    action: str
    subject: str
    release_id: int | None = None
    version: str | None = None


def plan_delete(conn: Connection, ctx: Context, project: str, version: str | None, filename: str | None,
                as_user: str | None, *, lock: bool = True) -> tuple[Decision, DeletePlan]:
    """What deleting would take, and whether the policy allows it (nothing is changed)."""
    if filename is not None and version is None:
        raise Denied.by("missing-version", "name the version of the file to delete")
    policy = ctx.settings.lifecycle
    now = ctx.clock.now()
    project_id, name = find_project(conn, project, lock=lock)
    prow = conn.execute(sa.select(projects.c.deleted_at, projects.c.deletions_disabled_at)
                        .where(projects.c.id == project_id)).one()
    if prow.deleted_at is not None:
        raise not_found(f"{name} was deleted on {prow.deleted_at:%Y-%m-%d %H:%M} UTC")
    actor = resolve_actor(conn, as_user, project_id)
    two_factor = two_factor_decision(conn, ctx, actor, project_id, name)
    if not two_factor.allowed:  # the 2FA rule first: it explains every refusal below it
        return two_factor, DeletePlan(project_id, name, actor, [], "refused", f"project:{name}")
    if version is None:
        rows = _live_files(conn, files.c.project_id == project_id)
        decision = may_delete_files(actor, name, prow.deletions_disabled_at, _facts(rows), policy, now)
        return decision, DeletePlan(project_id, name, actor, rows, "project-deleted", f"project:{name}")
    release = find_release(conn, project_id, name, version)
    where = files.c.release_id == release.id
    if filename is not None:
        where = sa.and_(where, files.c.filename == filename)
    rows = _live_files(conn, where)
    if filename is not None:
        if not rows:
            raise not_found(f"no file {filename!r} in release {release.version} of {name}")
        decision = may_delete_file(actor, name, prow.deletions_disabled_at, _facts(rows)[0], policy, now)
        plan = DeletePlan(project_id, name, actor, rows, "file-deleted", f"file:{filename}", release.id,
                          release.version)
    else:
        decision = may_delete_files(actor, name, prow.deletions_disabled_at, _facts(rows), policy, now)
        plan = DeletePlan(project_id, name, actor, rows, "release-deleted", f"release:{name}/{release.version}",
                          release.id, release.version)
    return decision, plan


def delete(ctx: Context, project: str, version: str | None = None, filename: str | None = None, *,
           reason: str | None = None, as_user: str | None = None) -> list[str]:
    """Delete a file, a release or a whole project; returns the filenames deleted."""
    reason = (reason or "").strip() or None
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        decision, plan = plan_delete(conn, ctx, project, version, filename, as_user)
        _admin_reason(plan.actor, reason)
        require(decision)
        name, rows = plan.name, plan.rows
        payload: dict[str, object] = {"project": name, "reason": reason}
        _mark_deleted(conn, rows, plan.project_id, now, reason)
        if plan.release_id is None:
            conn.execute(releases.update().where(releases.c.project_id == plan.project_id,
                                                 releases.c.deleted_at.is_(None)).values(deleted_at=now))
            conn.execute(projects.update().where(projects.c.id == plan.project_id)
                         .values(deleted_at=now, deleted_reason=reason))
        else:
            left = conn.execute(sa.select(files.c.id).where(files.c.release_id == plan.release_id,
                                                            files.c.deleted_at.is_(None)).limit(1)).first()
            if left is None:  # a release with no file left is gone too
                conn.execute(releases.update().where(releases.c.id == plan.release_id).values(deleted_at=now))
            payload["version"] = plan.version
            payload["release_deleted"] = left is None
        payload["files"] = [{"filename": r.filename, "sha256": r.sha256, "size": r.size} for r in rows]
        payload["before"], payload["after"] = {"deleted": False}, {"deleted": True}
        append_event(conn, now=now, actor=plan.actor.name, action=plan.action, subject=plan.subject, project=name,
                     payload=payload)
    ctx.committed({name})
    return [r.filename for r in rows]


def disable_deletions(ctx: Context, project: str, *, as_user: str | None = None) -> bool:
    """Turn deletions off for good (a one-way switch); from then on only an admin deletes."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_disable_deletions(actor, name))
        current = conn.execute(sa.select(projects.c.deletions_disabled_at)
                               .where(projects.c.id == project_id)).scalar()
        if current is not None:
            return False
        conn.execute(projects.update().where(projects.c.id == project_id).values(deletions_disabled_at=now))
        append_event(conn, now=now, actor=actor.name, action="deletions-disabled", subject=f"project:{name}",
                     project=name, payload={"project": name, "before": {"deletions_disabled": False},
                                            "after": {"deletions_disabled": True}})
    ctx.committed({name})
    return True


def _taken_by(conn: Connection, project: str, action: str, version: str | None = None,
              since: datetime | None = None) -> set[str]:
    """The filenames the latest ``action`` event took (or, with ``since``, every such event
    from that instant on): the record says exactly what a deletion removed."""
    query = sa.select(events.c.payload, events.c.created_at).where(
        events.c.project == project, events.c.action == action).order_by(events.c.serial.desc())
    names: set[str] = set()
    for row in conn.execute(query):
        payload = row.payload
        if version is not None and payload.get("version") != version:
            continue
        if since is not None and row.created_at < since:
            break
        names.update(f["filename"] for f in payload.get("files", []))
        if since is None:
            break
    return names


def restore(ctx: Context, project: str, version: str | None = None, filename: str | None = None, *,
            reason: str, as_user: str | None = None) -> list[str]:
    """Bring back a deleted file, release or project exactly as it was (admin, with a reason)."""
    if filename is not None and version is None:
        raise Denied.by("missing-version", "name the version of the file to restore")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        project_id, name = find_project(conn, project, lock=True)
        actor = acting(conn, ctx, as_user, project_id, name)
        require(may_restore(actor, reason))
        prow = conn.execute(sa.select(projects.c.deleted_at).where(projects.c.id == project_id)).one()
        query = sa.select(files.c.id, files.c.filename, files.c.sha256, files.c.size, files.c.release_id,
                          files.c.deleted_at).where(files.c.project_id == project_id, files.c.deleted_at.isnot(None))
        if version is None:
            if prow.deleted_at is None:
                raise not_found(f"{name} is not deleted; name a version or file to restore")
            # As it was: what the project deletion took, not what had been deleted before it.
            query = query.where(files.c.filename.in_(_taken_by(conn, name, "project-deleted")))
            action, subject = "project-restored", f"project:{name}"
        else:
            release = find_release(conn, project_id, name, version)
            query = query.where(files.c.release_id == release.id)
            if filename is not None:
                query = query.where(files.c.filename == filename)
                action, subject = "file-restored", f"file:{filename}"
            else:
                release_deleted = conn.execute(sa.select(releases.c.deleted_at)
                                               .where(releases.c.id == release.id)).scalar()
                if release_deleted is None:
                    raise not_found(f"release {release.version} of {name} is not deleted; name a file to restore")
                query = query.where(files.c.filename.in_(
                    _taken_by(conn, name, "release-deleted", release.version)
                    | _taken_by(conn, name, "file-deleted", release.version, since=release_deleted)))
                action, subject = "release-restored", f"release:{name}/{release.version}"
        rows = list(conn.execute(query.order_by(files.c.filename)).all())
        if not rows and not (version is None and prow.deleted_at is not None):
            raise not_found("nothing deleted matches; see `moorage events` for what was deleted")
        missing = [r.filename for r in rows if not ctx.blobs.exists(r.sha256)]
        if missing:
            raise Denied.by("retention-expired",
                            f"the bytes of {', '.join(missing)} are no longer kept (retention ended)")
        ids = [r.id for r in rows]
        if ids:
            conn.execute(files.update().where(files.c.id.in_(ids)).values(deleted_at=None, deleted_reason=None))
            conn.execute(releases.update().where(releases.c.id.in_({r.release_id for r in rows}))
                         .values(deleted_at=None))
            conn.execute(projects.update().where(projects.c.id == project_id)
                         .values(total_size=projects.c.total_size + sum(int(r.size) for r in rows)))
        if prow.deleted_at is not None:
            conn.execute(projects.update().where(projects.c.id == project_id)
                         .values(deleted_at=None, deleted_reason=None))
        append_event(conn, now=now, actor=actor.name, action=action, subject=subject, project=name, payload={
            "project": name, "version": version, "reason": reason.strip(),
            "files": [{"filename": r.filename, "sha256": r.sha256, "size": r.size} for r in rows],
            "before": {"deleted": True}, "after": {"deleted": False}})
    ctx.committed({name})
    return [r.filename for r in rows]


def purge(ctx: Context, *, dry_run: bool = False) -> list[str]:
    """Remove the bytes of files deleted longer ago than the retention period, unless a file
    still offered shares them. Rows stay (tombstones); a later restore answers
    `retention-expired`. Returns the filenames whose bytes were (or would be) removed."""
    cutoff = ctx.clock.now() - ctx.settings.lifecycle.retention
    with ctx.db.read() as conn:
        candidates = conn.execute(
            sa.select(projects.c.normalized_name).join(files, files.c.project_id == projects.c.id)
            .where(files.c.deleted_at.isnot(None), files.c.deleted_at < cutoff).distinct()
        ).scalars().all()
    purged: list[str] = []
    for name in candidates:
        purged += _purge_project(ctx, name, cutoff, dry_run)
    return purged


def _purge_project(ctx: Context, name: str, cutoff: datetime, dry_run: bool) -> list[str]:
    now = ctx.clock.now()
    doomed: list[tuple[str, str]] = []
    with ctx.db.write() as conn:
        project_id, _ = find_project(conn, name, lock=True)  # locked: a restore of this project waits for us
        rows = conn.execute(
            sa.select(files.c.filename, files.c.sha256, files.c.metadata_sha256)
            .where(files.c.project_id == project_id, files.c.deleted_at.isnot(None), files.c.deleted_at < cutoff)
            .order_by(files.c.filename)
        ).all()
        live = sa.select(files.c.id).where(files.c.deleted_at.is_(None))
        for row in rows:
            for sha in (row.sha256, row.metadata_sha256):
                if sha is None or not ctx.blobs.exists(sha):
                    continue
                shared = conn.execute(live.where(sa.or_(files.c.sha256 == sha, files.c.metadata_sha256 == sha))
                                      .limit(1)).first()
                if shared is None:
                    doomed.append((row.filename, sha))
        filenames = sorted({f for f, _ in doomed})
        if not doomed or dry_run:
            return filenames
        append_event(conn, now=now, actor="operator", action="bytes-purged", subject=f"project:{name}",
                     project=name, payload={"project": name, "files": filenames,
                                            "retention_ended_before": cutoff.isoformat()})
    for _filename, sha in doomed:  # after the commit: the record comes first
        ctx.blobs.remove(sha)
    return filenames
