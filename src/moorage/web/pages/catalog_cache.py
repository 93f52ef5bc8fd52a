"""Per process: the home page's numbers and the search index, current to the event serial.

Counting 30,000 files or reading 10,000 summaries on every request would cost tens of
milliseconds; the newest event serial is one index lookup. When it moves, only the projects
changed since are read again (any process's writes count: the serial is in the database).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from moorage.services.context import Context
from moorage.store.catalog import ReleaseLine, counts, project_lines, recent_releases, search_lines
from moorage.store.queries import changed_projects_since, global_serial


@dataclass(frozen=True)
class HomeData:
    counts: dict[str, int]
    recent: list[ReleaseLine]


class CatalogCache:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._serial = -1
        self._lines: dict[str, ReleaseLine] = {}
        self._sorted: list[ReleaseLine] = []
        self._home: HomeData | None = None

    def _refresh(self, conn: Connection) -> None:
        serial = global_serial(conn)
        if serial == self._serial:
            return
        if self._serial < 0:
            self._lines = {line.normalized: line for line in project_lines(conn)}
        else:
            serial, changed = changed_projects_since(conn, self._serial)
            fresh = {line.normalized: line for line in project_lines(conn, changed)}
            for name in changed:  # gone from the index (quarantined, deleted) unless read again
                self._lines.pop(name, None)
            self._lines.update(fresh)
        self._sorted = sorted(self._lines.values(), key=lambda line: line.normalized)
        self._home = None
        self._serial = serial

    def home(self) -> HomeData:
        with self._lock, self.ctx.db.read() as conn:
            self._refresh(conn)
            if self._home is None:
                self._home = HomeData(counts(conn), recent_releases(conn, 12))
            return self._home

    def search(self, query: str) -> list[ReleaseLine]:
        with self._lock, self.ctx.db.read() as conn:
            self._refresh(conn)
            lines = self._sorted
        return search_lines(lines, query)
