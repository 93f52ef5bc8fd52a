"""Read-side queries: what the simple pages, file downloads, JSON API and project pages show.

The web reads these through a source (``sources/local.py``), which adds the rules that depend
on the instant (an announced removal, ``domain/removal.py``) and says until when its answer
holds; the value types here are the ones every source answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from packaging.version import Version
from sqlalchemy.engine import Connection

from moorage.domain.removal import removal_in_effect, removal_offer
from moorage.store.tables import events, files, log_entries, projects, releases


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
    deleted_at: datetime | None = None
    log_index: int | None = None  # the log leaf of the file's upload event

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
    quarantined: bool = False
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ProjectView:
    name: str
    normalized_name: str
    status: str
    status_reason: str | None
    last_serial: int
    releases: list[ReleaseView]  # oldest version first
    files: list[FileView]  # by version, then filename
    successor: str | None = None
    removal_at: datetime | None = None
    deletions_disabled_at: datetime | None = None
    deleted_at: datetime | None = None

    def removal_in_effect(self, now: datetime) -> bool:
        """Whether the project's announced removal has taken effect at ``now`` (the rule of
        domain/removal.py; the pages for people show "Removed" or "Pending removal" by it)."""
        return removal_in_effect(self.removal_at, now)


def withhold_files(view: ProjectView) -> ProjectView:
    """The project without its releases and files: what a root offers of a project whose
    announced removal withholds them there (its name, status and reason stay)."""
    return replace(view, releases=[], files=[])


def _version_key(v: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(v))
    except ValueError:  # InvalidVersion, or a number too long to convert
        return (0, v)


def project_names(conn: Connection) -> list[tuple[str, str]]:
    """(name, normalized name) of every project offered, by normalized name."""
    rows = conn.execute(sa.select(projects.c.name, projects.c.normalized_name)
                        # a quarantined or deleted project leaves the index
                        .where(projects.c.status != "quarantined", projects.c.deleted_at.is_(None))
                        .order_by(projects.c.normalized_name)).all()
    return [(r.name, r.normalized_name) for r in rows]


def load_project(conn: Connection, normalized_name: str, *, offered_only: bool = True,
                 now: datetime | None = None, pending_root: bool = False) -> ProjectView | None:
    """A project with its releases and files. ``offered_only`` leaves out what is withheld:
    deleted files and releases, everything of a quarantined project, quarantined releases.
    With ``now``, also what an announced removal withholds at that instant from the default
    root (or, with ``pending_root``, from the opt-in one): domain/removal.py decides. The
    sources (sources/local.py) read without ``now`` and ask the rule themselves, since they
    also say until when their answer holds."""
    p = conn.execute(sa.select(projects).where(projects.c.normalized_name == normalized_name)).first()
    if p is None or (offered_only and p.deleted_at is not None):
        return None
    withheld = (offered_only and now is not None
                and not removal_offer(p.removal_at, now, opted_in=pending_root).files)
    rels = conn.execute(
        sa.select(releases.c.id, releases.c.version, releases.c.created_at, releases.c.requires_python,
                  releases.c.metadata, releases.c.reopened_until, releases.c.quarantined_at, releases.c.deleted_at)
        .where(releases.c.project_id == p.id)
    ).all()
    if offered_only:
        rels = ([] if p.status == "quarantined" or withheld
                else [r for r in rels if r.quarantined_at is None and r.deleted_at is None])
    by_id = {r.id: r.version for r in rels}
    query = sa.select(files).where(files.c.project_id == p.id)
    if offered_only:
        query = query.where(files.c.deleted_at.is_(None))
    frows = conn.execute(query).all() if rels else []
    logged: dict[str, int] = {row.subject: int(row.idx) for row in conn.execute(
        sa.select(events.c.subject, log_entries.c.idx).join(log_entries, log_entries.c.serial == events.c.serial)
        .where(events.c.project == p.normalized_name, events.c.action == "file-added")
    )} if frows else {}
    file_views = [
        FileView(f.filename, by_id[f.release_id], f.packagetype, f.python_version, f.sha256, f.blake2_256,
                 f.md5, f.size, f.upload_time, f.requires_python, f.metadata_sha256, f.yanked_at, f.yanked_reason,
                 f.deleted_at, logged.get(f"file:{f.filename}"))
        for f in frows if f.release_id in by_id
    ]
    file_views.sort(key=lambda f: (_version_key(f.version), f.filename))
    release_views = sorted(
        (ReleaseView(r.version, r.created_at, r.requires_python, r.metadata, r.reopened_until,
                     r.quarantined_at is not None, r.deleted_at is not None) for r in rels),
        key=lambda r: _version_key(r.version),
    )
    return ProjectView(p.name, p.normalized_name, p.status, p.status_reason, int(p.last_serial),
                       release_views, file_views, p.successor, p.removal_at, p.deletions_disabled_at, p.deleted_at)


def find_file(conn: Connection, filename: str, *, now: datetime | None = None,
              pending_root: bool = False) -> tuple[FileView, str, datetime | None] | None:
    """A file that is offered (not deleted, nor quarantined with its release or project), with
    its project's name and the instant its project's removal takes effect, if one is announced.
    With ``now``, None too when that removal withholds it at that instant from the default root
    (or, with ``pending_root``, from the opt-in one): domain/removal.py decides."""
    row = conn.execute(
        sa.select(files, releases.c.version, projects.c.normalized_name, projects.c.removal_at)
        .join(releases, releases.c.id == files.c.release_id)
        .join(projects, projects.c.id == files.c.project_id)
        .where(files.c.filename == filename, files.c.deleted_at.is_(None), releases.c.quarantined_at.is_(None),
               projects.c.status != "quarantined")
    ).first()
    if row is None:
        return None
    if now is not None and not removal_offer(row.removal_at, now, opted_in=pending_root).files:
        return None
    view = FileView(row.filename, row.version, row.packagetype, row.python_version, row.sha256, row.blake2_256,
                    row.md5, row.size, row.upload_time, row.requires_python, row.metadata_sha256,
                    row.yanked_at, row.yanked_reason)
    return view, row.normalized_name, row.removal_at


def changed_projects_since(conn: Connection, serial: int) -> tuple[int, set[str]]:
    """The newest serial and the projects changed after ``serial``."""
    newest, names = projects_changed_since(conn, serial)
    return newest, set(names)


def projects_changed_since(conn: Connection, serial: int) -> tuple[int, list[str]]:
    """The newest serial and the projects changed after ``serial``, the most recently changed
    first (after 0: every project, which is the order the page cache warms up in)."""
    newest = global_serial(conn)
    if newest <= serial:
        return int(newest), []
    names = conn.execute(
        sa.select(projects.c.normalized_name).where(projects.c.last_serial > serial)
        .order_by(projects.c.last_serial.desc())
    ).scalars().all()
    return int(newest), list(names)


def global_serial(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.serial), 0))).scalar_one())


@dataclass(frozen=True, slots=True)
class EventView:
    serial: int
    created_at: datetime
    actor: str
    action: str
    project: str | None
    subject: str
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "time": self.created_at.isoformat(), "actor": self.actor,
                "action": self.action, "project": self.project, "subject": self.subject, "payload": self.payload}


def list_events(conn: Connection, *, project: str | None = None, actions: frozenset[str] | None = None,
                after: int = 0, limit: int = 1000) -> list[EventView]:
    """Events in serial order, optionally of one project and of some actions only."""
    query = sa.select(events).where(events.c.serial > after).order_by(events.c.serial).limit(limit)
    if project is not None:
        query = query.where(events.c.project == project)
    if actions is not None:
        query = query.where(events.c.action.in_(sorted(actions)))
    return [EventView(r.serial, r.created_at, r.actor, r.action, r.project, r.subject, r.payload)
            for r in conn.execute(query).all()]


def log_indexes(conn: Connection, project: str) -> dict[int, int]:
    """The log leaf of each of a project's events, by the event's serial (its history page
    links each event to its leaf)."""
    rows = conn.execute(sa.select(log_entries.c.serial, log_entries.c.idx)
                        .join(events, events.c.serial == log_entries.c.serial)
                        .where(events.c.project == project)).tuples().all()
    return {int(serial): int(idx) for serial, idx in rows}
