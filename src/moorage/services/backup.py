"""Backup and restore of the embedded default: the SQLite database, its blobs and its keys.

A backup is a directory::

    moorage.db        a consistent snapshot (SQLite online backup API), rollback-journal mode
    blobs/aa/bb/<sha256>   every blob the snapshot references (files and their metadata)
    log-signing-key   the transparency log's key, so the restored index signs the same log
    web-secret        the key of the pages' CSRF tokens
    manifest.json     written last, atomically: a backup without it did not finish

The server keeps serving and accepting uploads meanwhile. The snapshot is taken in one step
of the backup API, inside one read transaction, so it is the database as of one commit; WAL
writers are not blocked. Blobs are immutable and placed before the commit that references
them, so copying the referenced ones after the snapshot is safe; blobs of later uploads are
simply not needed. The one way bytes leave the store is `moorage admin purge` (deleted files
past retention), which records a `bytes-purged` event first: a referenced blob that is
missing is accepted only when the database says it was purged.

The layout's names, `snapshot`, `read_references`, `hash_file`, `fsync_dir` and `Silent` are
shared with `moorage db migrate-from-sqlite` (migrate.py) and `moorage admin fsck` (fsck.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from moorage import __version__
from moorage.config import Settings
from moorage.store.blobs import fsync_dir
from moorage.store.database import Database

FORMAT = "moorage-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_FILE = "moorage.db"
BLOB_DIR = "blobs"
LOG_KEY = "log-signing-key"
WEB_SECRET = "web-secret"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
# An upload's `settle` re-links its blob right after its commit if a concurrent failed
# upload of the same bytes removed it (store/blobs.py); a missing blob gets this long.
_SETTLE_WAIT = 5.0


class BackupRefused(Exception):
    """Not done, nothing changed: the command was used where it must not be (exit 2)."""


class BackupFailed(Exception):
    """The bytes do not add up: a damaged or incomplete backup or blob store (exit 1)."""


class Progress(Protocol):
    """What the command line shows while blobs are read (the services stay silent)."""

    def begin(self, description: str, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


class Silent:
    """Progress that shows nothing: the default of every service that reads blobs."""

    def begin(self, description: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


@dataclass
class References:
    """The blobs a database references, and what it says about each."""

    blobs: dict[str, list[str]] = field(default_factory=dict)  # sha256 -> filenames using it
    live: set[str] = field(default_factory=set)  # used by a file that is not deleted
    purged: set[str] = field(default_factory=set)  # used by a file whose bytes were purged
    files: int = 0
    deleted_files: int = 0
    revision: str | None = None
    log_size: int | None = None

    def may_be_missing(self, sha: str) -> bool:
        # Purge removes bytes only when no file still offered uses them.
        return sha in self.purged and sha not in self.live

    def first_file(self, sha: str) -> str:
        return sorted(self.blobs.get(sha, ["?"]))[0]


@dataclass(frozen=True)
class Summary:
    path: Path
    files: int
    deleted_files: int
    blobs: int
    purged_blobs: int  # referenced, but purged past retention: not in the backup
    total_bytes: int
    revision: str | None
    keys: tuple[str, ...]
    previous_revision: str | None = None  # restore: the backup's revision before migrating


# -- helpers --------------------------------------------------------------------------------
def sqlite_path(settings: Settings) -> Path:
    """The embedded database's file, or a refusal naming why there is none."""
    if settings.blobs.store != "file":
        raise BackupRefused(
            f"backup and restore-backup cover the embedded default (SQLite and the blob directory) only; the "
            f"blobs are in the S3 bucket {settings.blobs.bucket!r} ([blobs] store = \"{settings.blobs.store}\"): "
            "back the database up with its own tools and the bucket with the object store's (versioning, "
            "replication)")
    if not settings.is_embedded:
        backend = sa.engine.make_url(settings.db_url).get_backend_name()
        raise BackupRefused(
            f"backup and restore-backup cover the embedded default (SQLite and the blob directory) only; "
            f"the configured database_url is {backend}: back that database up with its own tools (such as "
            f"pg_dump) and copy {settings.blob_dir} after it")
    database = sa.engine.make_url(settings.db_url).database
    if not database or database == ":memory:":
        raise BackupRefused("the configured SQLite database is in memory: there is no file to back up")
    return Path(database).resolve()


