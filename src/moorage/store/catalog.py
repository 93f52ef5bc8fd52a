"""Read-side queries for the pages: counts, recent releases, search over names and summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.domain.names import normalize
from moorage.store.queries import changed_projects_since, global_serial
from moorage.store.tables import files, invitations, projects, releases, roles

_OFFERED = sa.and_(projects.c.status != "quarantined", projects.c.deleted_at.is_(None))


@dataclass(frozen=True, slots=True)
class ReleaseLine:
    project: str  # as uploaded
    normalized: str
    version: str
    summary: str
    created_at: datetime
    status: str


def counts(conn: Connection) -> dict[str, int]:
    """What the pages list: offered projects with a release left (a project whose files were all
    deleted is not listed, so not counted), their releases and their files."""
    listed = sa.and_(_OFFERED, releases.c.deleted_at.is_(None))
    with_project = releases.join(projects, projects.c.id == releases.c.project_id)
    n_projects = conn.execute(sa.select(sa.func.count(sa.distinct(releases.c.project_id))).select_from(with_project)
                              .where(listed)).scalar_one()
    n_releases = conn.execute(sa.select(sa.func.count()).select_from(with_project).where(listed)).scalar_one()
    n_files = conn.execute(sa.select(sa.func.count()).select_from(files.join(with_project,
                                                                             releases.c.id == files.c.release_id))
                           .where(listed, files.c.deleted_at.is_(None))).scalar_one()
    return {"projects": int(n_projects), "releases": int(n_releases), "files": int(n_files)}


def _lines(rows: list[sa.Row[tuple[str, str, str, str | None, datetime, str]]]) -> list[ReleaseLine]:
    return [ReleaseLine(r.name, r.normalized_name, r.version, r.summary or "", r.created_at, r.status)
            for r in rows]


def _summary() -> sa.ColumnElement[str]:
    return releases.c.metadata["summary"].as_string()


def recent_releases(conn: Connection, limit: int = 10) -> list[ReleaseLine]:
    rows = conn.execute(
        sa.select(projects.c.name, projects.c.normalized_name, releases.c.version, _summary().label("summary"),
                  releases.c.created_at, projects.c.status)
        .join(projects, projects.c.id == releases.c.project_id)
        .where(_OFFERED, releases.c.deleted_at.is_(None), releases.c.quarantined_at.is_(None))
        .order_by(releases.c.created_at.desc(), releases.c.id.desc()).limit(limit)
    ).all()
    return _lines(list(rows))


def project_lines(conn: Connection, names: set[str] | None = None) -> list[ReleaseLine]:
    """Each offered project (or those of ``names``) with its newest release: what search looks at."""
    # The newest release of each project stands for it (its summary is the project's).
    newest = (sa.select(releases.c.project_id, sa.func.max(releases.c.id).label("release_id"))
              .where(releases.c.deleted_at.is_(None)).group_by(releases.c.project_id))
    query = (sa.select(projects.c.name, projects.c.normalized_name, releases.c.version, _summary().label("summary"),
                       releases.c.created_at, projects.c.status)
             .where(_OFFERED))
    if names is not None:
        if not names:
            return []
        newest = newest.join(projects, projects.c.id == releases.c.project_id).where(
            projects.c.normalized_name.in_(sorted(names)))
        query = query.where(projects.c.normalized_name.in_(sorted(names)))
    sub = newest.subquery()
    query = (query.join(sub, sub.c.project_id == projects.c.id)
             .join(releases, releases.c.id == sub.c.release_id))
    return _lines(list(conn.execute(query).all()))


@dataclass(frozen=True, slots=True)
class CatalogChanges:
    """What a copy of the catalogue (each process keeps one: web/pages/catalog_cache.py) reads
    to catch up with the newest serial: the lines of the projects changed since its serial, or
    of every project (``changed`` None) when it had none yet. A changed project without a line
    has left the catalogue (quarantined, deleted)."""

    serial: int
    lines: list[ReleaseLine]
    changed: set[str] | None


def catalog_since(conn: Connection, serial: int) -> CatalogChanges | None:
    """None when nothing changed after ``serial``; a negative ``serial``: the whole catalogue."""
    newest = global_serial(conn)
    if newest == serial:
        return None
    if serial < 0:
        return CatalogChanges(newest, project_lines(conn), None)
    newest, changed = changed_projects_since(conn, serial)
    return CatalogChanges(newest, project_lines(conn, changed), changed)


def search_lines(lines: list[ReleaseLine], query: str, limit: int = 50) -> list[ReleaseLine]:
    """Projects whose name or summary contains every word: the exact name first, then names
    starting with the query, then the other matches, by name."""
    words = [w for w in query.lower().split() if w][:8]
    if not words:
        return []
    keys = [(w, normalize(w)) for w in words]
    found = [line for line in lines
             if all(n in line.normalized or w in line.summary.lower() for w, n in keys)]
    whole = normalize("-".join(words))

    def rank(line: ReleaseLine) -> tuple[int, str]:
        if line.normalized == whole:
            return (0, line.normalized)
        return (1 if line.normalized.startswith(whole) else 2, line.normalized)

    return sorted(found, key=rank)[:limit]


@dataclass(frozen=True, slots=True)
class RoleLine:
    name: str
    normalized: str
    role: str


@dataclass(frozen=True, slots=True)
class InvitationLine:
    project: str
    role: str
    transfer: bool
    invited_by: str


def user_projects(conn: Connection, user_id: int, limit: int = 100) -> tuple[list[RoleLine], int]:
    """The first ``limit`` of a user's projects by name, and how many there are in all."""
    where = sa.and_(roles.c.user_id == user_id, projects.c.deleted_at.is_(None))
    rows = conn.execute(sa.select(projects.c.name, projects.c.normalized_name, roles.c.role)
                        .join(roles, roles.c.project_id == projects.c.id)
                        .where(where).order_by(projects.c.normalized_name).limit(limit)).all()
    total = conn.execute(sa.select(sa.func.count()).select_from(roles)
                         .join(projects, projects.c.id == roles.c.project_id).where(where)).scalar_one()
    return [RoleLine(r.name, r.normalized_name, r.role) for r in rows], int(total)


