"""Per process: the home page's numbers and the search index, current to the event serial.

Counting 30,000 files or reading 10,000 summaries on every request would cost tens of
milliseconds; the newest event serial is one index lookup. When it moves, only the projects
changed since are read again (any process's writes count: the serial is in the database).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from moorage.services.context import Context
from moorage.store.catalog import CatalogChanges, ReleaseLine, catalog_since, counts, recent_releases, search_lines


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

    def _catch_up(self, changes: CatalogChanges | None) -> None:
        if changes is None:
            return
        if changes.changed is None:
            self._lines = {line.normalized: line for line in changes.lines}
        else:
            for name in changes.changed:  # gone from the index (quarantined, deleted) unless read again
                self._lines.pop(name, None)
            self._lines.update((line.normalized, line) for line in changes.lines)
        self._sorted = sorted(self._lines.values(), key=lambda line: line.normalized)
        self._home = None
        self._serial = changes.serial

    def home(self) -> HomeData:
        with self._lock, self.ctx.db.read() as conn:
            self._catch_up(catalog_since(conn, self._serial))
            if self._home is None:
                self._home = HomeData(counts(conn), recent_releases(conn, 12))
            return self._home

    def search(self, query: str) -> list[ReleaseLine]:
        with self._lock, self.ctx.db.read() as conn:
            self._catch_up(catalog_since(conn, self._serial))
            lines = self._sorted
        return search_lines(lines, query)
