"""The database and its copies: `moorage db upgrade | migrate-from-sqlite`, `moorage backup` and
`moorage restore-backup` (of the embedded default)."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.cli.common import BytesProgress, err, settings, subcommand
from moorage.services import bootstrap

if TYPE_CHECKING:
    from moorage.services.migrate import Summary

S = TypeVar("S")


def register(sub: Any) -> None:
    """`moorage db ...`, `backup` and `restore-backup`, in the help's order."""
    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    subcommand(db, "upgrade", "apply the database migrations", cmd_db_upgrade)
    mig = subcommand(db, "migrate-from-sqlite", "copy an embedded index (database, blobs, keys) into the configured "
                     "PostgreSQL database and blob store, verified", cmd_db_migrate_from_sqlite)
    mig.add_argument("src", metavar="SRC", help="the data directory of the embedded index (or a `moorage backup`)")
    mig.add_argument("--log-key", help="SRC's log signing key, if it was not SRC/log-signing-key")
    bak = subcommand(sub, "backup", "back up the embedded database, its blobs and keys, while serving", cmd_backup)
    bak.add_argument("dest", metavar="DEST", help="a new or empty directory")
    rbak = subcommand(sub, "restore-backup", "verify a backup, then restore it into an empty data directory",
                      cmd_restore_backup)
    rbak.add_argument("src", metavar="SRC", help="the backup directory (with its manifest.json)")


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    before, after = bootstrap.upgrade_database(settings(args))
    err.print(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    return _backup_command(args, "backup")


def cmd_restore_backup(args: argparse.Namespace) -> int:
    return _backup_command(args, "restore-backup")


def _backup_command(args: argparse.Namespace, verb: str) -> int:
    from moorage.services import backup

    chosen = settings(args)
    copy = (partial(backup.backup, chosen, Path(args.dest)) if verb == "backup"
            else partial(backup.restore, chosen, Path(args.src)))
    summary, status = _copy(verb, copy, backup.BackupRefused, backup.BackupFailed)
    if summary is None:
        return status
    files = f"{summary.files} files ({summary.deleted_files} deleted)"
    blobs = f"{summary.blobs} blobs, {summary.total_bytes} bytes"
    purged = f"; {summary.purged_blobs} purged past retention, not kept" if summary.purged_blobs else ""
    keys = ", ".join(summary.keys) or "no keys"
    if verb == "backup":
        err.print(f"backed up {files}, {blobs}{purged}, {keys} and the database (revision {summary.revision}) "
                  f"to {summary.path}")
    else:
        before = summary.previous_revision
        migrated = "" if before == summary.revision else f", migrated from {before}"
        err.print(f"restored {files}, {blobs}{purged}, {keys} and the database (revision {summary.revision}"
                  f"{migrated}) into {summary.path}")
        if "log-signing-key" not in summary.keys:
            err.print("moorage: the backup has no log signing key: the index will sign its log with a new key")
    return 0


def _copy(verb: str, copy: Callable[..., S], refused: type[Exception],
          failed: type[Exception]) -> tuple[S | None, int]:
    """Run a copy of the index (backup, restore, migration) with the bytes' progress bar: its
    summary, or None once its refusal (exit status 2) or failure (1) is said on stderr."""
    try:
        with BytesProgress() as progress:
            return copy(progress=progress), 0
    except refused as exc:
        err.print(f"moorage: {verb} refused: {exc}")
        return None, 2
    except (failed, OSError, sqlite3.Error) as exc:
        err.print(f"moorage: {verb} failed: {exc}")
        return None, 1


def cmd_db_migrate_from_sqlite(args: argparse.Namespace) -> int:
    from moorage.services import migrate

    chosen = settings(args)
    copy = partial(migrate.migrate_from_sqlite, chosen, Path(args.src),
                   log_key=Path(args.log_key) if args.log_key else None)
    summary, status = _copy("migrate-from-sqlite", copy, migrate.MigrationRefused, migrate.MigrationFailed)
    if summary is None:
        return status
    Console(width=max(Console().width, 120)).print(_migration_table(args.src, summary))
    before = summary.source_revision
    migrated = "" if before == summary.revision else f", its schema migrated from {before}"
    err.print(f"migrated {summary.files} files, {summary.blobs} blobs ({summary.total_bytes} bytes) and "
              f"{sum(rows for _, rows in summary.tables)} rows (revision {summary.revision}{migrated}); the log "
              f"continues at size {summary.log_size}")
    if summary.new_log_key:
        err.print("moorage: SRC has no log signing key and its log was never signed: the index will sign its log "
                  "with a new key")
    return 0


def _migration_table(src: str, summary: Summary) -> Table:
    # Text: paths and URLs are not rich markup.
    table = Table(title=Text(f"migrated {src} into {summary.target}"), title_justify="left")
    table.add_column("what", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    for name, rows in summary.tables:
        table.add_row(Text(f"table {name}"), f"{rows} rows")
    present = f" ({summary.blobs_present} already there)" if summary.blobs_present else ""
    table.add_row("blobs verified and placed", f"{summary.blobs}{present}")
    if summary.purged_blobs:
        table.add_row("blobs purged past retention (not copied)", str(summary.purged_blobs))
    table.add_row("blob bytes", str(summary.total_bytes))
    table.add_row("files (deleted)", f"{summary.files} ({summary.deleted_files})")
    table.add_row("log size", str(summary.log_size))
    table.add_row("log root", summary.log_root)
    table.add_row("checkpoints checked", str(summary.checkpoints))
    table.add_row("keys copied", ", ".join(summary.keys_copied) or "-")
    if summary.keys_present:
        table.add_row("keys already in place", ", ".join(summary.keys_present))
    return table
