"""Content-addressed blob store on the filesystem.

Bytes are written to a temporary file (fsync), then linked to ``<root>/<aa>/<bb>/<sha256>``
before the database commit that references them. A staged blob keeps its temporary file
until the caller has committed, so a concurrent failed upload that removes a shared blob
can never leave a committed row without bytes (``settle`` puts it back).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

_log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class BlobMissing(FileNotFoundError):
    """A blob the database references is not in the store: its bytes were lost (deleted by
    hand, a damaged disk, a bucket emptied). The web answers 503 naming the file
    (web/files.py); `moorage admin fsck` finds and repairs it."""

    def __init__(self, sha256: str) -> None:
        super().__init__(2, f"no blob {sha256} in the store")
        self.sha256 = sha256


@dataclass(frozen=True)
class BlobInfo:
    """One blob in the store as listed: its name (the sha256 of its bytes, unless the store
    holds something else under that layout), its size, and when it was written (seconds
    since the epoch: a file's mtime, an object's LastModified)."""

    name: str
    size: int
    modified: float


@dataclass(frozen=True, slots=True)
class LocalBytes:
    """Where a download reads a blob from: a file on this host's disk (the file store), sent
    as it is, with ranges, by the web."""

    path: Path


class ByteStream(Protocol):
    """An open read of some bytes (all of them, or one range); iterate ``chunks`` once."""

    @property
    def length(self) -> int:
        """Bytes in this answer."""
        ...

    @property
    def last_modified(self) -> datetime | None: ...

    def chunks(self, chunk_size: int = 1 << 16) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class RemoteBytes:
    """Where a download reads a blob from: somewhere that is not this host's disk (an object
    store's bucket). Each callable does I/O, so the web calls it off the event loop:

    - ``size()``: the size of the bytes there, None when there are none;
    - ``read(byte_range)``: the bytes, or the inclusive range ``(first, last)`` of them
      (BlobMissing when there are none);
    - ``url(content_type, content_disposition)``: when set, a GET is answered with a redirect
      to this URL, which serves the bytes with those headers for a while and then expires."""

    size: Callable[[], int | None]
    read: Callable[[tuple[int, int] | None], ByteStream]
    url: Callable[[str, str | None], str] | None = None


BlobBytes = LocalBytes | RemoteBytes


@dataclass
class StagedBlob:
    temp: Path
    sha256: str = ""
    blake2_256: str = ""
    md5: str = ""
    size: int = 0
    created: bool = False  # this staging created the final blob (it did not exist before)
    _fh: IO[bytes] | None = field(default=None, repr=False)


class BlobStore(Protocol):
    """What the services, the web and the CLI use of a blob store: the data directory's
    (FileBlobStore) or an S3 bucket's (store/s3blobs.py). Uploads are received into ``tmp``
    on this host's disk either way, hashed as they arrive."""

    tmp: Path

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None: ...

    def read(self, sha256: str) -> bytes: ...

    def chunks(self, sha256: str) -> Iterator[bytes]: ...

    def locate(self, sha256: str) -> BlobBytes:
        """Where a download reads the blob from, without any I/O (a missing blob is found
        when it is read)."""
        ...

    def iter_blobs(self) -> Iterator[BlobInfo]: ...

    def receive(self, chunks_source: IO[bytes], limit: int, chunk_size: int = 1 << 20) -> StagedBlob: ...

    def stage_bytes(self, data: bytes) -> StagedBlob: ...

    def place(self, staged: StagedBlob) -> None: ...

    def settle(self, staged: StagedBlob) -> None: ...

    def abandon(self, staged: StagedBlob, still_referenced: bool) -> None: ...

    def remove(self, sha256: str) -> None: ...

    def replace(self, staged: StagedBlob) -> None: ...

    def sweep_temporary(self, older_than: float = 3600.0, now: float | None = None) -> int: ...

    def check_reachable(self) -> None: ...


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def size(self, sha256: str) -> int | None:
        """The blob's size, or None when there is no blob under the hash."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The blob's bytes in pieces (BlobMissing when there is none)."""
        try:
            fh = self.path(sha256).open("rb")
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        with fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    def locate(self, sha256: str) -> LocalBytes:
        """The blob's file, for a download to send (it may be missing: the download finds out)."""
        return LocalBytes(self.path(sha256))

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every file under ``<root>/<aa>/<bb>/`` (not ``tmp``), in no particular order."""
        for first in _subdirectories(self.root):
            if first.name == self.tmp.name:
                continue
            for second in _subdirectories(first):
                for entry in os.scandir(second):
                    try:
                        if entry.is_file(follow_symlinks=False):
                            st = entry.stat(follow_symlinks=False)
                            yield BlobInfo(entry.name, st.st_size, st.st_mtime)
                    except FileNotFoundError:  # removed meanwhile (a purge, a repair)
                        continue

    # -- writing -------------------------------------------------------------------------
    def receive(self, chunks_source: IO[bytes], limit: int, chunk_size: int = 1 << 20) -> StagedBlob:
        """Copy a stream into a temporary file, hashing as it goes; refuse past ``limit``."""
        staged = StagedBlob(temp=self.tmp / f"{uuid.uuid4().hex}.part")
        sha, blake, md5 = hashlib.sha256(), hashlib.blake2b(digest_size=32), hashlib.md5()
        try:
            with staged.temp.open("wb") as out:
                while chunk := chunks_source.read(chunk_size):
                    staged.size += len(chunk)
                    if staged.size > limit:
                        raise BlobTooLarge(limit)
                    sha.update(chunk)
                    blake.update(chunk)
                    md5.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            staged.temp.unlink(missing_ok=True)
            raise
        staged.sha256, staged.blake2_256, staged.md5 = sha.hexdigest(), blake.hexdigest(), md5.hexdigest()
        return staged

    def stage_bytes(self, data: bytes) -> StagedBlob:
        staged = StagedBlob(temp=self.tmp / f"{uuid.uuid4().hex}.part")
        with staged.temp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        staged.sha256 = hashlib.sha256(data).hexdigest()
        staged.size = len(data)
        return staged

    def place(self, staged: StagedBlob) -> None:
        """Make the staged bytes visible under their hash (before the database commit)."""
        final = self.path(staged.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged.temp, final)
            staged.created = True
            fsync_dir(final.parent)
        except FileExistsError:
            # Already there: placed by someone else, or by an earlier attempt of this
            # staging (a retried transaction), which stays the one that created it.
            pass

    def settle(self, staged: StagedBlob) -> None:
        """After the commit: make sure the bytes are in place, then drop the temporary file."""
        final = self.path(staged.sha256)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(staged.temp, final)
                fsync_dir(final.parent)
            except FileExistsError:
                pass
        staged.temp.unlink(missing_ok=True)

    def abandon(self, staged: StagedBlob, still_referenced: bool) -> None:
        """After a failed commit: remove what this staging added, unless something uses it."""
        if staged.created and not still_referenced:
            self.path(staged.sha256).unlink(missing_ok=True)
        staged.temp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        """Purge only: the bytes of files deleted longer ago than the retention period."""
        self.path(sha256).unlink(missing_ok=True)

    def replace(self, staged: StagedBlob) -> None:
        """Repairs only (`moorage admin fsck --repair`): put bytes whose sha256 was checked
        under their hash, replacing a damaged blob there; the temporary file is used up."""
        final = self.path(staged.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.temp, final)
        fsync_dir(final.parent)

    def check_reachable(self) -> None:
        """Nothing beyond the local directory (/healthz writes into ``tmp`` itself)."""

    def sweep_temporary(self, older_than: float = 3600.0, now: float | None = None) -> int:
        """Remove temporary files left by a crash (at start-up): those last written more
        than ``older_than`` seconds before ``now`` (the caller's clock; the system's if not
        given). One that cannot be removed is logged and left."""
        removed = 0
        cutoff = (time.time() if now is None else now) - older_than
        for entry in self.tmp.iterdir():
            try:
                if entry.lstat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:  # e.g. a directory someone made there: not ours to remove
                _log.warning("could not remove the temporary file %s: %s", entry, exc.strerror or exc)
        return removed


def _subdirectories(path: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a file linked or renamed into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