def _blob_path(root: Path, sha: str) -> Path:
    return root / sha[:2] / sha[2:4] / sha  # the layout of store/blobs.py


def hash_file(path: Path, progress: Progress) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
            progress.advance(len(chunk))
    return sha.hexdigest(), size


def _copy_hashed(src: Path, dst: Path, progress: Progress, *, mode: int = 0o644) -> tuple[str, int]:
    """Copy while hashing what was read, fsync the copy; the caller compares the hash."""
    sha, size = hashlib.sha256(), 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                sha.update(chunk)
                size += len(chunk)
                fout.write(chunk)
                progress.advance(len(chunk))
            fout.flush()
            os.fsync(fout.fileno())
    return sha.hexdigest(), size


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the directory: the file is whole or absent."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def read_references(conn: sqlite3.Connection) -> References:
    """Every blob the database references, from the `files` table (deleted files included:
    their bytes are kept for retention and restore) and the `bytes-purged` events."""
    refs = References()
    if not _table_exists(conn, "files"):
        raise BackupFailed("the database has no files table: it is not a moorage database")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    deleted = "deleted_at" if "deleted_at" in columns else "NULL"  # before migration 0004
    purged_names: set[str] = set()
    if _table_exists(conn, "events"):
        for (payload,) in conn.execute("SELECT payload FROM events WHERE action = 'bytes-purged'"):
            files = json.loads(payload).get("files", []) if payload else []
            purged_names.update(f for f in files if isinstance(f, str))
    for filename, sha256, metadata_sha256, deleted_at in conn.execute(
            f"SELECT filename, sha256, metadata_sha256, {deleted} FROM files ORDER BY id"):
        refs.files += 1
        refs.deleted_files += deleted_at is not None
        for column, sha in (("sha256", sha256), ("metadata_sha256", metadata_sha256)):
            if sha is None:
                continue
            # The hashes become paths: never let a crafted database name one outside blobs/.
            if not isinstance(sha, str) or not _SHA256.match(sha):
                raise BackupFailed(f"file {filename}: its {column} {sha!r} is not a sha256 hex digest")
            refs.blobs.setdefault(sha, []).append(filename)
            if deleted_at is None:
                refs.live.add(sha)
            if filename in purged_names:
                refs.purged.add(sha)
    if _table_exists(conn, "alembic_version"):
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        refs.revision = row[0] if row else None
    if _table_exists(conn, "log_state"):
        row = conn.execute("SELECT size FROM log_state").fetchone()
        refs.log_size = int(row[0]) if row else 0
    return refs


@contextmanager
def _open_readonly(path: Path, *, immutable: bool = False) -> Iterator[sqlite3.Connection]:
    # mode=ro never creates the file; immutable=1 also leaves no -shm/-journal beside a
    # backup (which may sit on read-only media), and is right for a file nothing writes.
    query = "?mode=ro&immutable=1" if immutable else "?mode=ro"
    conn = sqlite3.connect(path.as_uri() + query, uri=True, timeout=60)
    try:
        yield conn
    finally:
        conn.close()


def snapshot(db_path: Path, target: Path) -> None:
    """The live database as of one commit, into ``target``, while writers go on."""
    # mode=rw: a missing database is an error, never silently created.
    src = sqlite3.connect(db_path.as_uri() + "?mode=rw", uri=True, timeout=60)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # tokens' and passwords' hashes
        os.close(fd)
        dst = sqlite3.connect(target)
        try:
            # pages=-1: one step, so one read transaction: a consistent snapshot. (In steps,
            # a write by another connection would restart the copy each time.)
            src.backup(dst, pages=-1)
            # One self-contained file: no -wal beside it, readable with mode=ro and immutable.
            dst.execute("PRAGMA journal_mode=DELETE")
            result = dst.execute("PRAGMA integrity_check").fetchall()
            if result != [("ok",)]:
                raise BackupFailed(f"the snapshot fails SQLite's integrity check: {result[0][0]}")
        finally:
            dst.close()
    finally:
        src.close()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_destination(dest: Path) -> bool:
    """Refuse a destination that exists and is not an empty directory; True if it exists."""
    if dest.exists() and not dest.is_dir():
        raise BackupRefused(f"{dest} exists and is not a directory: give a new or empty directory")
    if dest.exists():
        if any(dest.iterdir()):
            raise BackupRefused(f"{dest} is not empty: a backup goes into a new or empty directory")
        return True
    return False


