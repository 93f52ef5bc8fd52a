"""Before a command or the server starts: is the data directory there, can the database be
opened, can the blob directory be written? Each problem is one sentence naming the path, what
is wrong and what to do (docs/operations.md, "When something is wrong"), never a traceback.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from moorage.store.database import Database

SQLITE_MAGIC = b"SQLite format 3\0"
RESTORE = ("keep it for inspection (move it aside) and restore the last backup into the data directory with "
           "`moorage restore-backup BACKUP` (docs/operations.md)")


class Unusable(Exception):
    """The data directory, the database or the blob store cannot be used; the message says
    which path, what is wrong and what to do."""


def require_data_dir(data_dir: Path) -> None:
    """Commands other than `serve` (and the setup commands) work on an index that exists."""
    if data_dir.is_dir():
        return
    what = "is not a directory" if data_dir.exists() else "does not exist"
    raise Unusable(f"the data directory {data_dir.resolve()} {what}; give the index's data directory with "
                   "--data-dir DIR or MOORAGE_DATA_DIR (or data_dir in the configuration file), or start a new "
                   "index there with `moorage serve`")


def _write_probe(directory: Path) -> None:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".moorage-write-check-")
    try:
        os.write(fd, b"moorage")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_writable(data_dir: Path, blob_dir: Path | None, *, embedded: bool) -> None:
    """`moorage serve` writes: the embedded database's files in the data directory, uploads in
    the blob directory (None: the blobs are in a bucket)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Unusable(f"cannot create the data directory {data_dir.resolve()} ({_why(exc)}); create it, or give "
                       "the user moorage runs as write access to its parent") from None
    if embedded:
        try:
            _write_probe(data_dir)
        except OSError as exc:
            raise Unusable(f"the data directory {data_dir.resolve()} is not writable ({_why(exc)}): the embedded "
                           "database writes moorage.db and its -wal and -shm files there; give the user moorage "
                           "runs as write access to it (and mount it read-write)") from None
    if blob_dir is not None:
        try:
            (blob_dir / "tmp").mkdir(parents=True, exist_ok=True)
            _write_probe(blob_dir / "tmp")
        except OSError as exc:
            raise Unusable(f"the blob directory {blob_dir.resolve()} is not writable ({_why(exc)}): uploads are "
                           "written there; give the user moorage runs as write access to it and everything in it"
                           ) from None


def sqlite_path(db: Database) -> Path | None:
    if db.dialect != "sqlite":
        return None
    name = sa.engine.make_url(db.url).database
    return Path(name) if name and name != ":memory:" else None


def sqlite_file_problem(path: Path) -> str | None:
    """What is wrong with an SQLite file before SQLite reads it: not a database at all, or
    shorter than its header says (cut short). None when it looks whole, or is new."""
    try:
        size = path.stat().st_size
        if size == 0:
            return None  # SQLite makes a new database of an empty file
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError:
        return None  # missing (a new index) or unreadable: SQLite's own error says which
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "file is not a database: its header is not SQLite's"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counted = header[24:28] == header[92:96]  # the header's page count is valid (SQLite 3.7.0+)
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0  # a checkpoint may be under way: the WAL completes it
    if counted and pages and not pending and size < pages * page_size:
        return (f"it was cut short: {size} bytes, where its header counts {pages} pages of {page_size} bytes "
                f"({pages * page_size} bytes)")
    return None


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc.orig or exc).__name__


def explain_database_error(exc: BaseException, db_url: str) -> str | None:
    """One sentence for a database that cannot be used (None: not that kind of error)."""
    if isinstance(exc, sqlite3.Error):
        message = str(exc)
    elif isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError | ProgrammingError):
        message = _first_line(exc)
    else:
        return None
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return _explain_sqlite(Path(url.database or "moorage.db"), message)
    if url.password:
        message = message.replace(str(url.password), "***")
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    if any(word in message.lower() for word in ("connect", "resolve", "timeout", "timed out", "server closed")):
        # psycopg: 'connection failed: connection to server at "h", port p failed: Connection refused'
        reason = re.sub(r'^(connection failed: )?(connection to server at "[^"]*"(, port \d+)? failed: )?', "",
                        message).strip() or message
        return (f"cannot connect to the PostgreSQL database {url.database or ''!s} at {where} as "
                f"{url.username or 'the default user'} ({reason}); check that PostgreSQL runs there and accepts "
                "connections, and that database_url (or MOORAGE_DATABASE_URL) names it")
    return (f"the PostgreSQL database {url.database or ''!s} at {where} cannot be used ({message}); check the "
            "server's log, and that `moorage db upgrade` was run")


def _explain_sqlite(path: Path, message: str) -> str:
    lowered = message.lower()
    directory = path.parent
    if "malformed" in lowered or "not a database" in lowered or "cut short" in lowered:
        return f"the database {path} is damaged ({message}); {RESTORE}"
    if "disk is full" in lowered:
        return f"the disk that holds the database {path} is full ({message}); make room, then start again"
    if "locked" in lowered or "busy" in lowered:
        return (f"the database {path} is locked by another process ({message}); wait for it, or stop the process "
                "that holds it")
    if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered or "i/o error" in lowered:
        if not directory.is_dir():
            return (f"cannot open the database {path} ({message}): the data directory {directory} does not exist; "
                    "give it with --data-dir DIR or MOORAGE_DATA_DIR")
        if not os.access(directory, os.W_OK | os.X_OK):
            return (f"cannot open the database {path} ({message}): the data directory {directory} is read-only for "
                    "this user; SQLite writes moorage.db and its -wal and -shm files there: give the user moorage "
                    "runs as write access to it (and mount it read-write)")
        unwritable = [p for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                      if p.exists() and not os.access(p, os.R_OK | os.W_OK)]
        if unwritable:
            return (f"cannot open the database {path} ({message}): {', '.join(str(p) for p in unwritable)} "
                    "cannot be read and written by this user; give the user moorage runs read and write access "
                    "to them")
        return (f"cannot open the database {path} ({message}); check that the user moorage runs as may read and "
                f"write it and the directory {directory}")
    return f"the database {path} cannot be used ({message}); if it is damaged, {RESTORE}"


def check_database(db: Database) -> None:
    """Open the database and read its schema; a damaged, unreadable or unreachable one raises
    Unusable with its one sentence."""
    path = sqlite_path(db)
    if path is not None:
        problem = sqlite_file_problem(path)
        if problem is not None:
            raise Unusable(_explain_sqlite(path, problem))
    try:
        with db.read() as conn:
            if path is not None:
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
            else:
                conn.exec_driver_sql("SELECT 1").scalar()
    except (DBAPIError, sqlite3.Error) as exc:
        explained = explain_database_error(exc, db.url)
        if explained is None:
            raise
        raise Unusable(explained) from None
