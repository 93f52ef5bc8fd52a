"""The local upload history, as `moorage policy simulate` replays it: every file ever
uploaded (deleted ones too: they were accepted), grouped by project."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.domain.simulation import ProjectHistory, UploadRecord
from moorage.store.tables import files, projects


def count_projects(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(projects)).scalar_one())


def upload_histories(conn: Connection) -> Iterator[ProjectHistory]:
    rows = conn.execution_options(yield_per=5000).execute(
        sa.select(projects.c.normalized_name, files.c.filename, files.c.upload_time)
        .join(files, files.c.project_id == projects.c.id)
        .order_by(projects.c.normalized_name, files.c.upload_time, files.c.filename)
    )
    name: str | None = None
    records: list[UploadRecord] = []
    for row in rows:
        if row.normalized_name != name:
            if name is not None:
                yield ProjectHistory(name, records)
            name, records = row.normalized_name, []
        records.append(UploadRecord(row.filename, row.upload_time))
    if name is not None:
        yield ProjectHistory(name, records)
