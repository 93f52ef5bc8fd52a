"""What an index offers for a project: the one protocol every source of pages and files answers.

The simple API, the file downloads, the JSON API and the project pages read through a
``Source`` and never know which one it is. The index's own projects are one source
(``local.py``: the database and the blob store); the opt-in root of pending removals wraps it
(``pending.py``). An upstream mirror, a stage or a replica is one more implementation.

A source answers at an instant (``now``): rules that depend on time (an announced removal,
``domain/removal.py``) are the source's to apply, and each answer says until when it holds by
the passing of time alone, so the caches above it keep it exactly that long. Anything else
that changes an answer moves the source's serial: ``changes_since`` names the projects, and
the caches drop them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from moorage.store.blobs import BlobBytes, BlobMissing, ByteStream, LocalBytes, RemoteBytes
from moorage.store.queries import FileView, ProjectView, ReleaseView

__all__ = [
    "BlobBytes", "BlobMissing", "ByteStream", "Changes", "FileView", "FoundFile", "LocalBytes", "PendingRemovals",
    "ProjectList", "ProjectPage", "ProjectView", "ReleaseView", "RemoteBytes", "Source",
]


@dataclass(frozen=True, slots=True)
class ProjectList:
    """The projects a source offers (the root page, ``/simple/``) and the serial it is at."""

    serial: int
    projects: list[tuple[str, str]]  # (name as uploaded, normalized name), by normalized name


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """One project as a source offers it at an instant: its files with their state (yanks,
    sizes, hashes), its versions, its status. ``until``: the instant the answer changes by time
    alone (an announced removal takes effect), or None."""

    view: ProjectView
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class FoundFile:
    """One file a source offers, found by its filename (unique forever): the file, its
    project's normalized name (a download is counted for it) and the instant the answer changes
    by time alone, or None."""

    file: FileView
    project: str
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """The source's serial now, and the projects whose answers changed after the serial asked
    about, the most recently changed first (after serial 0: every project)."""

    serial: int
    projects: tuple[str, ...]


class Source(Protocol):
    """What an index offers for a project: its files, their state, their bytes.

    Names are normalized (PEP 503) before they are asked for. Every method but ``locate`` may
    read a database or the network: call them off the event loop."""

    def project_list(self) -> ProjectList:
        """Every project offered, for the root page."""
        ...

    def project(self, name: str, now: datetime) -> ProjectPage | None:
        """The project as offered at ``now`` (the simple pages, the JSON API), or None when
        this source offers no project of this name."""
        ...

    def record(self, name: str, now: datetime) -> ProjectView | None:
        """All the source knows of the project, for the pages for people: what it withholds
        too, marked as such (deleted, quarantined), or None when it knows no such project."""
        ...

    def file(self, filename: str, now: datetime) -> FoundFile | None:
        """The file of this name as offered at ``now``, or None when it is not offered."""
        ...

    def locate(self, found: FoundFile, *, metadata: bool = False) -> BlobBytes:
        """Where the file's bytes (or, with ``metadata``, its ``.metadata`` file's: PEP 658)
        are read from: a file on this host, or bytes elsewhere to stream or redirect to.
        Without I/O: the handle's reads do it (bytes missing raise BlobMissing there)."""
        ...

    def changes_since(self, serial: int) -> Changes:
        """What changed after ``serial`` (a serial from an earlier answer, or 0)."""
        ...


class PendingRemovals(Source, Protocol):
    """A source whose projects can have an announced removal (domain/removal.py): what it
    offers the clients that opt in to pending removals. The opt-in root (``pending.py``) serves
    these answers; the default root serves ``project`` and ``file``."""

    def pending_project(self, name: str, now: datetime) -> ProjectPage | None:
        """The project as offered at ``now`` to the clients that opt in."""
        ...

    def pending_file(self, filename: str, now: datetime) -> FoundFile | None:
        """The file of this name as offered at ``now`` to the clients that opt in."""
        ...
