"""`moorage admin fsck [--quick] [--repair] [--from-backup DIR] [--from-index URL] [--json]`.

The blob store against the database and the log against the events (services/fsck.py). A
table of what is wrong on standard output (or JSON), a one-line summary and a progress bar on
standard error (the bar only on a terminal). Exit status: 0 nothing wrong (or everything
repaired), 1 something is still wrong, 2 not checked (a repair source that cannot be used, a
store or database that does not answer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from moorage.cli.common import OPERATOR, BytesProgress, common, context, err
from moorage.services import fsck


def register(admin: Any) -> None:
    """Add `fsck` to `moorage admin`."""
    p = admin.add_parser("fsck", help="check the blob store against the database and the log against the events; "
                                      "--repair fixes what it can")
    common(p)
    p.add_argument("--quick", action="store_true", help="presence and size only (no sha256 of every blob)")
    p.add_argument("--repair", action="store_true",
                   help="remove temporary files older than an hour and unreferenced blobs older than a day; restore "
                        "missing or damaged bytes from --from-backup / --from-index")
    p.add_argument("--from-backup", metavar="DIR", help="with --repair: a `moorage backup` (or a copy of the blobs)")
    p.add_argument("--from-index", metavar="URL", help="with --repair: another index that serves the same files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fsck)


def cmd_fsck(args: argparse.Namespace) -> int:
    if (args.from_backup or args.from_index) and not args.repair:
        err.print("moorage: fsck: --from-backup and --from-index are sources for --repair; add --repair")
        return 2
    ctx = context(args)
    try:
        with BytesProgress() as bar:
            report = fsck.fsck(ctx, quick=args.quick, repair=args.repair,
                               from_backup=Path(args.from_backup) if args.from_backup else None,
                               from_index=args.from_index, progress=bar, actor=OPERATOR)
    except fsck.FsckRefused as exc:
        err.print(f"moorage: fsck refused: {exc}")
        return 2
    except (OSError, SQLAlchemyError) as exc:
        cause = getattr(exc, "orig", None) or exc
        err.print(f"moorage: fsck could not check the index: {cause}")
        return 2
    finally:
        ctx.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _table(report)
    err.print(_summary(report))
    return 0 if report.ok else 1


def _table(report: fsck.Report) -> None:
    if not report.findings:
        return
    # Text: filenames and paths are not rich markup.
    table = Table(title=Text(f"{len(report.findings)} problem(s) found"), title_justify="left")
    table.add_column("kind", no_wrap=True)
    table.add_column("file, blob or temporary file", overflow="fold")
    table.add_column("what is wrong", overflow="fold")
    if report.repair:
        table.add_column("repair", overflow="fold")
    for f in report.findings:
        row = [Text(f.kind), Text(f.subject), Text(f.detail)]
        if report.repair:
            row.append(Text(f.repair or "-"))
        table.add_row(*row)
    out = Console()
    # On a terminal the table fits it; into a pipe or a file each finding stays on one line.
    Console(width=out.width if out.is_terminal else 400).print(table)


def _summary(report: fsck.Report) -> str:
    checked = "presence and size" if report.quick else f"sha256 of {report.hashed_bytes} bytes"
    purged = f", {report.purged_blobs} purged past retention" if report.purged_blobs else ""
    text = (f"checked {report.files} files ({report.deleted_files} deleted), {report.referenced_blobs} referenced "
            f"blobs ({checked}{purged}), {report.blobs_in_store} blobs in the store, {report.temp_files} temporary "
            f"files, the log ({report.log_size} entries) against {report.events} events")
    if report.in_progress:
        text += f"; {report.in_progress} temporary file(s) or blob(s) younger than an hour left to uploads in progress"
    if not report.findings:
        return text + ": nothing wrong"
    repaired = sum(f.repaired for f in report.findings)
    if report.repair:
        left = len(report.damage)
        return text + f": {len(report.findings)} problem(s), {repaired} repaired, {left} left"
    return text + f": {len(report.findings)} problem(s); `moorage admin fsck --repair` fixes what it can"
