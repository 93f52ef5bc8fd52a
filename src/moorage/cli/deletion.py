"""Deletion and what follows it: `moorage delete`, `disable-deletions`, `moorage admin restore`
and `moorage admin purge` (the bytes past retention)."""

from __future__ import annotations

import argparse
from typing import Any

from moorage.cli.common import acting_as, context, err, subcommand
from moorage.services import deletion


def register(sub: Any) -> None:
    """`moorage delete | disable-deletions`."""
    dele = subcommand(sub, "delete", "delete a file, a release or a project (within the deletion window)", cmd_delete,
                      "project", "version?", "filename?")
    dele.add_argument("--reason", help="why (required when acting as the operator, an admin)")
    acting_as(dele)
    acting_as(subcommand(sub, "disable-deletions", "turn deletions off for a project, for good", cmd_disable_deletions,
                         "project"))


def register_restore(admin: Any) -> None:
    """`moorage admin restore`."""
    rest = subcommand(admin, "restore", "bring back a deleted file, release or project, as it was", cmd_restore,
                      "project", "version?", "filename?")
    rest.add_argument("--reason", required=True)


def register_purge(admin: Any) -> None:
    """`moorage admin purge`."""
    purge = subcommand(admin, "purge", "remove the bytes of files deleted longer ago than the retention", cmd_purge)
    purge.add_argument("--dry-run", action="store_true")


def cmd_delete(args: argparse.Namespace) -> int:
    ctx = context(args)
    done = deletion.delete(ctx, args.project, args.version, args.filename, reason=args.reason, as_user=args.as_user)
    what = args.filename or (f"release {args.version} of {args.project}" if args.version else args.project)
    err.print(f"deleted {what}" + (f" ({len(done)} file{'s' if len(done) != 1 else ''})" if done else ""))
    return 0


def cmd_disable_deletions(args: argparse.Namespace) -> int:
    ctx = context(args)
    changed = deletion.disable_deletions(ctx, args.project, as_user=args.as_user)
    err.print(f"deletions are now off for {args.project}, for good" if changed else "deletions were already off")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    ctx = context(args)
    done = deletion.restore(ctx, args.project, args.version, args.filename, reason=args.reason)
    err.print(f"restored {', '.join(done) if done else args.project}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    ctx = context(args)
    done = deletion.purge(ctx, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    err.print(f"{verb} the bytes of {len(done)} file(s) past retention" + (": " + ", ".join(done) if done else ""))
    return 0
