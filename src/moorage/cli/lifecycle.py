"""A project's lifecycle: `moorage yank | unyank`, `reopen`, `archive | unarchive | deprecate |
undeprecate`, `quarantine | unquarantine`, `announce-removal | cancel-removal`. Deletion and
restore are in cli/deletion.py."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from moorage.cli.common import acting_as, context, err, print_decision, subcommand
from moorage.services import lifecycle, removal

_STATUSES = (
    ("archive", "archived", "archived", "archive a project: files stay, no new uploads"),
    ("unarchive", "active", "is active again", "make an archived project active again"),
    ("deprecate", "deprecated", "deprecated", "mark a project deprecated, optionally naming its successor"),
    ("undeprecate", "active", "is active again", "take a deprecation back"),
)


def register(sub: Any) -> None:
    """`moorage yank | unyank | reopen`, the project statuses and the quarantine."""
    yank = subcommand(sub, "yank", "yank a release or one of its files (PEP 592)", cmd_yank,
                      "project", "version", "filename?")
    yank.add_argument("--reason")
    acting_as(yank)
    acting_as(subcommand(sub, "unyank", "take a yank back", cmd_unyank, "project", "version", "filename?"))
    reopen = subcommand(sub, "reopen", "let a closed release accept new files for a while", cmd_reopen,
                        "project", "version")
    reopen.add_argument("--days", type=float, help="how long (default: the policy's reopen period)")
    reopen.add_argument("--reason", required=True)
    acting_as(reopen)
    reopen.add_argument("--json", action="store_true")
    _register_statuses(sub)


def _register_statuses(sub: Any) -> None:
    for command, status, done, text in _STATUSES:
        p = subcommand(sub, command, text, _status_command(status, done), "project")
        p.add_argument("--reason")
        if command == "deprecate":
            p.add_argument("--successor", metavar="NAME", help="the project that replaces this one")
        acting_as(p)
    for command, text in (("quarantine", "withhold a project or one release (admin)"),
                          ("unquarantine", "lift a quarantine (admin)")):
        subcommand(sub, command, text, cmd_quarantine, "project", "version?").add_argument("--reason", required=True)


def register_removal(sub: Any) -> None:
    """`moorage announce-removal | cancel-removal`."""
    ann = subcommand(sub, "announce-removal", "withdraw a project after a grace period (opt-in root after it)",
                     cmd_announce_removal, "project")
    ann.add_argument("--days", type=float, help="grace period (default: the policy's, 30 days)")
    ann.add_argument("--reason")
    acting_as(ann)
    ann.add_argument("--json", action="store_true")
    acting_as(subcommand(sub, "cancel-removal", "take an announced removal back", cmd_cancel_removal, "project"))


def cmd_yank(args: argparse.Namespace) -> int:
    ctx = context(args)
    done = lifecycle.yank(ctx, args.project, args.version, args.filename, reason=args.reason, as_user=args.as_user)
    err.print(f"yanked {', '.join(done)}" if done else "nothing to yank: already yanked")
    return 0


def cmd_unyank(args: argparse.Namespace) -> int:
    ctx = context(args)
    done = lifecycle.unyank(ctx, args.project, args.version, args.filename, as_user=args.as_user)
    err.print(f"unyanked {', '.join(done)}" if done else "nothing to unyank: not yanked")
    return 0


def cmd_reopen(args: argparse.Namespace) -> int:
    ctx = context(args)
    decision = lifecycle.reopen(ctx, args.project, args.version, reason=args.reason, days=args.days,
                                as_user=args.as_user)
    print_decision(decision, args.json)
    return 0


def _status_command(status: str, done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        ctx = context(args)
        lifecycle.set_status(ctx, args.project, status, reason=args.reason,
                             successor=getattr(args, "successor", None), as_user=getattr(args, "as_user", None))
        err.print(f"{args.project} {done}")
        return 0
    return run


def cmd_quarantine(args: argparse.Namespace) -> int:
    """quarantine / unquarantine, of a project or of one release."""
    ctx = context(args)
    lift = args.command == "unquarantine"
    if args.version:
        changed = lifecycle.quarantine_release(ctx, args.project, args.version, reason=args.reason, lift=lift)
        what = f"release {args.version} of {args.project}"
    else:
        lifecycle.set_status(ctx, args.project, "active" if lift else "quarantined", reason=args.reason)
        changed, what = True, args.project
    done = ("lifted the quarantine of " if lift else "quarantined ") + what
    err.print(done if changed else f"nothing to do: {what} is {'not ' if lift else 'already '}quarantined")
    return 0


def cmd_announce_removal(args: argparse.Namespace) -> int:
    ctx = context(args)
    decision = removal.announce_removal(ctx, args.project, days=args.days, reason=args.reason, as_user=args.as_user)
    print_decision(decision, args.json)
    return 0


def cmd_cancel_removal(args: argparse.Namespace) -> int:
    ctx = context(args)
    removal.cancel_removal(ctx, args.project, as_user=args.as_user)
    err.print(f"the removal of {args.project} is cancelled")
    return 0
