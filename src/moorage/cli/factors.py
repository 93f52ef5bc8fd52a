"""`moorage user reset-factors USER --reason TEXT`: the operator's escape hatch for a person who
lost every second factor and every recovery code (see docs/accounts.md)."""

from __future__ import annotations

import argparse
from typing import Any

from moorage.cli.common import OPERATOR, common, context, err
from moorage.services import factors


def register(user: Any) -> None:
    """Add `reset-factors` to the `moorage user` subcommands (the subparsers of `user`)."""
    p: argparse.ArgumentParser = user.add_parser(
        "reset-factors", help="remove all of a user's second factors and recovery codes (recorded, with the reason)",
        description="Remove every second factor (authenticator apps, security keys) and every recovery code of "
                    "USER, and end the sign-ins waiting for a factor. The user then signs in with the password "
                    "alone and should enrol a factor again. Check who is asking before you do this: it undoes "
                    "the protection the factors gave. The event records the reason.")
    common(p)
    p.add_argument("name", metavar="USER")
    p.add_argument("--reason", required=True, help="why (recorded with the event)")
    p.set_defaults(func=cmd_reset_factors)


def cmd_reset_factors(args: argparse.Namespace) -> int:
    ctx = context(args)
    try:
        removed = factors.reset_factors(ctx, args.name, reason=args.reason, actor=OPERATOR)
    finally:
        ctx.close()
    if removed:
        err.print(f"removed {removed} second factor{'s' if removed != 1 else ''} and the recovery codes of "
                  f"{args.name}; they sign in with the password alone until they enrol a factor again")
    else:
        err.print(f"{args.name} had no second factor to remove")
    return 0
