"""Deletion and what follows it: `moorage delete`, `disable-deletions`, `moorage admin restore`
and `moorage admin purge` (the bytes past retention)."""

from __future__ import annotations

import argparse
from typing import Any

from moorage.cli.common import acting_as, common, context, err
from moorage.services import deletion


def register(sub: Any) -> None:
    """`moorage delete | disable-deletions`."""
    dele = sub.add_parser("delete", help="delete a file, a release or a project (within the deletion window)")
    common(dele)
    dele.add_argument("project")
    dele.add_argument("version", nargs="?")
    dele.add_argument("filename", nargs="?")
    dele.add_argument("--reason", help="why (required when acting as the operator, an admin)")
    acting_as(dele)
    dele.set_defaults(func=cmd_delete)
    dis = sub.add_parser("disable-deletions", help="turn deletions off for a project, for good")
    common(dis)
    dis.add_argument("project")
    acting_as(dis)
    dis.set_defaults(func=cmd_disable_deletions)


def register_restore(admin: Any) -> None:
    """`moorage admin restore`."""
    rest = admin.add_parser("restore", help="bring back a deleted file, release or project, as it was")
    common(rest)
    rest.add_argument("project")
    rest.add_argument("version", nargs="?")
    rest.add_argument("filename", nargs="?")
    rest.add_argument("--reason", required=True)
    rest.set_defaults(func=cmd_restore)


def register_purge(admin: Any) -> None:
    """`moorage admin purge`."""
    purge = admin.add_parser("purge", help="remove the bytes of files deleted longer ago than the retention")
    common(purge)
    purge.add_argument("--dry-run", action="store_true")
    purge.set_defaults(func=cmd_purge)


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
