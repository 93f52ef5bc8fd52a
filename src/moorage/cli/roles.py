"""Roles and hand-over: `moorage role set | remove | list`, `invite`, `transfer`, `accept`,
`decline`, `leave` and `moorage admin adopt`."""

from __future__ import annotations

import argparse
from typing import Any

from moorage.cli.common import OPERATOR, acting_as, common, context, err
from moorage.services import handover, roles


def register(sub: Any) -> None:
    """`moorage role ...`."""
    role = sub.add_parser("role", help="owners and maintainers of a project").add_subparsers(
        dest="role_command", required=True)
    rset = role.add_parser("set", help="make a user owner or maintainer of a project")
    common(rset)
    rset.add_argument("project")
    rset.add_argument("user")
    rset.add_argument("--role", choices=["owner", "maintainer"], default="maintainer")
    rset.set_defaults(func=cmd_role_set)
    rremove = role.add_parser("remove", help="take a user's role on a project away")
    common(rremove)
    rremove.add_argument("project")
    rremove.add_argument("user")
    rremove.set_defaults(func=cmd_role_remove)
    rlist = role.add_parser("list", help="list a project's owners and maintainers")
    common(rlist)
    rlist.add_argument("project")
    rlist.set_defaults(func=cmd_role_list)


def register_handover(sub: Any) -> None:
    """`moorage invite | transfer | accept | decline | leave`."""
    for command, text in (("invite", "invite a user to be owner or maintainer"),
                          ("transfer", "hand your place as owner to another user (they accept)")):
        p = sub.add_parser(command, help=text)
        common(p)
        p.add_argument("project")
        p.add_argument("user")
        if command == "invite":
            p.add_argument("--role", choices=["owner", "maintainer"], default="maintainer")
        acting_as(p)
        p.set_defaults(func=cmd_invite)
    for command, text in (("accept", "accept an invitation or transfer"), ("decline", "decline an invitation")):
        p = sub.add_parser(command, help=text)
        common(p)
        p.add_argument("project")
        p.add_argument("--as", dest="as_user", metavar="USER", required=True, help="the invited user")
        p.set_defaults(func=cmd_answer)
    lv = sub.add_parser("leave", help="give up your role; the last owner leaving orphans the project")
    common(lv)
    lv.add_argument("project")
    lv.add_argument("--as", dest="as_user", metavar="USER", required=True, help="the user who leaves")
    lv.set_defaults(func=cmd_leave)


def register_adopt(admin: Any) -> None:
    """`moorage admin adopt`."""
    adopt = admin.add_parser("adopt", help="hand an orphaned project to a new owner")
    common(adopt)
    adopt.add_argument("project")
    adopt.add_argument("user")
    adopt.add_argument("--reason", required=True)
    adopt.set_defaults(func=cmd_adopt)


def cmd_role_set(args: argparse.Namespace) -> int:
    ctx = context(args)
    roles.set_role(ctx, args.project, args.user, args.role, actor=OPERATOR)
    err.print(f"{args.user} is now {args.role} of {args.project}")
    return 0


def cmd_role_remove(args: argparse.Namespace) -> int:
    ctx = context(args)
    roles.remove_role(ctx, args.project, args.user, actor=OPERATOR)
    err.print(f"removed {args.user} from {args.project}")
    return 0


def cmd_role_list(args: argparse.Namespace) -> int:
    ctx = context(args)
    for info in roles.list_roles(ctx, args.project):
        print(f"{info.role}\t{info.user}")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    ctx = context(args)
    transfer = args.command == "transfer"
    handover.invite(ctx, args.project, args.user, role=getattr(args, "role", "owner"), transfer=transfer,
                    as_user=args.as_user)
    what = "a transfer of" if transfer else "an invitation to"
    err.print(f"{args.user} has {what} {args.project}; they answer with `moorage accept {args.project} --as USER`")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    ctx = context(args)
    result = handover.answer(ctx, args.project, as_user=args.as_user, accept=args.command == "accept")
    err.print(f"{args.as_user} is now {result} of {args.project}" if result != "declined" else "declined")
    return 0


def cmd_leave(args: argparse.Namespace) -> int:
    ctx = context(args)
    orphaned = handover.leave(ctx, args.project, as_user=args.as_user)
    err.print(f"{args.as_user} left {args.project}" + ("; it has no owner left and is archived as orphaned"
                                                       if orphaned else ""))
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    ctx = context(args)
    handover.adopt(ctx, args.project, args.user, reason=args.reason)
    err.print(f"{args.user} now owns {args.project}")
    return 0
