"""Sources of pages and files: what the index offers for a project (base.py, the protocol), the
index's own projects (local.py) and the opt-in root of pending removals around them (pending.py)."""

from __future__ import annotations

from moorage.sources.base import (
    BlobBytes,
    BlobMissing,
    ByteStream,
    Changes,
    FileView,
    FoundFile,
    LocalBytes,
    PendingRemovals,
    ProjectList,
    ProjectPage,
    ProjectView,
    ReleaseView,
    RemoteBytes,
    Source,
)
from moorage.sources.local import LocalSource
from moorage.sources.pending import PendingSource
from moorage.store.database import Database

__all__ = [
    "BlobBytes", "BlobMissing", "ByteStream", "Changes", "FileView", "FoundFile", "LocalBytes", "LocalSource",
    "PendingRemovals", "PendingSource", "ProjectList", "ProjectPage", "ProjectView", "ReleaseView", "RemoteBytes",
    "Source", "as_source",
]


def as_source(source: Source | Database) -> Source:
    """A source as given, or the index's own projects read from a database (pages only: no
    blob store), for callers that hand a page cache the database itself."""
    return LocalSource(source) if isinstance(source, Database) else source
