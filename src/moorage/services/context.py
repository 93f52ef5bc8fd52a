"""What every service needs: settings, database, blob store, clock, after-commit hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from moorage.config import Settings
from moorage.domain.clock import Clock
from moorage.services.clocks import OffsetFileClock, SystemClock
from moorage.store.blobs import BlobStore, FileBlobStore
from moorage.store.database import Database

# Called after a commit with the normalized names of the projects it changed.
ChangeHook = Callable[[set[str]], None]


@dataclass
class Context:
    settings: Settings
    db: Database
    blobs: BlobStore
    clock: Clock = field(default_factory=SystemClock)
    hooks: list[ChangeHook] = field(default_factory=list)

    def committed(self, projects: set[str]) -> None:
        for hook in self.hooks:
            hook(projects)

    def close(self) -> None:
        self.db.dispose()


def open_context(settings: Settings, clock: Clock | None = None, *, migrate: bool = False) -> Context:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    if migrate:
        db.upgrade()
    if clock is None:
        clock = OffsetFileClock(settings.clock_offset_file) if settings.clock_offset_file else SystemClock()
    return Context(settings=settings, db=db, blobs=open_blob_store(settings), clock=clock)


def open_blob_store(settings: Settings) -> BlobStore:
    """The data directory's blobs, or an S3 bucket's (``[blobs] store = "s3"``)."""
    if settings.blobs.store == "s3":
        from moorage.store.s3blobs import S3BlobStore  # boto3 loads only when it is used

        return S3BlobStore(settings.blobs, settings.blob_dir)
    return FileBlobStore(settings.blob_dir)