def open_invitations(conn: Connection, user_id: int) -> list[InvitationLine]:
    rows = conn.execute(sa.select(projects.c.normalized_name, invitations.c.role, invitations.c.transfer,
                                  invitations.c.invited_by)
                        .join(projects, projects.c.id == invitations.c.project_id)
                        .where(invitations.c.user_id == user_id, invitations.c.answered_at.is_(None))
                        .order_by(invitations.c.created_at)).all()
    return [InvitationLine(r.normalized_name, r.role, bool(r.transfer), r.invited_by) for r in rows]


@dataclass(frozen=True, slots=True)
class Withheld:
    """Something an admin may act on: quarantined, deleted (restorable), orphaned, being removed."""

    kind: str  # project, release, file
    project: str
    version: str | None
    filename: str | None
    at: datetime | None
    reason: str | None


def admin_overview(conn: Connection, limit: int = 200) -> dict[str, list[Withheld]]:
    quarantined = [Withheld("project", r.normalized_name, None, None, r.status_changed_at, r.status_reason)
                   for r in conn.execute(sa.select(projects.c.normalized_name, projects.c.status_changed_at,
                                                   projects.c.status_reason)
                                         .where(projects.c.status == "quarantined", projects.c.deleted_at.is_(None))
                                         .order_by(projects.c.normalized_name).limit(limit))]
    quarantined += [Withheld("release", r.normalized_name, r.version, None, r.quarantined_at, r.quarantine_reason)
                    for r in conn.execute(sa.select(projects.c.normalized_name, releases.c.version,
                                                    releases.c.quarantined_at, releases.c.quarantine_reason)
                                          .join(projects, projects.c.id == releases.c.project_id)
                                          .where(releases.c.quarantined_at.is_not(None))
                                          .order_by(releases.c.quarantined_at.desc()).limit(limit))]
    deleted = [Withheld("project", r.normalized_name, None, None, r.deleted_at, r.deleted_reason)
               for r in conn.execute(sa.select(projects.c.normalized_name, projects.c.deleted_at,
                                               projects.c.deleted_reason)
                                     .where(projects.c.deleted_at.is_not(None))
                                     .order_by(projects.c.deleted_at.desc()).limit(limit))]
    deleted += [Withheld("file", r.normalized_name, r.version, r.filename, r.deleted_at, r.deleted_reason)
                for r in conn.execute(sa.select(projects.c.normalized_name, releases.c.version, files.c.filename,
                                                files.c.deleted_at, files.c.deleted_reason)
                                      .join(releases, releases.c.id == files.c.release_id)
                                      .join(projects, projects.c.id == files.c.project_id)
                                      .where(files.c.deleted_at.is_not(None), projects.c.deleted_at.is_(None))
                                      .order_by(files.c.deleted_at.desc()).limit(limit))]
    owned = sa.select(roles.c.project_id).where(roles.c.role == "owner")
    orphaned = [Withheld("project", r.normalized_name, None, None, None, None)
                for r in conn.execute(sa.select(projects.c.normalized_name)
                                      .where(projects.c.id.not_in(owned), projects.c.deleted_at.is_(None))
                                      .order_by(projects.c.normalized_name).limit(limit))]
    removals = [Withheld("project", r.normalized_name, None, None, r.removal_at, r.status_reason)
                for r in conn.execute(sa.select(projects.c.normalized_name, projects.c.removal_at,
                                                projects.c.status_reason)
                                      .where(projects.c.removal_at.is_not(None), projects.c.deleted_at.is_(None))
                                      .order_by(projects.c.removal_at).limit(limit))]
    return {"quarantined": quarantined, "deleted": deleted, "orphaned": orphaned, "removals": removals}
