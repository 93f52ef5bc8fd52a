"""`moorage db migrate-from-sqlite SRC`: move an embedded index up to PostgreSQL.

SRC is the data directory of an embedded index (``moorage.db``, ``blobs/``, ``log-signing-key``,
``web-secret``), or a directory made by `moorage backup`, which has the same layout. The target
is the configured ``database_url`` (PostgreSQL, migrated to head and empty) and the configured
blob store (the data directory's or an S3 bucket).

SRC is never written to:

1. A snapshot of SRC's database is taken with SQLite's online backup API into a temporary
   file and migrated to the current schema there; everything is read from that copy.
2. Every blob the snapshot references (``files.sha256``, ``files.metadata_sha256``, deleted
   files included) is streamed from ``SRC/blobs`` into the target store through the store's
   own ``receive`` (hashing as it reads) and ``place``. A blob whose bytes do not match its
   name, or a missing blob whose bytes were not purged past retention (``bytes-purged``),
   stops the migration, naming the file.
3. The keys are placed (never replacing a different key: a second key would fork the log).
4. Every table is copied in one PostgreSQL transaction, primary keys kept (event serials,
   log indexes, ids), and the sequences are moved past the copied ids. Before the commit the
   copy is checked: the rows of every table, the log's leaves, size and root, and every stored
   checkpoint against the tree (and the key). The commit comes after the blobs are in place,
   so a committed row never lacks its bytes; a failure commits nothing and removes the blobs
   and keys this migration added.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError, StatementError

from moorage.config import Settings
from moorage.log.keys import decode_signer
from moorage.log.note import NoteError, Verifier
from moorage.services.backup import (
    BLOB_DIR,
    DB_FILE,
    LOG_KEY,
    WEB_SECRET,
    BackupFailed,
    Progress,
    References,
    Silent,
    fsync_dir,
    hash_file,
    read_references,
    snapshot,
)
from moorage.services.context import open_blob_store
from moorage.services.events import lock_event_log
from moorage.services.log import check_log, current
from moorage.store.blobs import BlobStore, FileBlobStore, StagedBlob
from moorage.store.database import Database
from moorage.store.tables import checkpoints, events, log_state, metadata

_BATCH = 1000
# The only row `moorage db upgrade` writes: the empty log's state (migration 0007).
_EMPTY_LOG_STATE = (1, 0)


class MigrationRefused(Exception):
    """Not done, nothing changed: the source or the target is not what a migration needs (exit 2)."""


class MigrationFailed(Exception):
    """The bytes or the rows do not add up, or a write failed; nothing was committed (exit 1)."""


@dataclass
class Summary:
    tables: list[tuple[str, int]] = field(default_factory=list)  # (table, rows), in copy order
    blobs: int = 0  # verified and placed in the target store (or found there with the right bytes)
    blobs_present: int = 0  # of those, already in the target store
    purged_blobs: int = 0  # referenced, purged past retention in SRC: nothing to copy
    total_bytes: int = 0
    files: int = 0
    deleted_files: int = 0
    log_size: int = 0
    log_root: str = ""
    checkpoints: int = 0
    source_revision: str | None = None  # SRC's schema revision before its copy was migrated
    revision: str | None = None
    keys_copied: tuple[str, ...] = ()
    keys_present: tuple[str, ...] = ()
    new_log_key: bool = False  # SRC had no log key and no signed checkpoint: a new key will be made
    target: str = ""


# -- checks before anything is written ---------------------------------------------------------
def _target_url(settings: Settings) -> str:
    url = sa.engine.make_url(settings.db_url)
    if url.get_backend_name() != "postgresql":
        raise MigrationRefused(
            f"the configured database_url is {url.get_backend_name()}; migrate-from-sqlite moves an embedded index "
            "into PostgreSQL: set database_url (or MOORAGE_DATABASE_URL) to the PostgreSQL database, run "
            "`moorage db upgrade`, then migrate")
    return settings.db_url


def _source_database(src: Path) -> Path:
    if not src.is_dir():
        raise MigrationRefused(f"{src} is not a directory: give the data directory of the embedded index")
    db_path = src / DB_FILE
    if not db_path.is_file():
        raise MigrationRefused(f"{src} has no {DB_FILE}: it is not the data directory of an embedded index")
    return db_path.resolve()


def _counts(conn: Connection) -> dict[str, int]:
    return {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables}


def _not_empty(conn: Connection) -> list[str]:
    """The tables of the target that hold rows (the empty log's state row does not count)."""
    found = []
    for name, rows in _counts(conn).items():
        if name == log_state.name and rows == 1:
            row = conn.execute(sa.select(log_state.c.id, log_state.c.size)).one()
            if tuple(row) == _EMPTY_LOG_STATE:
                continue
        if rows:
            found.append(f"{name} ({rows} rows)")
    return found


def _check_target(db: Database) -> None:
    try:
        if not db.is_current():
            revision = db.current_revision()
            raise MigrationRefused(
                f"the target database is at revision {revision or 'none (empty)'}, not {db.head_revision()}: run "
                "`moorage db upgrade` with the same configuration first")
        with db.read() as conn:
            found = _not_empty(conn)
    except SQLAlchemyError as exc:
        raise MigrationFailed(f"the target database: {_db_error(exc)}") from None
    if found:
        raise MigrationRefused(
            "the target database is not empty (" + ", ".join(found) + "): a migration never merges into an "
            "existing index; give it a new database (create it, `moorage db upgrade`, then migrate)")


def _same_text(a: Path, b: Path) -> bool:
    return a.read_text(encoding="utf-8").strip() == b.read_text(encoding="utf-8").strip()


@dataclass
class _Key:
    name: str
    source: Path
    target: Path


def _plan_keys(settings: Settings, src: Path, log_key: Path | None) -> tuple[list[_Key], list[str], Verifier | None]:
    """Which key files to copy, which are there already; the log's verifier (None: no key)."""
    wanted = [_Key(LOG_KEY, log_key or src / LOG_KEY, settings.log_key_file),
              _Key(WEB_SECRET, src / WEB_SECRET, settings.data_dir / WEB_SECRET)]
    if log_key is not None and not log_key.is_file():
        raise MigrationRefused(f"{log_key} (--log-key) is not a file")
    todo, present = [], []
    verifier = None
    for key in wanted:
        if not key.source.is_file():
            continue
        if key.name == LOG_KEY:
            try:
                verifier = decode_signer(key.source.read_text(encoding="utf-8")).verifier
            except (NoteError, UnicodeDecodeError) as exc:
                raise MigrationRefused(f"{key.source} is not a log signing key: {exc}") from None
        if key.target.exists():
            if key.target.resolve() == key.source.resolve() or _same_text(key.source, key.target):
                present.append(key.name)
                continue
            why = ("another log key would fork the log" if key.name == LOG_KEY
                   else "another one would void the forms open in browsers")
            raise MigrationRefused(
                f"{key.target} already exists and holds another key than {key.source}: the migrated index keeps "
                f"SRC's keys ({why}) and the migration never overwrites a key. Remove {key.target} if nothing ever "
                "used it, or migrate into another data directory")
        todo.append(key)
    return todo, present, verifier


# -- blobs ---------------------------------------------------------------------------------------
class _Reading:
    """A file read by the store's ``receive``, reporting progress as it goes."""

    def __init__(self, fh: IO[bytes], progress: Progress) -> None:
        self.fh, self.progress = fh, progress

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.progress.advance(len(data))
        return data


@dataclass
class _Blobs:
    store: BlobStore
    staged: list[StagedBlob] = field(default_factory=list)  # settled after the commit, abandoned on failure
    placed: list[StagedBlob] = field(default_factory=list)  # settled early (S3), abandoned on failure

    def abandon(self) -> None:
        for staged in self.staged + self.placed:
            with suppress(OSError):
                self.store.abandon(staged, still_referenced=False)  # nothing committed refers to them

    def settle(self) -> None:
        for staged in self.staged:
            self.store.settle(staged)


def _copy_blobs(store: BlobStore, src_blobs: Path, refs: References, summary: Summary, progress: Progress,
                blobs: _Blobs) -> None:
    def path(sha: str) -> Path:
        return src_blobs / sha[:2] / sha[2:4] / sha

    sizes = {sha: path(sha).stat().st_size for sha in refs.blobs if path(sha).is_file()}
    progress.begin("copying blobs", sum(sizes.values()))
    # The file store's staged copy is a hard link of the blob (no space), kept until the commit as
    # its uploads do. An S3 store never deletes on abandon, so its temporary copy protects nothing
    # and is dropped at once: the host's disk need not hold every blob.
    keep_staged = isinstance(store, FileBlobStore)
    for sha in sorted(refs.blobs):
        filename = refs.first_file(sha)
        if sha not in sizes:
            if refs.may_be_missing(sha):
                summary.purged_blobs += 1
                continue
            raise MigrationFailed(f"{filename}: its blob {sha} is missing from {src_blobs} (and was not purged past "
                                  "retention); nothing was committed")
        if isinstance(store, FileBlobStore) and store.path(sha).exists():
            # Already in the target directory (SRC's own blobs when migrating in place, or an
            # earlier run): check the bytes of both, copy nothing.
            digest, size = hash_file(path(sha), progress)
            if digest != sha:
                raise _mismatch(filename, sha, src_blobs)
            if store.path(sha).resolve() != path(sha).resolve() and hash_file(store.path(sha), Silent())[0] != sha:
                raise MigrationFailed(f"{filename}: {store.path(sha)} already exists in the target blob directory "
                                      "with other bytes than its name says; the migration never overwrites it: "
                                      "remove it, then run the migration again")
            summary.blobs += 1
            summary.blobs_present += 1
            summary.total_bytes += size
            continue
        try:
            with path(sha).open("rb") as fh:
                staged = store.receive(_Reading(fh, progress), limit=1 << 62)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise MigrationFailed(f"{filename}: its blob {sha} disappeared from {src_blobs} while it was read "
                                  "(is a server still running on SRC?); nothing was committed") from None
        if staged.sha256 != sha:
            store.abandon(staged, still_referenced=False)
            raise _mismatch(filename, sha, src_blobs)
        (blobs.staged if keep_staged else blobs.placed).append(staged)
        store.place(staged)
        if not keep_staged:
            store.settle(staged)
        summary.blobs += 1
        summary.blobs_present += not staged.created
        summary.total_bytes += staged.size


def _mismatch(filename: str, sha: str, src_blobs: Path) -> MigrationFailed:
    return MigrationFailed(f"{filename}: its blob {sha} in {src_blobs} does not match its sha256 (damaged or altered); "
                           "nothing was committed")


def _place_keys(keys: list[_Key]) -> list[Path]:
    """Copy the keys (mode 0600) beside the target; never replace one that appeared meanwhile."""
    created: list[Path] = []
    try:
        for key in keys:
            key.target.parent.mkdir(parents=True, exist_ok=True)
            staged = key.target.with_name(f".{key.target.name}.{uuid.uuid4().hex}.tmp")
            try:
                fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(key.source.read_bytes())
                    out.flush()
                    os.fsync(out.fileno())
                os.link(staged, key.target)
                created.append(key.target)
                fsync_dir(key.target.parent)
            except FileExistsError:
                if not _same_text(key.source, key.target):
                    raise MigrationRefused(f"{key.target} appeared during the migration with another key") from None
            finally:
                staged.unlink(missing_ok=True)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return created


# -- rows ------------------------------------------------------------------------------------------
def _db_error(exc: SQLAlchemyError) -> str:
    """The database's own message, without the statement and its parameters (hashes of
    passwords and tokens are among them)."""
    orig = exc.orig if isinstance(exc, StatementError) else None
    text = f"{type(orig).__name__}: {orig}".strip() if orig is not None else f"{type(exc).__name__}: {exc}"
    return " ".join(line.strip() for line in text.splitlines()[:3])


def _lock(conn: Connection) -> None:
    """Nothing else writes the target while it is filled (a server started on it, a second
    migration): its writers wait, or this waits for them and then finds rows."""
    conn.execute(sa.text("SET LOCAL lock_timeout = '60s'"))
    names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in metadata.sorted_tables)
    conn.execute(sa.text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
    lock_event_log(conn)


def _copy_rows(source: Connection, target: Connection, summary: Summary) -> dict[str, int]:
    """Every table, parents first, in batches, keys as they are; returns the rows per table."""
    copied: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if table is log_state:
            target.execute(log_state.delete())  # the empty log's state: replaced by SRC's
        order = list(table.primary_key.columns) or list(table.columns)
        result = source.execute(sa.select(table).order_by(*order)).yield_per(_BATCH)
        rows = 0
        try:
            for part in result.partitions():
                batch = [dict(row._mapping) for row in part]
                target.execute(table.insert(), batch)
                rows += len(batch)
        except SQLAlchemyError as exc:
            raise MigrationFailed(f"copying the table {table.name} failed near row {rows + 1}: {_db_error(exc)}; "
                                  "nothing was committed") from None
        copied[table.name] = rows
        summary.tables.append((table.name, rows))
    return copied


def _reset_sequences(conn: Connection) -> None:
    """Move every serial's sequence past the copied ids, so new rows do not collide."""
    quote = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        for column in table.columns:
            sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": quote.format_table(table), "c": column.name}).scalar()
            if sequence is None:
                continue
            top = conn.execute(sa.select(sa.func.max(column))).scalar()
            # is_called = false: the next value handed out is exactly this one.
            conn.execute(sa.text("SELECT setval(:s, :v, false)"), {"s": sequence, "v": int(top or 0) + 1})


def _check_log(source: Connection, target: Connection, verifier: Verifier | None, summary: Summary) -> None:
    """The target's log is SRC's: every leaf hashes its entry, the indexes run 0..n-1, the size
    and root equal SRC's state, and every stored checkpoint is a head of this tree (signed by
    the key the migrated index will use): services/log.py's check, as `moorage admin fsck` runs it."""
    want = current(source)
    found = check_log(target, verifier, against_events=False, limit=1)
    if found.problems:
        hint = ("; give the key that signed SRC's log with --log-key" if "does not verify" in found.problems[0]
                else "")
        raise MigrationFailed(f"the copied log does not add up: {found.problems[0]}{hint}; nothing was committed")
    if (found.size, found.root) != (want.size, want.root()):
        raise MigrationFailed(
            f"the copied log does not add up: SRC's log has {want.size} entries with root {want.root().hex()}, the "
            f"copy's leaves give {found.size} with root {found.root.hex()}; nothing was committed")
    summary.log_size, summary.log_root, summary.checkpoints = want.size, want.root().hex(), found.checkpoints


def _last_serial(db_path: Path) -> int | None:
    """SRC's newest event now (not in the snapshot): a server still running on SRC shows here."""
    # mode=rw, as for the snapshot, though it only reads: the last connection to close removes
    # the -wal and -shm files it made, so SRC is left as it was (a read-only one leaves them).
    conn = sqlite3.connect(db_path.as_uri() + "?mode=rw", uri=True, timeout=60)
    try:
        row = conn.execute("SELECT max(serial) FROM events").fetchone()
        return int(row[0]) if row and row[0] is not None else None
    finally:
        conn.close()


@contextmanager
def _snapshot_of(db_path: Path) -> Iterator[Path]:
    """SRC's database as of one commit, in a private temporary directory (TMPDIR)."""
    with tempfile.TemporaryDirectory(prefix="moorage-migrate-") as tmp:
        os.chmod(tmp, 0o700)  # password and token hashes
        copy = Path(tmp) / DB_FILE
        try:
            snapshot(db_path, copy)
        except BackupFailed as exc:
            raise MigrationFailed(f"{db_path}: {exc}") from None
        except sqlite3.Error as exc:
            raise MigrationFailed(f"{db_path} could not be read: {exc}") from None
        yield copy


# -- the migration -------------------------------------------------------------------------------
def migrate_from_sqlite(settings: Settings, src: Path, *, log_key: Path | None = None,
                        progress: Progress | None = None) -> Summary:
    """Copy the embedded index in ``src`` (database, blobs, keys) into the configured
    PostgreSQL database and blob store. All or nothing; ``src`` is only read."""
    progress = progress or Silent()
    target_url = _target_url(settings)
    src = src.absolute()
    src_db = _source_database(src)
    summary = Summary(target=sa.engine.make_url(target_url).render_as_string(hide_password=True))
    keys, present, verifier = _plan_keys(settings, src, log_key)
    summary.keys_copied, summary.keys_present = tuple(k.name for k in keys), tuple(present)

    target = Database(target_url)
    try:
        _check_target(target)
        summary.revision = target.head_revision()
        with _snapshot_of(src_db) as copy:
            source = Database(f"sqlite:///{copy}")
            try:
                try:
                    summary.source_revision = source.current_revision()
                    source.upgrade()  # the copy, never SRC
                except CommandError as exc:  # e.g. a revision of a newer moorage
                    raise MigrationRefused(f"{src_db} (schema revision {summary.source_revision}) cannot be brought "
                                           f"to this moorage's schema ({summary.revision}): {exc}") from None
                except SQLAlchemyError as exc:
                    raise MigrationFailed(f"{src_db} could not be brought to the current schema: "
                                          f"{_db_error(exc)}") from None
                with source.read() as src_conn:
                    snapshot_serial = src_conn.execute(sa.select(sa.func.max(events.c.serial))).scalar()
                    has_checkpoints = src_conn.execute(sa.select(checkpoints.c.size).limit(1)).first() is not None
                conn = sqlite3.connect(copy)
                try:
                    refs = read_references(conn)
                except BackupFailed as exc:
                    raise MigrationFailed(f"{src_db}: {exc}") from None
                finally:
                    conn.close()
                summary.files, summary.deleted_files = refs.files, refs.deleted_files
                if verifier is None and LOG_KEY not in summary.keys_present and has_checkpoints:
                    raise MigrationRefused(
                        f"{src} has no {LOG_KEY}, but its log has signed checkpoints: give the key that signed them "
                        "with --log-key FILE (the file named by [log] signing_key_file), or the migrated index "
                        "would sign its log with another key")
                summary.new_log_key = verifier is None and LOG_KEY not in summary.keys_present
                _migrate(settings, target, source, src, src_db, snapshot_serial, refs, keys, verifier, summary,
                         progress)
            finally:
                source.dispose()
    finally:
        target.dispose()
    return summary


def _migrate(settings: Settings, target: Database, source: Database, src: Path, src_db: Path,
             snapshot_serial: int | None, refs: References, keys: list[_Key], verifier: Verifier | None,
             summary: Summary, progress: Progress) -> None:
    blobs = _Blobs(open_blob_store(settings))
    created_keys: list[Path] = []
    committed = False
    try:
        _copy_blobs(blobs.store, src / BLOB_DIR, refs, summary, progress, blobs)
        created_keys = _place_keys(keys)
        try:
            with target.write() as conn, source.read() as src_conn:
                _lock(conn)
                found = _not_empty(conn)
                if found:
                    raise MigrationRefused("the target database is no longer empty (" + ", ".join(found) + "): "
                                           "something wrote to it during the migration; nothing was committed")
                copied = _copy_rows(src_conn, conn, summary)
                _reset_sequences(conn)
                counted = _counts(conn)
                expected = _counts(src_conn)
                if counted != expected or copied != expected:
                    differ = [f"{name}: {expected[name]} in SRC, {counted.get(name)} copied"
                              for name in expected if counted.get(name) != expected[name]]
                    raise MigrationFailed("the copy does not have SRC's rows (" + "; ".join(differ) + "); nothing "
                                          "was committed")
                _check_log(src_conn, conn, verifier, summary)
                missing = [sha for sha in refs.blobs if not refs.may_be_missing(sha) and not blobs.store.exists(sha)]
                if missing:
                    raise MigrationFailed(f"{refs.first_file(missing[0])}: its blob {missing[0]} is not in the "
                                          "target store after it was placed; nothing was committed")
                if _last_serial(src_db) != snapshot_serial:
                    raise MigrationFailed(f"{src_db} changed during the migration (is a server still running on "
                                          "it?): stop it and run the migration again; nothing was committed")
        except SQLAlchemyError as exc:
            raise MigrationFailed(f"the target database: {_db_error(exc)}; nothing was committed") from None
        committed = True
    finally:
        if not committed:
            blobs.abandon()
            for path in created_keys:
                path.unlink(missing_ok=True)
    blobs.settle()
