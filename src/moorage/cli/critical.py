"""`moorage admin daily` (the critical-project job) and the review of download jumps."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.cli.common import OPERATOR, common, context, err
from moorage.services import critical
from moorage.services.context import Context


def register(admin: Any) -> None:
    """Add the commands to `moorage admin`."""
    daily = admin.add_parser("daily", help="recompute the critical projects (the server runs this once a day)")
    common(daily)
    daily.add_argument("--force", action="store_true", help="run even if it ran less than a day ago")
    daily.add_argument("--json", action="store_true")
    daily.set_defaults(func=lambda args: cmd_daily(args, context(args)))
    flags = admin.add_parser("download-flags", help="downloads that jumped week over week, held for review")
    common(flags)
    flags.add_argument("--all", action="store_true", help="reviewed ones too")
    flags.add_argument("--json", action="store_true")
    flags.set_defaults(func=lambda args: cmd_flags(args, context(args)))
    review = admin.add_parser("review-flag", help="confirm (designate on the next run) or dismiss a jump")
    common(review)
    review.add_argument("project")
    review.add_argument("decision", choices=["confirm", "dismiss"])
    review.add_argument("--reason", required=True)
    review.set_defaults(func=lambda args: cmd_review(args, context(args)))


def cmd_daily(args: argparse.Namespace, ctx: Context) -> int:
    report = critical.run_daily(ctx, force=args.force)
    if args.json:
        print(json.dumps({"ran": report.ran, "at": report.at.isoformat(), "designated": report.designated,
                          "released": report.released, "flagged": report.flagged, "critical": report.critical,
                          "next_run": report.next_run.isoformat() if report.next_run else None}, indent=2))
        return 0
    if not report.ran:
        err.print(f"the daily job ran less than a day ago; next run from {report.next_run:%Y-%m-%d %H:%M} UTC "
                  "(--force runs it now)")
        return 0
    for label, names in (("now critical", report.designated), ("no longer critical", report.released),
                         ("flagged for review (downloads jumped)", report.flagged)):
        if names:
            err.print(f"{label}: {', '.join(names)}")
    err.print(f"{len(report.critical)} critical project(s)")
    return 0


def cmd_flags(args: argparse.Namespace, ctx: Context) -> int:
    flags = critical.list_flags(ctx, open_only=not args.all)
    if args.json:
        print(json.dumps([{"project": f.project, "flagged_at": f.flagged_at.isoformat(), "week": f.week,
                           "previous_week": f.previous_week, "decision": f.decision,
                           "reviewed_by": f.reviewed_by} for f in flags], indent=2))
        return 0
    table = Table("project", "flagged", "last 7 days", "the 7 before", "decision")
    for f in flags:
        table.add_row(Text(f.project), f"{f.flagged_at:%Y-%m-%d %H:%M}", str(f.week), str(f.previous_week),
                      Text(f"{f.decision} by {f.reviewed_by}" if f.decision else "open"))
    Console().print(table)
    return 0


def cmd_review(args: argparse.Namespace, ctx: Context) -> int:
    critical.review_flag(ctx, args.project, args.decision, reason=args.reason, actor=OPERATOR)
    err.print(f"{args.project}: {args.decision}ed")
    return 0
