"""The index's own projects as a source: read from the database (store/queries.py), bytes from
the blob store (the data directory's or an S3 bucket's, store/blobs.py).

What is offered is what is neither deleted nor quarantined; an announced removal withholds a
project's files from the default root once it takes effect, and not from the clients that
opt in: the rule is domain/removal.py's, asked here for each answer.
"""

from __future__ import annotations

from datetime import datetime

from moorage.domain.removal import removal_offer
from moorage.sources.base import BlobBytes, Changes, FoundFile, ProjectList, ProjectPage, ProjectView
from moorage.store.blobs import BlobStore
from moorage.store.database import Database
from moorage.store.queries import (
    find_file,
    global_serial,
    load_project,
    project_names,
    projects_changed_since,
    withhold_files,
)


class LocalSource:
    """The database and the blob store. ``blobs`` may be left out where only pages are read
    (a page cache handed a database); ``locate`` then has nothing to answer with."""

    def __init__(self, db: Database, blobs: BlobStore | None = None) -> None:
        self.db = db
        self.blobs = blobs

    def project_list(self) -> ProjectList:
        with self.db.read() as conn:
            return ProjectList(global_serial(conn), project_names(conn))

    def project(self, name: str, now: datetime) -> ProjectPage | None:
        return self._page(name, now, opted_in=False)

    def pending_project(self, name: str, now: datetime) -> ProjectPage | None:
        return self._page(name, now, opted_in=True)

    def _page(self, name: str, now: datetime, *, opted_in: bool) -> ProjectPage | None:
        with self.db.read() as conn:
            view = load_project(conn, name)
        if view is None:
            return None
        offer = removal_offer(view.removal_at, now, opted_in=opted_in)
        return ProjectPage(view if offer.files else withhold_files(view), offer.until)

    def record(self, name: str, now: datetime) -> ProjectView | None:
        with self.db.read() as conn:
            return load_project(conn, name, offered_only=False)

    def file(self, filename: str, now: datetime) -> FoundFile | None:
        return self._file(filename, now, opted_in=False)

    def pending_file(self, filename: str, now: datetime) -> FoundFile | None:
        return self._file(filename, now, opted_in=True)

    def _file(self, filename: str, now: datetime, *, opted_in: bool) -> FoundFile | None:
        with self.db.read() as conn:
            found = find_file(conn, filename)
        if found is None:
            return None
        view, project, removal_at = found
        offer = removal_offer(removal_at, now, opted_in=opted_in)
        return FoundFile(view, project, offer.until) if offer.files else None

    def locate(self, found: FoundFile, *, metadata: bool = False) -> BlobBytes:
        sha256 = found.file.metadata_sha256 if metadata else found.file.sha256
        if sha256 is None:
            raise LookupError(f"{found.file.filename} has no separately served metadata")
        if self.blobs is None:
            raise LookupError("this source reads pages only: it was given no blob store")
        return self.blobs.locate(sha256)

    def changes_since(self, serial: int) -> Changes:
        with self.db.read() as conn:
            newest, names = projects_changed_since(conn, serial)
        return Changes(newest, tuple(names))
