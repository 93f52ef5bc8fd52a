"""Download counts and the critical designation: the batched upsert and the read side."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from moorage.domain.accounts import CriticalFacts
from moorage.domain.downloads import DownloadSums, Kind, earliest_day, sums
from moorage.store.accounts import designation
from moorage.store.tables import critical_projects, download_counts, projects

# Rows per INSERT statement: 4 parameters each stays far below SQLite's variable limit.
_CHUNK = 500


def project_ids(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """normalized name -> project id, for the names that exist."""
    wanted = sorted(set(names))
    found: dict[str, int] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i:i + _CHUNK]
        for pid, name in conn.execute(sa.select(projects.c.id, projects.c.normalized_name)
                                      .where(projects.c.normalized_name.in_(chunk))):
            found[str(name)] = int(pid)
    return found


def add_counts(conn: Connection, counts: Mapping[tuple[int, date, str], int]) -> None:
    """Add to the stored counts: INSERT ... ON CONFLICT (project_id, day, kind) DO UPDATE SET
    count = download_counts.count + excluded.count. Rows go in key order, so two processes
    flushing at once lock the same rows in the same order (no deadlock on PostgreSQL)."""
    rows = [{"project_id": pid, "day": day, "kind": kind, "count": n}
            for (pid, day, kind), n in sorted(counts.items()) if n]
    if not rows:
        return
    dialect = conn.dialect.name
    for i in range(0, len(rows), _CHUNK):
        if dialect == "postgresql":
            pg = postgresql.insert(download_counts).values(rows[i:i + _CHUNK])
            conn.execute(pg.on_conflict_do_update(
                index_elements=[download_counts.c.project_id, download_counts.c.day, download_counts.c.kind],
                set_={"count": download_counts.c.count + pg.excluded["count"]}))
        elif dialect == "sqlite":
            lite = sqlite.insert(download_counts).values(rows[i:i + _CHUNK])
            conn.execute(lite.on_conflict_do_update(
                index_elements=[download_counts.c.project_id, download_counts.c.day, download_counts.c.kind],
                set_={"count": download_counts.c.count + lite.excluded["count"]}))
        else:  # pragma: no cover - the two supported databases are above
            raise NotImplementedError(f"download counts on {dialect}")


@dataclass(frozen=True, slots=True)
class ProjectDownloads:
    client: DownloadSums
    mirror: DownloadSums
    critical: CriticalFacts | None


def project_downloads(conn: Connection, normalized_name: str, today: date) -> ProjectDownloads:
    """The project's sums for the last day, week and month (ending ``today``, UTC) per kind, and
    its critical designation if it has one. Two primary-key lookups: at most 60 count rows."""
    pid = sa.select(projects.c.id).where(projects.c.normalized_name == normalized_name).scalar_subquery()
    rows: list[tuple[date, str, int]] = [
        (day, str(kind), int(count)) for day, kind, count in conn.execute(
            sa.select(download_counts.c.day, download_counts.c.kind, download_counts.c.count)
            .where(download_counts.c.project_id == pid, download_counts.c.day >= earliest_day(today),
                   download_counts.c.day <= today))]
    by_kind: dict[Kind, DownloadSums] = sums(rows, today)
    return ProjectDownloads(by_kind["client"], by_kind["mirror"],
                            designation(conn, critical_projects.c.project_id == pid))
