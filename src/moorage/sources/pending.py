"""The opt-in root of pending removals (``/pending/simple/``, ``/pending/files/``) as a wrapper
around a source: everything the wrapped source offers, and also the files of projects whose
announced removal has taken effect, which the default root withholds. Which files those are
the wrapped source says (``PendingRemovals``), by the rule of domain/removal.py."""

from __future__ import annotations

from datetime import datetime

from moorage.sources.base import BlobBytes, Changes, FoundFile, PendingRemovals, ProjectList, ProjectPage, ProjectView


class PendingSource:
    def __init__(self, inner: PendingRemovals) -> None:
        self.inner = inner

    def project_list(self) -> ProjectList:
        return self.inner.project_list()

    def project(self, name: str, now: datetime) -> ProjectPage | None:
        return self.inner.pending_project(name, now)

    def record(self, name: str, now: datetime) -> ProjectView | None:
        return self.inner.record(name, now)

    def file(self, filename: str, now: datetime) -> FoundFile | None:
        return self.inner.pending_file(filename, now)

    def locate(self, found: FoundFile, *, metadata: bool = False) -> BlobBytes:
        return self.inner.locate(found, metadata=metadata)

    def changes_since(self, serial: int) -> Changes:
        return self.inner.changes_since(serial)