def _empty(dest: Path, existed: bool) -> None:
    """After a failed backup: remove what it wrote (the destination was new or empty)."""
    if not dest.exists():
        return
    if existed:
        for entry in dest.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(dest, ignore_errors=True)


def _key_files(settings: Settings) -> dict[str, Path]:
    return {LOG_KEY: settings.log_key_file, WEB_SECRET: settings.data_dir / WEB_SECRET}


# -- backup ---------------------------------------------------------------------------------
def backup(settings: Settings, dest: Path, *, progress: Progress | None = None) -> Summary:
    """Back up the embedded database, the blobs it references and the keys into ``dest``."""
    progress = progress or Silent()
    db_path = sqlite_path(settings)
    if not db_path.exists():
        raise BackupRefused(f"there is no database at {db_path}: nothing to back up")
    dest = dest.absolute()
    existed = _check_destination(dest)
    try:
        return _backup(settings, db_path, dest, progress)
    except BaseException:
        _empty(dest, existed)
        raise


def _backup(settings: Settings, db_path: Path, dest: Path, progress: Progress) -> Summary:
    created = datetime.now(UTC)
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds the keys
    snapshot_file = dest / DB_FILE
    snapshot(db_path, snapshot_file)
    with _open_readonly(snapshot_file, immutable=True) as conn:
        refs = read_references(conn)
    db_sha, db_size = hash_file(snapshot_file, Silent())
    copied, purged, total = _copy_blobs(settings, db_path, refs, dest / BLOB_DIR, progress)
    keys: dict[str, dict[str, Any]] = {}
    for name, path in _key_files(settings).items():
        if path.is_file():
            digest, size = _copy_hashed(path, dest / name, Silent(), mode=0o600)
            keys[name] = {"sha256": digest, "size": size}
    fsync_dir(dest)

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "moorage_version": __version__,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "schema_revision": refs.revision,
        "database": {"file": DB_FILE, "sha256": db_sha, "size": db_size},
        "log_size": refs.log_size,
        "counts": {"files": refs.files, "deleted_files": refs.deleted_files, "blobs": copied,
                   "purged_blobs": purged},
        "total_bytes": total,
        "keys": keys,
    }
    _write_atomic(dest / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return Summary(dest, refs.files, refs.deleted_files, copied, purged, total, refs.revision, tuple(sorted(keys)))


def _copy_blobs(settings: Settings, db_path: Path, refs: References, out_root: Path,
                progress: Progress) -> tuple[int, int, int]:
    """Every blob the snapshot references, copied and checked against its sha256 (durable
    before the manifest is written): (copied, purged, total bytes)."""
    live_root = settings.blob_dir
    out_root.mkdir()
    sizes: dict[str, int] = {}
    for sha in refs.blobs:
        try:
            sizes[sha] = _blob_path(live_root, sha).stat().st_size
        except FileNotFoundError:
            sizes[sha] = 0
    progress.begin("copying blobs", sum(sizes.values()))
    problems: list[str] = []
    copied, purged, total = 0, 0, 0
    for sha in sorted(refs.blobs):
        src, dst = _blob_path(live_root, sha), _blob_path(out_root, sha)
        if not src.exists():
            if refs.may_be_missing(sha):
                purged += 1
                continue
            if _purged_now(db_path, sha) or not _wait_for(src, _SETTLE_WAIT):
                problems.append(_missing_live(settings, db_path, refs, sha))
                continue
        try:
            digest, size = _copy_hashed(src, dst, progress)
        except FileNotFoundError:  # removed between the look and the copy: a purge
            dst.unlink(missing_ok=True)
            problems.append(_missing_live(settings, db_path, refs, sha))
            continue
        if digest != sha:
            dst.unlink()
            problems.append(f"{refs.first_file(sha)}: the blob {sha} in {live_root} does not match its sha256 "
                            "(damaged on disk)")
            continue
        copied += 1
        total += size
    if problems:
        raise BackupFailed(f"{len(problems)} referenced blob(s) could not be backed up: " + "; ".join(problems))
    for directory in sorted({p.parent for p in out_root.rglob("*") if p.is_file()} | {out_root}, reverse=True):
        fsync_dir(directory)  # the blobs' directory entries are durable before the manifest
    return copied, purged, total


def _wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _purged_now(db_path: Path, sha: str) -> bool:
    """Whether the live database (newer than the snapshot) says the blob was purged."""
    try:
        with _open_readonly(db_path) as conn:
            return read_references(conn).may_be_missing(sha)
    except (sqlite3.Error, BackupFailed):
        return False


def _missing_live(settings: Settings, db_path: Path, refs: References, sha: str) -> str:
    """Why a blob the snapshot references is not in the live store."""
    if _purged_now(db_path, sha):
        return (f"{refs.first_file(sha)}: its bytes were purged (`moorage admin purge`) after the snapshot; "
                "run the backup again")
    return f"{refs.first_file(sha)}: the blob {sha} is missing from {settings.blob_dir}"


# -- restore --------------------------------------------------------------------------------
def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not src.is_dir():
        raise BackupRefused(f"{src} is not a directory")
    if not path.is_file():
        raise BackupFailed(f"{src} has no {MANIFEST}: it is not a moorage backup, or the backup did not finish")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupFailed(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupFailed(f"{path} is not the manifest of a moorage backup")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupFailed(f"{path} has format version {version!r}; this moorage ({__version__}) reads up to "
                           f"{FORMAT_VERSION}: restore with a newer moorage")
    return manifest


def restore(settings: Settings, src: Path, *, progress: Progress | None = None) -> Summary:
    """Verify a backup completely, then place it into the configured (empty) data directory
    and migrate its database. Nothing is written before every hash has been checked."""
    progress = progress or Silent()
    db_path = sqlite_path(settings)
    src = src.absolute()
    manifest = read_manifest(src)
    for existing in (db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-journal")):
        if existing.exists():
            raise BackupRefused(f"{existing} already exists: restore-backup never overwrites a database; "
                                "restore into an empty data directory")
    # -- verify: only reads --------------------------------------------------------------
    backup_db, db_sha, refs = _verify_database(src, manifest)
    keys = _verify_keys(settings, src, manifest)
    blobs = _verify_blobs(src / BLOB_DIR, settings.blob_dir, refs, progress)
    counts = manifest.get("counts") or {}
    found = (refs.files, len(blobs.present), blobs.total)
    if (counts.get("files"), counts.get("blobs"), manifest.get("total_bytes")) != found:
        raise BackupFailed(f"the backup holds {found[0]} files and {found[1]} blobs of {found[2]} bytes, the manifest "
                           f"says {counts.get('files')}, {counts.get('blobs')} and {manifest.get('total_bytes')}: "
                           "the backup is damaged")
    # -- place: blobs, keys, then the database last (its presence means "restored") ----------
    _place_blobs(settings.blob_dir, blobs, refs, progress)
    targets = _key_files(settings)
    for name, path in keys.items():
        target = targets[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            _copy_hashed(path, staged, Silent(), mode=0o600)
            os.link(staged, target)  # never replaces a key that appeared meanwhile
            fsync_dir(target.parent)
        finally:
            staged.unlink(missing_ok=True)
    revision = _place_database(backup_db, db_sha, db_path)
    return Summary(settings.data_dir, refs.files, refs.deleted_files, len(blobs.present), blobs.purged, blobs.total,
                   revision, tuple(sorted(manifest.get("keys") or {})), previous_revision=refs.revision)


def _verify_database(src: Path, manifest: dict[str, Any]) -> tuple[Path, str, References]:
    """The backup's database: its sha256 the manifest's, whole (SQLite's integrity check)."""
    backup_db = src / DB_FILE
    expected = manifest.get("database") or {}
    if not backup_db.is_file():
        raise BackupFailed(f"the backup has no {DB_FILE}")
    db_sha, _ = hash_file(backup_db, Silent())
    if db_sha != expected.get("sha256"):
        raise BackupFailed(f"{backup_db} does not match the sha256 in the manifest: the backup is damaged")
    with _open_readonly(backup_db, immutable=True) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            raise BackupFailed(f"{backup_db} fails SQLite's integrity check: {result[0][0]}")
        refs = read_references(conn)
    return backup_db, db_sha, refs


def _verify_keys(settings: Settings, src: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """The backup's keys that are to be placed (a key already there must be the same one)."""
    keys: dict[str, Path] = {}
    targets = _key_files(settings)
    for name, info in (manifest.get("keys") or {}).items():
        if name not in targets:
            raise BackupFailed(f"the manifest names an unknown key file {name!r}")
        path = src / name
        if not path.is_file() or hash_file(path, Silent())[0] != info.get("sha256"):
            raise BackupFailed(f"the backup's {name} is missing or does not match the manifest")
        target = targets[name]
        if target.exists():
            if hash_file(target, Silent())[0] != info.get("sha256"):
                raise BackupRefused(f"{target} already exists and holds another key: restore-backup never "
                                    "overwrites it; restore into an empty data directory")
            continue
        keys[name] = path
    return keys


@dataclass
class _BackupBlobs:
    present: dict[str, Path]  # sha256 -> the blob in the backup
    todo: list[str] = field(default_factory=list)  # not yet in the blob store
    purged: int = 0
    total: int = 0


def _verify_blobs(in_root: Path, out_root: Path, refs: References, progress: Progress) -> _BackupBlobs:
    """Every blob the backup's database references is in the backup with its sha256 (or was
    purged); one already in the store (an interrupted restore) must be the same bytes."""
    blobs = _BackupBlobs({sha: _blob_path(in_root, sha) for sha in refs.blobs if _blob_path(in_root, sha).is_file()})
    progress.begin("verifying blobs", sum(p.stat().st_size for p in blobs.present.values()))
    for sha in sorted(refs.blobs):
        if sha not in blobs.present:
            if refs.may_be_missing(sha):
                blobs.purged += 1
                continue
            raise BackupFailed(f"{refs.first_file(sha)}: its blob {sha} is missing from the backup")
        digest, size = hash_file(blobs.present[sha], progress)
        if digest != sha:
            raise BackupFailed(f"{refs.first_file(sha)}: its blob {sha} in the backup does not match its sha256 "
                               "(the backup is damaged or was altered); nothing was restored")
        blobs.total += size
        target = _blob_path(out_root, sha)
        if target.exists():
            # Left by an earlier, interrupted restore: keep it only if it is right.
            if hash_file(target, Silent())[0] != sha:
                raise BackupRefused(f"{target} already exists with other bytes: restore-backup never overwrites "
                                    "it; restore into an empty data directory")
            continue
        blobs.todo.append(sha)
    return blobs


def _place_blobs(out_root: Path, blobs: _BackupBlobs, refs: References, progress: Progress) -> None:
    tmp = out_root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    progress.begin("restoring blobs", sum(blobs.present[sha].stat().st_size for sha in blobs.todo))
    for sha in blobs.todo:
        staged = tmp / f"restore-{uuid.uuid4().hex}.part"
        try:
            digest, _ = _copy_hashed(blobs.present[sha], staged, progress)
            if digest != sha:  # changed since it was verified
                raise BackupFailed(f"{refs.first_file(sha)}: its blob {sha} changed while it was restored")
            final = _blob_path(out_root, sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.link(staged, final)
            fsync_dir(final.parent)
        finally:
            staged.unlink(missing_ok=True)


def _place_database(backup_db: Path, db_sha: str, db_path: Path) -> str | None:
    """The backup's database, migrated to the current schema, linked into place last; its revision."""
    staged_db = db_path.with_name(f".{db_path.name}.{uuid.uuid4().hex}.restoring")
    try:
        if _copy_hashed(backup_db, staged_db, Silent(), mode=0o600)[0] != db_sha:
            raise BackupFailed(f"{backup_db} changed while it was restored")
        # Bring an older schema up to date before the database takes its place.
        database = Database(f"sqlite:///{staged_db}")
        try:
            database.upgrade()
            revision = database.current_revision()
        finally:
            database.dispose()
        conn = sqlite3.connect(staged_db)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")  # folds the WAL in; the server turns WAL on again
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            staged_db.with_name(staged_db.name + suffix).unlink(missing_ok=True)
        fd = os.open(staged_db, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(staged_db, db_path)  # never replaces a database that appeared meanwhile
        fsync_dir(db_path.parent)
    except FileExistsError:
        raise BackupRefused(f"{db_path} appeared while the backup was restored; it was left alone") from None
    finally:
        for leftover in (staged_db, staged_db.with_name(staged_db.name + "-wal"),
                         staged_db.with_name(staged_db.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return revision
