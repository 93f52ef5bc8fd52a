"""`moorage user add | reset-factors` and `moorage token create | list | revoke`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.cli import factors
from moorage.cli.common import OPERATOR, common, context, err
from moorage.services import accounts


def register(sub: Any) -> None:
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user")
    common(add)
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_user_add)
    factors.register(user)
    _register_tokens(sub)


def _register_tokens(sub: Any) -> None:
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="create an API token; prints only the token")
    common(create)
    create.add_argument("name", help="the user the token acts for")
    create.add_argument("--project", action="append", help="limit the token to this project (repeatable)")
    create.add_argument("--expires-days", type=int)
    create.add_argument("--description")
    create.set_defaults(func=cmd_token_create)
    lst = token.add_parser("list", help="list a user's tokens")
    common(lst)
    lst.add_argument("name")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke a token by id, or every token of an account")
    common(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?")
    which.add_argument("--all-for", metavar="USER", help="every live token of USER (after a compromise); recorded")
    revoke.add_argument("--reason", help="with --all-for: why (kept in the event)")
    revoke.set_defaults(func=cmd_token_revoke)


def cmd_user_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password: str | None = sys.stdin.readline().rstrip("\r\n")
        if not password:
            err.print("moorage: no password on standard input")
            return 2
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ") or None
    else:
        password = None
    ctx = context(args)
    accounts.add_user(ctx, args.name, password=password, is_admin=args.admin, actor=OPERATOR)
    err.print(f"created user {args.name}{' (admin)' if args.admin else ''}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    ctx = context(args)
    _id, token = accounts.create_token(ctx, args.name, projects=args.project or [],
                                       expires_days=args.expires_days, description=args.description or "",
                                       actor=OPERATOR)
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    ctx = context(args)
    infos = accounts.list_tokens(ctx, args.name)
    if args.json:
        print(json.dumps([_token_json(t) for t in infos], indent=2))
        return 0
    table = Table("id", "scope", "created", "expires", "state", "last used", "description")
    # The id is what `token revoke` takes: never cut it short. Project names fold, not truncate.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(t.id) for t in infos), default=2)
    table.columns[1].overflow = "fold"
    table.columns[6].overflow = "fold"
    now = ctx.clock.now()
    for t in infos:
        state = "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at <= now else "active")
        # Text, not str: descriptions are user text and must not be read as rich markup.
        table.add_row(Text(t.id), Text(", ".join(t.projects) or "all projects"), f"{t.created_at:%Y-%m-%d %H:%M}",
                      f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never", state,
                      Text(f"{t.last_used_at:%Y-%m-%d %H:%M} from {t.last_used_address or '?'}" if t.last_used_at
                           else "never"), Text(t.description))
    Console().print(table)
    return 0


def _token_json(t: accounts.TokenInfo) -> dict[str, Any]:
    return {
        "id": t.id, "user": t.user, "description": t.description, "projects": t.projects,
        "created_at": t.created_at.isoformat(),
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "last_used_address": t.last_used_address, "with_second_factor": t.with_second_factor,
    }


def cmd_token_revoke(args: argparse.Namespace) -> int:
    ctx = context(args)
    if args.all_for:
        revoked = accounts.revoke_all_tokens(ctx, args.all_for, actor=OPERATOR, reason=args.reason)
        err.print(f"revoked {len(revoked)} token(s) of {args.all_for}" + (": " + ", ".join(revoked) if revoked else ""))
        return 0
    accounts.revoke_token(ctx, args.id, actor=OPERATOR)
    err.print(f"revoked token {args.id}")
    return 0
