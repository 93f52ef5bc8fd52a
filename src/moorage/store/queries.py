"""Read-side queries: what the simple pages, file downloads and JSON API show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from packaging.version import InvalidVersion, Version
from sqlalchemy.engine import Connection

from moorage.store.tables import events, files, projects, releases


@dataclass(frozen=True, slots=True)
class FileView:
    filename: str
    version: str
    packagetype: str
    python_version: str
    sha256: str
    blake2_256: str
    md5: str
    size: int
    upload_time: datetime
    requires_python: str | None
    metadata_sha256: str | None
    yanked_at: datetime | None = None
    yanked_reason: str | None = None

    @property
    def yanked(self) -> bool:
        return self.yanked_at is not None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    version: str
    created_at: datetime
    requires_python: str | None
    metadata: dict[str, Any]
    reopened_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProjectView:
    name: str
    normalized_name: str
    status: str
    status_reason: str | None
    last_serial: int
    releases: list[ReleaseView]  # oldest version first
    files: list[FileView]  # by version, then filename


def _version_key(v: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def project_names(conn: Connection) -> list[tuple[str, str]]:
    """(name, normalized name) of every project, by normalized name."""
    rows = conn.execute(sa.select(projects.c.name, projects.c.normalized_name)
                        .order_by(projects.c.normalized_name)).all()
    return [(r.name, r.normalized_name) for r in rows]


def load_project(conn: Connection, normalized_name: str) -> ProjectView | None:
    p = conn.execute(sa.select(projects).where(projects.c.normalized_name == normalized_name)).first()
    if p is None:
        return None
    rels = conn.execute(
        sa.select(releases.c.id, releases.c.version, releases.c.created_at, releases.c.requires_python,
                  releases.c.metadata, releases.c.reopened_until).where(releases.c.project_id == p.id)
    ).all()
    by_id = {r.id: r.version for r in rels}
    frows = conn.execute(sa.select(files).where(files.c.project_id == p.id)).all()
    file_views = [
        FileView(f.filename, by_id[f.release_id], f.packagetype, f.python_version, f.sha256, f.blake2_256,
                 f.md5, f.size, f.upload_time, f.requires_python, f.metadata_sha256, f.yanked_at, f.yanked_reason)
        for f in frows
    ]
    file_views.sort(key=lambda f: (_version_key(f.version), f.filename))
    release_views = sorted(
        (ReleaseView(r.version, r.created_at, r.requires_python, r.metadata, r.reopened_until) for r in rels),
        key=lambda r: _version_key(r.version),
    )
    return ProjectView(p.name, p.normalized_name, p.status, p.status_reason, int(p.last_serial),
                       release_views, file_views)


def find_file(conn: Connection, filename: str) -> FileView | None:
    row = conn.execute(
        sa.select(files, releases.c.version).join(releases, releases.c.id == files.c.release_id)
        .where(files.c.filename == filename)
    ).first()
    if row is None:
        return None
    return FileView(row.filename, row.version, row.packagetype, row.python_version, row.sha256, row.blake2_256,
                    row.md5, row.size, row.upload_time, row.requires_python, row.metadata_sha256,
                    row.yanked_at, row.yanked_reason)


def changed_projects_since(conn: Connection, serial: int) -> tuple[int, set[str]]:
    """The newest serial and the projects changed after ``serial``."""
    newest = global_serial(conn)
    if newest <= serial:
        return int(newest), set()
    names = conn.execute(
        sa.select(projects.c.normalized_name).where(projects.c.last_serial > serial)
    ).scalars().all()
    return int(newest), set(names)


def global_serial(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.serial), 0))).scalar_one())


def projects_by_recent_change(conn: Connection) -> list[str]:
    """Normalized names, the most recently changed first."""
    return list(conn.execute(
        sa.select(projects.c.normalized_name).order_by(projects.c.last_serial.desc())
    ).scalars().all())
